"""LocFormer (sgvu.models.locformer) and the set-prediction losses (sgvu.detection.set_losses).

Tiny configs (32 px images and sketches, width 32) so that every test runs in seconds; the losses
are checked against NumPy transcriptions and a brute-force search over assignments.
"""

import itertools
import json

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sgvu.detection import boxes as box_ops
from sgvu.detection import set_losses
from sgvu.models.locformer import LocFormer, LocFormerConfig, detect, sine_positions
from sgvu.models.vit import VisionConfig

B, Q = 2, 6


def tiny_config(**changes) -> LocFormerConfig:
  sketch = VisionConfig(image_size=32, patch_size=8, width=32, layers=1, heads=2, mlp_dim=64,
                        embed_dim=32, activation="gelu")
  cfg = LocFormerConfig(image_size=32, patch_size=8, width=32, stage_depths=(1, 1), heads=2,
                        mlp_dim=64, cross_heads=2, sketch=sketch, num_queries=Q, decoder_layers=2,
                        decoder_heads=2, decoder_mlp_dim=64)
  return cfg.replace(**changes)


def inputs(seed: int, k: int = 1, b: int = B):
  r = np.random.default_rng(seed)
  return (jnp.asarray(r.normal(size=(b, 32, 32, 3)), jnp.float32),
          jnp.asarray(r.normal(size=(b, k, 32, 32, 3)), jnp.float32))


@pytest.fixture(scope="module")
def model():
  """(config, module, unboxed params, jitted apply) of the tiny one-sketch model."""
  cfg = tiny_config()
  m = LocFormer(cfg)
  params = nn.unbox(jax.jit(m.init)(jax.random.key(0), *inputs(0)))["params"]
  return cfg, m, params, jax.jit(lambda p, im, sk: m.apply({"params": p}, im, sk))


# ------------------------------------------------------------------ the model


def test_config_round_trip_and_validation():
  cfg = tiny_config(dtype="bfloat16")
  assert cfg.sketch.dtype == "bfloat16"  # forwarded into the sketch encoder
  assert LocFormerConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
  with pytest.raises(ValueError, match="cross_heads"):
    tiny_config(cross_heads=3)
  with pytest.raises(ValueError, match="stage_depths"):
    tiny_config(stage_depths=())
  with pytest.raises(ValueError, match="unknown keys.*'depth'"):
    LocFormerConfig.from_dict({**cfg.to_dict(), "depth": 3})
  pos = sine_positions(4, 32)
  assert pos.shape == (16, 32) and np.all(np.abs(pos) <= 1)
  assert len({tuple(r) for r in pos.round(5)}) == 16  # every patch gets its own position


def test_shapes_under_jit_and_detect(model):
  cfg, _, params, apply = model
  out = apply(params, *inputs(1))
  chex.assert_shape([out["logits"], out["boxes"], out["aux_logits"], out["aux_boxes"]],
                    [(B, Q), (B, Q, 4), (1, B, Q), (1, B, Q, 4)])
  chex.assert_tree_all_finite(out)
  assert np.all((np.asarray(out["boxes"]) > 0) & (np.asarray(out["boxes"]) < 1))
  # Queries start apart (reference points), each box a 0.12 square (the release's init).
  assert len({tuple(b) for b in np.asarray(out["boxes"][0, :, :2]).round(4)}) == Q
  np.testing.assert_allclose(out["boxes"][..., 2:], jax.nn.sigmoid(-2.0), rtol=1e-5)
  np.testing.assert_allclose(jax.nn.sigmoid(out["logits"]), 0.01, rtol=0.5)  # prior 0.01

  det = jax.jit(detect, static_argnums=(1, 2))(out, (32, 48), 4)
  chex.assert_shape([det["boxes"], det["scores"], det["indices"]], [(B, 4, 4), (B, 4), (B, 4)])
  s = np.asarray(det["scores"])
  assert np.all(np.diff(s, axis=1) <= 0)
  np.testing.assert_allclose(s, np.sort(jax.nn.sigmoid(out["logits"]), axis=1)[:, ::-1][:, :4], rtol=1e-6)
  bx = np.asarray(det["boxes"])
  assert np.all(bx[..., 0::2] >= 0) and np.all(bx[..., 0::2] <= 48) and np.all(bx[..., 1::2] <= 32)
  want = np.asarray(out["boxes"])[0, int(det["indices"][0, 0])] * [48, 32, 48, 32]
  np.testing.assert_allclose(bx[0, 0], np.clip([want[0] - want[2] / 2, want[1] - want[3] / 2,
                                                want[0] + want[2] / 2, want[1] + want[3] / 2],
                                               0, [48, 32, 48, 32]), rtol=1e-5, atol=1e-4)
  with pytest.raises(ValueError, match="top_d"):
    detect(out, (32, 32), Q + 1)


def test_output_depends_on_sketch_through_cross_attention(model):
  cfg, _, params, apply = model
  # The box head's last layer starts at zero (every box at its reference point): make it live.
  params = dict(params)
  params["box_2"] = {**params["box_2"], "kernel": 0.1 * jax.random.normal(
      jax.random.key(7), params["box_2"]["kernel"].shape)}
  images, sketch_a = inputs(2)
  _, sketch_b = inputs(3)
  a, b = apply(params, images, sketch_a), apply(params, images, sketch_b)
  assert np.abs(np.asarray(a["boxes"] - b["boxes"])).max() > 1e-4
  assert np.abs(np.asarray(a["logits"] - b["logits"])).max() > 1e-4

  # Zeroed query-guided blocks are the identity: the image path (hence the boxes) ignores the sketch.
  zeroed = dict(params)
  for i in range(len(cfg.stage_depths)):
    zeroed[f"cross_{i}"] = jax.tree.map(jnp.zeros_like, params[f"cross_{i}"])
  a, b = apply(zeroed, images, sketch_a), apply(zeroed, images, sketch_b)
  np.testing.assert_allclose(a["boxes"], b["boxes"], atol=1e-6)
  assert np.abs(np.asarray(a["logits"] - b["logits"])).max() > 1e-4  # the class head still sees it
  # ... and without the sketch half of the class head's input, nothing does.
  head = dict(zeroed["cls_hidden"])
  head["kernel"] = head["kernel"].at[cfg.width:].set(0.0)
  zeroed["cls_hidden"] = head
  a, b = apply(zeroed, images, sketch_a), apply(zeroed, images, sketch_b)
  np.testing.assert_allclose(a["logits"], b["logits"], atol=1e-6)


def test_three_sketch_queries(model):
  """k sketches per query: the parameters do not depend on k, so the one-sketch model's serve."""
  cfg, _, params, _ = model
  m3 = LocFormer(cfg.replace(num_sketches=3))
  images, sketches = inputs(4, k=3)
  shapes = jax.eval_shape(m3.init, jax.random.key(0), images, sketches)["params"]
  chex.assert_trees_all_equal_shapes(nn.unbox(shapes), params)
  apply = jax.jit(lambda s: m3.apply({"params": params}, images, s))
  out = apply(sketches)
  chex.assert_shape([out["logits"], out["boxes"]], [(B, Q), (B, Q, 4)])
  chex.assert_tree_all_finite(out)
  other = apply(sketches.at[:, 2].set(inputs(5)[1][:, 0]))  # a different third sketch
  assert np.abs(np.asarray(out["logits"] - other["logits"])).max() > 1e-4
  with pytest.raises(ValueError, match="k=3"):
    m3.apply({"params": params}, images, sketches[:, :1])


# ------------------------------------------------------------------ losses vs NumPy


def np_focal(x, t, alpha=0.25, gamma=2.0):
  x, t = np.asarray(x, np.float64), np.asarray(t, np.float64)
  p = 1 / (1 + np.exp(-x))
  ce = -(t * np.log(p) + (1 - t) * np.log(1 - p))
  p_t = p * t + (1 - p) * (1 - t)
  return (alpha * t + (1 - alpha) * (1 - t)) * (1 - p_t) ** gamma * ce


def np_giou(a, b):
  """GIoU of two cxcywh boxes."""
  ax1, ay1, ax2, ay2 = a[0] - a[2] / 2, a[1] - a[3] / 2, a[0] + a[2] / 2, a[1] + a[3] / 2
  bx1, by1, bx2, by2 = b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2
  inter = max(0, min(ax2, bx2) - max(ax1, bx1)) * max(0, min(ay2, by2) - max(ay1, by1))
  union = a[2] * a[3] + b[2] * b[3] - inter
  hull = (max(ax2, bx2) - min(ax1, bx1)) * (max(ay2, by2) - min(ay1, by1))
  return inter / union - (hull - union) / hull


def np_set_loss(logits, boxes, gt, valid, cfg=set_losses.SetLossConfig()):
  """Brute force over every assignment of the valid gts to distinct predictions."""
  logits, boxes, gt = (np.asarray(x, np.float64) for x in (logits, boxes, gt))
  total = {"focal": 0.0, "l1": 0.0, "giou": 0.0}
  for b in range(len(logits)):
    cols = np.flatnonzero(valid[b])
    p = 1 / (1 + np.exp(-logits[b]))
    a, g = cfg.focal_alpha, cfg.focal_gamma
    cls_cost = a * (1 - p) ** g * -np.log(p + 1e-8) - (1 - a) * p ** g * -np.log(1 - p + 1e-8)

    def cost(q, j):
      return (cfg.cost_class * cls_cost[q] + cfg.cost_l1 * np.abs(boxes[b, q] - gt[b, j]).sum()
              - cfg.cost_giou * np_giou(boxes[b, q], gt[b, j]))

    best = min(itertools.permutations(range(len(p)), len(cols)),
               key=lambda rows: sum(cost(q, j) for q, j in zip(rows, cols)))
    target = np.zeros(len(p))
    target[list(best)] = 1
    total["focal"] += np_focal(logits[b], target, cfg.focal_alpha, cfg.focal_gamma).sum()
    for q, j in zip(best, cols):
      total["l1"] += np.abs(boxes[b, q] - gt[b, j]).sum()
      total["giou"] += 1 - np_giou(boxes[b, q], gt[b, j])
  n = max(valid.sum(), 1)
  out = {k: v / n for k, v in total.items()}
  out["loss"] = cfg.class_weight * out["focal"] + cfg.l1_weight * out["l1"] + cfg.giou_weight * out["giou"]
  return out


def random_set(rng, b, q, g):
  logits = rng.normal(size=(b, q)) * 2
  cxcy, wh = rng.uniform(0.2, 0.8, size=(2, b, q, 2)), rng.uniform(0.05, 0.4, size=(2, b, q, 2))
  boxes = np.concatenate([cxcy[0], wh[0]], -1)
  gt = np.concatenate([rng.uniform(0.2, 0.8, (b, g, 2)), rng.uniform(0.05, 0.4, (b, g, 2))], -1)
  return logits.astype(np.float32), boxes.astype(np.float32), gt.astype(np.float32)


def test_focal_loss_matches_numpy():
  rng = np.random.default_rng(0)
  x = (rng.normal(size=(50,)) * 4).astype(np.float32)
  t = rng.random(50) < 0.3
  for alpha, gamma in [(0.25, 2.0), (0.5, 0.0), (0.9, 1.5)]:
    got = set_losses.sigmoid_focal_loss(jnp.asarray(x), jnp.asarray(t), alpha, gamma)
    np.testing.assert_allclose(got, np_focal(x, t, alpha, gamma), rtol=1e-5, atol=1e-7)
  # Far-off logits stay finite (log-sigmoid, not log(sigmoid)).
  chex.assert_tree_all_finite(set_losses.sigmoid_focal_loss(jnp.array([-80.0, 80.0]), jnp.array([1, 0])))


def test_matched_losses_match_brute_force():
  rng = np.random.default_rng(1)
  loss = jax.jit(set_losses.set_prediction_loss)
  for trial in range(4):
    logits, boxes, gt = random_set(rng, 3, 4, 3)
    valid = rng.random((3, 3)) < 0.7
    valid[0] = True  # as many gts as the brute force can take
    got = loss(logits, boxes, gt, valid)
    want = np_set_loss(logits, boxes, gt, valid)
    for k in ("focal", "l1", "giou", "loss"):
      assert float(got[k]) == pytest.approx(want[k], rel=1e-4, abs=1e-5), (trial, k)
    assert float(got["num_boxes"]) == max(valid.sum(), 1)
    assert np.all((np.asarray(got["gt_for_query"]) >= 0).sum(1) == valid.sum(1))


def test_padded_gt_ignored_and_no_gt_finite():
  rng = np.random.default_rng(2)
  logits, boxes, gt = random_set(rng, 2, 5, 2)
  valid = np.array([[True, True], [True, False]])
  base = set_losses.set_prediction_loss(logits, boxes, gt, valid)
  garbage = np.concatenate([gt, rng.uniform(-5, 5, (2, 3, 4)).astype(np.float32)], 1)
  garbage[1, 1] = 123.0  # a padded slot inside the real ones
  padded = set_losses.set_prediction_loss(logits, boxes, garbage, np.pad(valid, ((0, 0), (0, 3))))
  for k in ("loss", "focal", "l1", "giou", "num_boxes"):
    assert float(padded[k]) == pytest.approx(float(base[k]), rel=1e-6)
  np.testing.assert_array_equal(padded["gt_for_query"], base["gt_for_query"])

  none = np.zeros((2, 2), bool)

  def total(lg, bx):
    return set_losses.set_prediction_loss(lg, bx, gt, none)["loss"]

  got = set_losses.set_prediction_loss(logits, boxes, gt, none)
  assert float(got["l1"]) == float(got["giou"]) == 0.0 and float(got["num_boxes"]) == 1.0
  assert float(got["focal"]) == pytest.approx(np_focal(logits, np.zeros_like(logits)).sum(), rel=1e-5)
  g_logits, g_boxes = jax.jit(jax.grad(total, argnums=(0, 1)))(logits, boxes)
  chex.assert_tree_all_finite((g_logits, g_boxes))
  assert np.all(np.asarray(g_boxes) == 0)


def test_jitted_loss_traces_once():
  rng = np.random.default_rng(3)
  chex.clear_trace_counter()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def loss(logits, boxes, gt, valid):
    return set_losses.set_prediction_loss(logits, boxes, gt, valid)["loss"]

  for trial in range(3):
    logits, boxes, gt = random_set(rng, 2, 4, 3)
    valid = rng.random((2, 3)) < 0.6
    assert np.isfinite(float(loss(logits, boxes, gt, valid)))


# ------------------------------------------------------------------ training


def test_gradients_finite_and_overfits_one_image(model):
  """Adam on one toy image (a bright square; gt = its box): the set loss falls clearly."""
  _, m, params, _ = model
  images = np.zeros((1, 32, 32, 3), np.float32)
  images[0, 8:20, 14:28] = 2.0  # rows 8..20, cols 14..28
  images = jnp.asarray(images)
  sketches = inputs(6, b=1)[1]
  gt_boxes = set_losses.normalize_boxes(jnp.array([[[14.0, 8.0, 28.0, 20.0], [0, 0, 0, 0]]]), (32, 32))
  gt_valid = jnp.array([[True, False]])
  tx = optax.adam(3e-3)
  chex.clear_trace_counter()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(p, opt):
    def loss_fn(p):
      out = m.apply({"params": p}, images, sketches)
      return set_losses.locformer_loss(out, gt_boxes, gt_valid)["loss"], out
    (loss, out), grads = jax.value_and_grad(loss_fn, has_aux=True)(p)
    updates, opt = tx.update(grads, opt, p)
    return optax.apply_updates(p, updates), opt, loss, grads, out

  p, opt = params, tx.init(params)
  losses = []
  for i in range(40):
    p, opt, loss, grads, out = step(p, opt)
    if i == 0:
      chex.assert_tree_all_finite(grads)
      # The sketch encoder and the query-guided blocks get gradient (the sketch path trains).
      for name in ("sketch", "cross_0", "cls_hidden", "box_2"):
        assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grads[name])) > 0, name
    losses.append(float(loss))
  assert np.all(np.isfinite(losses))
  assert losses[-1] < 0.3 * losses[0], losses[::5]
  # The best-scored query has found the square.
  best = detect(out, (32, 32), 1)
  assert float(best["scores"][0, 0]) > 0.5
  iou = box_ops.pairwise_iou(best["boxes"][0], jnp.array([[14.0, 8.0, 28.0, 20.0]]))
  assert float(iou[0, 0]) > 0.7, best
