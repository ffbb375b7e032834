"""Context prediction models (seed 002): shapes at patch and image sizes, BatchNorm state, weight transfer between
the pretext network and the classifier, the init-ablation path regexes, learning, and the spatial-pyramid HOG."""

import functools
import re

import chex
import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sgvu import train
from sgvu.models.context_net import (ContextNet, ContextNetConfig, TrunkClassifier, TrunkEmbedder, trunk_paths)
from sgvu.models.hog_pyramid import hog_pyramid

# rbg keys: XLA's CPU compile of threefry costs seconds per random op.
key = functools.partial(jax.random.key, impl="rbg")
TINY = dict(widths=(4, 8, 8, 8, 8), fc6=16, fc7=16)
PATCH, IMAGE = 20, 64


def tiny(**changes) -> ContextNetConfig:
  return ContextNetConfig(**TINY).replace(**changes)


def images(seed: int, batch: int, size: int) -> jax.Array:
  return jax.random.normal(key(seed), (batch, size, size, 3))


def flat_variables(variables) -> dict:
  """'/'-joined paths of every collection, batch_stats prefixed as Task.pretrained names them."""
  v = nn.unbox(variables)
  return {**train.flatten(v["params"]),
          **{f"batch_stats/{k}": a for k, a in train.flatten(v.get("batch_stats", {})).items()}}


@pytest.mark.parametrize("batchnorm", [False, True])
def test_shapes_at_patch_and_image_size(batchnorm):
  model = ContextNet(tiny(batchnorm=batchnorm))
  a = images(0, 2, PATCH)
  variables = model.init(key(1), a, a)
  assert ("batch_stats" in variables) == batchnorm  # no BN: no collection at all
  for size in (PATCH, IMAGE):  # global average pooling: one set of weights for any size
    x = images(2, 3, size)
    chex.assert_shape(model.apply(variables, x, x[::-1]), (3, 8))
    chex.assert_shape(model.apply(variables, x, method=ContextNet.embed), (3, 16))
  chex.assert_tree_all_finite(model.apply(variables, x, x))


def test_batchnorm_statistics_update_only_in_training():
  model = ContextNet(tiny(batchnorm=True))
  a, b = images(0, 4, PATCH), images(1, 4, PATCH)
  variables = model.init(key(2), a, b)
  _, state = model.apply(variables, a, b, train=True, mutable=["batch_stats"])
  changed = jax.tree.map(lambda x, y: not np.allclose(x, y), variables["batch_stats"], state["batch_stats"])
  assert all(jax.tree.leaves(changed))
  out = model.apply(variables, a, b, train=False)  # running averages: no mutable collection needed
  chex.assert_trees_all_close(out, model.apply(variables, a, b))


def test_trunk_parameters_transfer_path_for_path():
  x = jnp.zeros((2, PATCH, PATCH, 3))
  cfg = tiny(batchnorm=True)

  def trunk_shapes(model, *args):
    flat = flat_variables(jax.eval_shape(model.init, key(0), *args))
    return {k: v.shape for k, v in flat.items() if re.fullmatch(trunk_paths("all"), k)}

  context = trunk_shapes(ContextNet(cfg), x, x)
  assert "trunk/conv1/kernel" in context and "batch_stats/trunk/bn1/mean" in context
  assert trunk_shapes(TrunkClassifier(cfg, num_classes=5), x) == context
  assert trunk_shapes(TrunkEmbedder(cfg), x) == context


def test_trunk_paths_select_layers():
  x = jnp.zeros((2, PATCH, PATCH, 3))
  paths = list(flat_variables(jax.eval_shape(ContextNet(tiny(batchnorm=True)).init, key(0), x, x)))

  def selected(level):
    return {p for p in paths if re.fullmatch(trunk_paths(level), p)}

  lower = {p for p in paths if re.search(r"trunk/(conv1|bn1|conv2|bn2)/", p)}
  assert lower and selected("lower") == lower
  assert all(re.search(r"/(conv|bn)[12]/", p) for p in selected("lower"))
  assert selected("all") == {p for p in paths if "trunk/" in p}
  assert not any(p.startswith(("fc7", "fc8")) for p in selected("all"))
  assert selected("none") == set()
  with pytest.raises(ValueError, match="'middle'"):
    trunk_paths("middle")


def test_dropout_needs_rng_only_in_training():
  model = ContextNet(tiny(dropout=0.5))
  a, b = images(0, 2, PATCH), images(1, 2, PATCH)
  variables = model.init(key(0), a, b)
  chex.assert_shape(model.apply(variables, a, b), (2, 8))
  chex.assert_shape(model.apply(variables, a, b, train=True, rngs={"dropout": key(3)}), (2, 8))
  with pytest.raises(flax.errors.InvalidRngError):
    model.apply(variables, a, b, train=True)


def test_compute_dtype_keeps_float32_params():
  model = ContextNet(tiny(dtype="bfloat16"))
  x = jnp.zeros((2, PATCH, PATCH, 3))
  variables = jax.eval_shape(model.init, key(0), x, x)
  assert {a.dtype for a in jax.tree.leaves(nn.unbox(variables))} == {jnp.dtype(jnp.float32)}
  assert jax.eval_shape(functools.partial(model.apply, method=ContextNet.embed), variables, x).dtype == jnp.bfloat16
  assert jax.eval_shape(model.apply, variables, x, x).dtype == jnp.float32


def test_context_net_learns_fixed_batch():
  model = ContextNet(tiny())
  a, b = images(0, 8, PATCH), images(1, 8, PATCH)
  labels = jnp.arange(8)
  params = nn.unbox(model.init(key(2), a, b))["params"]
  tx = optax.adam(1e-2)

  def loss_fn(p):
    return optax.softmax_cross_entropy_with_integer_labels(model.apply({"params": p}, a, b), labels).mean()

  @jax.jit
  def step(p, opt):
    loss, grads = jax.value_and_grad(loss_fn)(p)
    updates, opt = tx.update(grads, opt, p)
    return optax.apply_updates(p, updates), opt, loss

  opt, first = tx.init(params), None
  for _ in range(30):
    params, opt, loss = step(params, opt)
    first = loss if first is None else first
  assert float(loss_fn(params)) < 0.5 * float(first)


@pytest.mark.parametrize("changes, field", [
    (dict(widths=(8, 8, 8)), "widths"), (dict(widths=(8, 8, 0, 8, 8)), "widths"), (dict(fc6=0), "fc6"),
    (dict(fc7=0), "fc7"), (dict(num_positions=0), "num_positions"), (dict(dropout=1.0), "dropout"),
    (dict(dropout=-0.1), "dropout"), (dict(dtype="int8"), "dtype")])
def test_config_validation(changes, field):
  with pytest.raises(ValueError, match=field):
    ContextNetConfig(**changes)


def test_config_round_trips_through_dict():
  cfg = tiny(batchnorm=True, dropout=0.5)
  assert ContextNetConfig.from_dict(cfg.to_dict()) == cfg


# ------------------------------------------------------------------------------------------ HOG pyramid

def edge_image(axis: int) -> np.ndarray:
  """A 64 px step edge: axis 0 a horizontal edge (top dark, bottom bright), axis 1 a vertical one."""
  img = np.zeros((IMAGE, IMAGE, 3), np.uint8)
  img[(slice(None),) * axis + (slice(IMAGE // 2, None),)] = 255
  return img


def test_hog_pyramid_length_norm_and_orientation():
  d = hog_pyramid(np.stack([edge_image(0), edge_image(1)]))
  assert d.dtype == np.float32
  chex.assert_shape(d, (2, 9 * (1 + 4 + 16)))
  np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, rtol=1e-5)
  assert float(d[0] @ d[1]) < 0.5  # a horizontal and a vertical edge are different descriptors


def test_hog_pyramid_is_stable_under_a_one_pixel_shift():
  img = np.zeros((IMAGE, IMAGE, 3), np.uint8)
  img[20:44, 18:46] = (200, 120, 40)
  img[30:34, 4:60] = 90
  d = hog_pyramid(np.stack([img, np.roll(img, 1, axis=1), np.roll(img, 1, axis=0)]))
  assert float(d[0] @ d[1]) > 0.9 and float(d[0] @ d[2]) > 0.9


def test_hog_pyramid_bad_shapes():
  with pytest.raises(ValueError, match=r"\(64, 64, 3\)"):
    hog_pyramid(np.zeros((64, 64, 3), np.uint8))  # one image, not a batch
  with pytest.raises(ValueError, match=r"\(2, 64, 64\)"):
    hog_pyramid(np.zeros((2, 64, 64), np.uint8))
  with pytest.raises(ValueError, match="24x24 px.*3x3 cells.*4x4"):
    hog_pyramid(np.zeros((1, 24, 24, 3), np.uint8))


def test_fc6_grid_keeps_the_layout_and_zero_is_the_global_average():
  from sgvu.models.context_net import _grid_average  # pylint: disable=g-import-not-at-top
  x = jnp.arange(2 * 4 * 4 * 3, dtype=jnp.float32).reshape(2, 4, 4, 3)
  quads = _grid_average(x, 2)
  chex.assert_shape(quads, (2, 2, 2, 3))
  np.testing.assert_allclose(quads[:, 0, 1], x[:, :2, 2:].mean(axis=(1, 2)))  # top-right quadrant
  np.testing.assert_allclose(_grid_average(x, 0)[:, 0, 0], x.mean(axis=(1, 2)))
  odd = jnp.ones((1, 3, 3, 5))
  chex.assert_shape(_grid_average(odd, 2), (1, 2, 2, 5))  # area resize where the size is not a multiple
  np.testing.assert_allclose(_grid_average(odd, 2), 1.0, rtol=1e-6)
