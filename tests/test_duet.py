"""The sketch and text duet (seed 002): the visual-to-word converter, the conditional UNet decoder,
region-aware matching and the loss helpers."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sgvu.models.duet import (UNetDecoder, VisualToWord, neutral_regulariser, reconstruction_loss,
                              region_similarity, region_similarity_matrix, text_text_loss)

# rbg keys: XLA's CPU compile of threefry costs seconds per random op.
key = functools.partial(jax.random.key, impl="rbg")


def test_visual_to_word_shapes_and_dropout():
  model = VisualToWord(width=32, hidden=16, dropout=0.5)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 24)), jnp.float32)
  params = model.init(key(1), x, deterministic=True)["params"]
  assert params["fc_0"]["kernel"].shape == (24, 16) and params["fc_out"]["kernel"].shape == (16, 32)
  apply = jax.jit(model.apply, static_argnames="deterministic")
  out = apply({"params": params}, x, deterministic=True)
  chex.assert_shape(out, (4, 32))
  again = apply({"params": params}, x, deterministic=True, rngs={"dropout": key(5)})
  np.testing.assert_array_equal(np.asarray(out), np.asarray(again))  # no dropout when deterministic
  a = apply({"params": params}, x, deterministic=False, rngs={"dropout": key(2)})
  b = apply({"params": params}, x, deterministic=False, rngs={"dropout": key(3)})
  assert not np.allclose(np.asarray(a), np.asarray(out)) and not np.allclose(np.asarray(a), np.asarray(b))
  assert VisualToWord(width=8).init(key(1), x, deterministic=True)["params"]["fc_0"]["kernel"].shape == (24, 8)


def test_unet_decoder_shape_range_condition_and_gradients():
  size = 48
  model = UNetDecoder(size=size, width=8, levels=3)
  rng = np.random.default_rng(0)
  sketch = jnp.asarray(rng.uniform(size=(2, size, size, 3)), jnp.float32)
  cond = jnp.asarray(rng.normal(size=(2, 24)), jnp.float32)

  def loss(p, c):
    # Rows 2-3 repeat the sketches with the conditions swapped: one forward pass for both.
    out = model.apply({"params": p}, jnp.concatenate([sketch, sketch]), jnp.concatenate([c, c[::-1]]))
    return reconstruction_loss(out[:2], sketch), out

  @jax.jit  # one compile instead of one per eager op
  def run(c):
    p = model.init(key(2), sketch, c)["params"]
    (_, both), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(p, c)
    return p, both[:2], both[2:], grads

  params, out, other, (grads, cond_grad) = run(cond)
  chex.assert_shape(out, (2, size, size, 3))
  assert float(out.min()) > 0 and float(out.max()) < 1  # sigmoid
  assert not np.allclose(np.asarray(out), np.asarray(other))  # the condition reaches the output
  chex.assert_tree_all_finite((grads, cond_grad))
  assert float(jnp.abs(cond_grad).sum()) > 0
  with pytest.raises(ValueError, match="multiple of 2\\^levels"):
    UNetDecoder(size=20, levels=3).init(key(2), jnp.zeros((1, 20, 20, 3)), cond[:1])
  with pytest.raises(ValueError, match="sketch_images must be"):
    model.apply({"params": params}, sketch[:, :32, :32], cond)


def test_region_similarity():
  rng = np.random.default_rng(0)
  regions = rng.normal(size=(3, 5, 16)).astype(np.float32)
  query = 3.0 * regions[:, 2]  # the direction of region 2
  unit = regions / np.linalg.norm(regions, axis=-1, keepdims=True)
  cos = np.einsum("be,bte->bt", unit[:, 2], unit)
  similarity, matrix_of = jax.jit(region_similarity), jax.jit(region_similarity_matrix)  # a compile, not many
  sharp = np.asarray(similarity(query, regions, 1e-3))
  chex.assert_shape(sharp, (3,))
  np.testing.assert_allclose(sharp, cos[:, 2], atol=1e-4)  # that region's cosine, ~ 1
  np.testing.assert_allclose(sharp, 1.0, atol=1e-4)
  np.testing.assert_allclose(np.asarray(similarity(query, regions, 1e4)), cos.mean(1), atol=1e-4)
  default = np.asarray(similarity(query, regions, 0.1))
  np.testing.assert_allclose(np.asarray(region_similarity(query, regions)), default, atol=1e-6)  # default 0.1
  assert (default <= cos.max(1) + 1e-6).all() and (default >= cos.mean(1)).all()
  matrix = np.asarray(matrix_of(query, regions, 0.1))
  chex.assert_shape(matrix, (3, 3))
  np.testing.assert_allclose(np.diagonal(matrix), default, atol=1e-6)  # paired = region_similarity
  other = np.asarray(region_similarity(query[1:2], regions[:1]))[0]  # query 1 against photo 0
  np.testing.assert_allclose(matrix[1, 0], other, atol=1e-6)
  chex.assert_shape(region_similarity_matrix(query[:2], regions), (2, 3))


def test_loss_helpers_zero_and_stop_gradient():
  rng = np.random.default_rng(1)
  a, b = (rng.normal(size=(4, 8)).astype(np.float32) for _ in range(2))
  for fn in (text_text_loss, neutral_regulariser, reconstruction_loss):
    np.testing.assert_allclose(float(fn(a, a)), 0.0, atol=1e-6)
    assert float(fn(a, b)) > 0
  for fn in (text_text_loss, neutral_regulariser):
    g_first, g_second = jax.jit(jax.grad(fn, argnums=(0, 1)))(a, b)
    assert float(jnp.abs(g_first).sum()) > 0
    np.testing.assert_array_equal(np.asarray(g_second), 0.0)  # the reference side is stop_gradient
  np.testing.assert_allclose(float(reconstruction_loss(jnp.zeros((2, 3)), jnp.full((2, 3), 0.5))), 0.5)
  with pytest.raises(ValueError, match="differ in shape"):
    reconstruction_loss(jnp.zeros((2, 3)), jnp.zeros((3, 2)))
