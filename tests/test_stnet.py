"""STNet (CSTBIR) modules and functions: shapes, the re-weighting, blocked scoring, losses, TIRG, ink masks."""

import math

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sgvu.data import composed_pipeline
from sgvu.losses import infonce, l2_normalize
from sgvu.models import stnet
from sgvu.models.clip import MODEL_PRESETS
from sgvu.models.vit import VisionTransformer

VISION = MODEL_PRESETS["tiny"].vision  # 32 px, patch 8: a 4 x 4 grid, width 32, E 24
GRID = VISION.image_size // VISION.patch_size
T, D, E = GRID * GRID, VISION.width, VISION.embed_dim
B, C, SKETCH_DIM, DEC = 3, 5, 12, 16


def _heads(decoder_size=DEC, decoder_width=8):
  return stnet.STNetHeads(embed_dim=E, sketch_dim=SKETCH_DIM, num_classes=C, grid=GRID,
                          decoder_size=decoder_size, decoder_width=decoder_width)


def _inputs(seed=0):
  k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
  return (jax.random.normal(k1, (B, T, D)), jax.random.normal(k2, (B, SKETCH_DIM)),
          jax.random.normal(k3, (B, E)))


@pytest.fixture(scope="module")
def heads_params():
  return nn.unbox(_heads().init(jax.random.key(0), *_inputs())["params"])


@pytest.fixture(scope="module")
def classifier():
  model = stnet.SketchClassifier(VISION, num_classes=C)
  images = jax.random.normal(jax.random.key(1), (2, 32, 32, 3))
  return model, nn.unbox(model.init(jax.random.key(0), images)["params"]), images


def test_sketch_classifier_shapes(classifier):
  model, params, images = classifier
  assert set(params) == {"img", "head"}
  embedding, logits = model.apply({"params": params}, images)
  chex.assert_shape(embedding, (2, E))
  chex.assert_shape(logits, (2, C))
  chex.assert_type([embedding, logits], jnp.float32)
  chex.assert_tree_all_finite((embedding, logits))


def test_heads_param_names_and_method_shapes(heads_params):
  p = heads_params
  assert set(p) == {"token_ln", "token_proj", "sketch_proj", "reweight_scale", "cls_text", "cls_image",
                    "box_hidden", "box_out", "dec_ln", "dec_in", "dec_conv_0", "dec_conv_1", "dec_norm_0",
                    "dec_norm_1", "dec_out"}
  chex.assert_shape([p["token_ln"]["scale"], p["token_ln"]["bias"]], (D,))
  assert set(p["token_proj"]) == {"kernel"}
  chex.assert_shape(p["token_proj"]["kernel"], (D, E))
  chex.assert_trees_all_close(p["reweight_scale"], math.log(E ** -0.5))
  model, v = _heads(), {"params": p}
  tokens, sketch, text = _inputs()
  h_tokens = model.apply(v, tokens, method="project_tokens")
  chex.assert_shape(h_tokens, (B, T, E))
  chex.assert_shape(model.apply(v, sketch, method="project_sketch"), (B, E))
  chex.assert_shape([model.apply(v, text, method="classify_text"),
                     model.apply(v, text, method="classify_image")], (B, C))
  chex.assert_shape(model.apply(v, h_tokens, method="boxes"), (B, T, 5))
  chex.assert_shape(model.apply(v, text, method="decode_sketch"), (B, DEC, DEC))
  chex.assert_trees_all_close(model.apply(v, method="scale"), E ** -0.5, rtol=1e-6)
  out = model.apply(v, tokens, sketch, text)
  chex.assert_shape([out["image"], out["sketch"]], (B, E))
  chex.assert_shape(out["alpha"], (B, T))
  chex.assert_shape([out["text_logits"], out["image_logits"]], (B, C))
  chex.assert_shape(out["boxes"], (B, T, 5))
  chex.assert_shape(out["reconstruction"], (B, DEC, DEC))
  chex.assert_tree_all_finite(out)


def test_project_tokens_matches_clip_ln_post_and_proj(heads_params, classifier):
  """With token_ln / token_proj copied from a CLIP image tower, its CLS token projects to its embedding."""
  _, params, images = classifier
  vp = params["img"]
  embedding, tokens = VisionTransformer(VISION).apply({"params": vp}, images, return_tokens=True)
  p = dict(heads_params, token_ln=vp["ln_post"], token_proj={"kernel": vp["proj"]})
  projected = _heads().apply({"params": p}, tokens, method="project_tokens")
  chex.assert_trees_all_close(projected[:, 0], embedding, atol=1e-5)


def test_heads_init_without_text():
  """init(tokens, sketch) alone (text_logits then classify the image embedding) makes the same tree."""
  tokens, sketch, _ = _inputs()
  params = _heads().init(jax.random.key(0), tokens, sketch)["params"]
  full = _heads().init(jax.random.key(0), *_inputs())["params"]
  chex.assert_trees_all_equal_shapes(params, full)


@pytest.mark.parametrize("size,width", [(48, 32), (20, 8)])
def test_decoder_output_shape(size, width):
  model = _heads(size, width)
  tokens, sketch, text = _inputs()
  params = model.init(jax.random.key(0), tokens, sketch, text)["params"]
  out = model.apply({"params": params}, text, method="decode_sketch")
  chex.assert_shape(out, (B, size, size))
  chex.assert_tree_all_finite(out)


def test_boxes_lie_in_their_cells(heads_params):
  model, v = _heads(), {"params": heads_params}
  pred = model.apply(v, 5.0 * jax.random.normal(jax.random.key(4), (B, T, E)), method="boxes")
  rows, cols = np.divmod(np.arange(T), GRID)
  np.testing.assert_array_equal(np.floor(np.asarray(pred[..., 1]) * GRID), np.broadcast_to(cols, (B, T)))
  np.testing.assert_array_equal(np.floor(np.asarray(pred[..., 2]) * GRID), np.broadcast_to(rows, (B, T)))
  assert float(pred[..., 3:].min()) >= 0 and float(pred[..., 3:].max()) <= 1
  with pytest.raises(ValueError, match="grid"):
    model.apply(v, jnp.zeros((B, T + 1, E)), method="boxes")


def test_reweight_sums_to_one_and_finds_the_sketched_token():
  g, q = 4, 3
  tokens = l2_normalize(jax.random.normal(jax.random.key(5), (g, T, E)))  # unit tokens
  sketch = jax.random.normal(jax.random.key(6), (q, E))
  pooled, alpha = stnet.reweight(tokens, sketch, 0.5)
  chex.assert_shape(pooled, (q, g, E))
  chex.assert_shape(alpha, (q, g, T))
  chex.assert_trees_all_close(alpha.sum(-1), jnp.ones((q, g)), atol=1e-6)
  chex.assert_trees_all_close(pooled, jnp.einsum("qgt,gte->qge", alpha, tokens), atol=1e-6)
  # A sketch along token 7 of image 2: with a large scale all of that image's weight goes to it.
  _, alpha = stnet.reweight(tokens, tokens[2, 7][None], 200.0)
  assert float(alpha[0, 2, 7]) > 0.99
  # Paired = the diagonal of the all-pairs version.
  sk = jax.random.normal(jax.random.key(7), (g, E))
  pooled_all, alpha_all = stnet.reweight(tokens, sk, 0.7)
  pooled_p, alpha_p = stnet.reweight_paired(tokens, sk, 0.7)
  chex.assert_shape([pooled_p, alpha_p], [(g, E), (g, T)])
  chex.assert_trees_all_close(pooled_p, pooled_all[jnp.arange(g), jnp.arange(g)], atol=1e-6)
  chex.assert_trees_all_close(alpha_p, alpha_all[jnp.arange(g), jnp.arange(g)], atol=1e-6)


@pytest.mark.parametrize("block", [3, 256])
def test_blocked_scores_equal_direct_reference(block):
  q, g = 7, 5
  ks = jax.random.split(jax.random.key(8), 3)
  text, sketch = jax.random.normal(ks[0], (q, E)), jax.random.normal(ks[1], (q, E))
  tokens = jax.random.normal(ks[2], (g, T, E))
  scores = stnet.blocked_scores(text, sketch, tokens, 0.3, block=block)
  chex.assert_shape(scores, (q, g))
  tx, sk, tok = (np.asarray(a, np.float64) for a in (text, sketch, tokens))
  logits = 0.3 * np.einsum("gte,qe->qgt", tok, sk)
  alpha = np.exp(logits - logits.max(-1, keepdims=True))
  alpha /= alpha.sum(-1, keepdims=True)
  pooled = np.einsum("qgt,gte->qge", alpha, tok)
  ref = np.einsum("qe,qge->qg", tx, pooled) / (
      np.linalg.norm(tx, axis=-1)[:, None] * np.linalg.norm(pooled, axis=-1))
  np.testing.assert_allclose(scores, ref, atol=1e-5)


def _perfect(boxes, grid=GRID, t=T):
  """Prediction [B, T, 5]: confident objectness on the centre cell only, which holds the exact box."""
  cell = np.asarray(stnet.target_cells(jnp.asarray(boxes), grid))
  pred = np.zeros((len(boxes), t, 5), np.float32)
  pred[..., 0] = -30.0
  pred[np.arange(len(boxes)), cell, 0] = 30.0
  cxcywh = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2,
                     boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], -1)
  pred[np.arange(len(boxes)), cell, 1:] = cxcywh
  return pred, cell


def test_grid_box_loss():
  boxes = np.array([[0.1, 0.1, 0.3, 0.35], [0.5, 0.6, 0.9, 0.95]], np.float32)
  valid = jnp.array([True, True])
  pred, cell = _perfect(boxes)
  np.testing.assert_array_equal(cell, [0 * GRID + 0, 3 * GRID + 2])  # centres (0.2, 0.225), (0.7, 0.775)
  perfect = float(stnet.grid_box_loss(jnp.asarray(pred), jnp.asarray(boxes), valid, GRID))
  assert 0.0 <= perfect < 1e-5
  wrong_cell = pred.copy()
  wrong_cell[0, :, 0] = np.roll(pred[0, :, 0], 1)
  wrong_box = pred.copy()
  wrong_box[1, cell[1], 1:] = [0.2, 0.2, 0.1, 0.1]
  for bad in (wrong_cell, wrong_box):
    assert float(stnet.grid_box_loss(jnp.asarray(bad), jnp.asarray(boxes), valid, GRID)) > perfect + 0.05
  # An invalid row with a terrible prediction changes nothing; no valid rows -> 0.
  garbage = np.concatenate([pred, np.asarray(wrong_box[1:])], 0)
  garbage_boxes = np.concatenate([boxes, [[0.0, 0.0, 1.0, 1.0]]], 0).astype(np.float32)
  loss = stnet.grid_box_loss(jnp.asarray(garbage), jnp.asarray(garbage_boxes), jnp.array([True, True, False]), GRID)
  chex.assert_shape(loss, ())
  np.testing.assert_allclose(loss, perfect, atol=1e-6)
  none = stnet.grid_box_loss(jnp.asarray(wrong_box), jnp.asarray(boxes), jnp.array([False, False]), GRID)
  assert float(none) == 0.0


def test_bce_dice_prefers_the_right_mask():
  mask = (jax.random.uniform(jax.random.key(9), (2, DEC, DEC)) > 0.8).astype(jnp.float32)
  right = stnet.bce_dice_loss(6.0 * (2 * mask - 1), mask)
  inverted = stnet.bce_dice_loss(-6.0 * (2 * mask - 1), mask)
  chex.assert_shape(right, ())
  assert float(right) < 0.05 < 1.0 < float(inverted)


def test_tirg_matches_its_formula_and_trains_both_weights():
  model = stnet.TIRG(E)
  x, t = jax.random.normal(jax.random.key(10), (B, E)), jax.random.normal(jax.random.key(11), (B, E))
  params = model.init(jax.random.key(0), x, t)["params"]
  assert float(params["w_gate"]) == 1.0 and float(params["w_res"]) == 10.0
  out, state = model.apply({"params": params}, x, t, capture_intermediates=True, mutable=["intermediates"])
  chex.assert_shape(out, (B, E))
  chex.assert_shape(state["intermediates"]["gate_fc"]["__call__"][0], (B, E))  # one gate per feature

  def ln(v, p):
    mu, var = v.mean(-1, keepdims=True), v.var(-1, keepdims=True)
    return (v - mu) / jnp.sqrt(var + 1e-6) * p["scale"] + p["bias"]

  def dense(v, p):
    return v @ p["kernel"] + p["bias"]

  xt = jnp.concatenate([x, t], -1)
  gate = jax.nn.sigmoid(dense(jax.nn.relu(ln(xt, params["gate_norm"])), params["gate_fc"]))
  res = dense(jax.nn.relu(dense(jax.nn.relu(ln(xt, params["res_norm"])), params["res_fc1"])), params["res_fc2"])
  chex.assert_trees_all_close(out, 1.0 * gate * x + 10.0 * res, atol=1e-4)
  grads = jax.grad(lambda p: jnp.sum(model.apply({"params": p}, x, t) ** 2))(params)
  assert float(jnp.abs(grads["w_gate"])) > 0 and float(jnp.abs(grads["w_res"])) > 0


def test_ink_mask():
  images = np.full((2, 32, 32, 3), 255, np.uint8)
  images[0, 10, 3:20] = 0  # a 1-px horizontal stroke
  images[1, 5:25, 17] = 30  # a dark-grey vertical one
  images[1, 0, 0] = 200  # light: not ink
  same = composed_pipeline.ink_mask(images, 32)
  assert same.dtype == np.float32 and same.shape == (2, 32, 32)
  assert same.sum() == 17 + 20 and same[0, 10, 3] == 1 and same[1, 0, 0] == 0
  half = composed_pipeline.ink_mask(images, 16)  # any ink in each 2 x 2 block: strokes survive
  np.testing.assert_array_equal(half, same.reshape(2, 16, 2, 16, 2).max(axis=(2, 4)))
  for size in (12, 40):  # non-integer down-sampling, up-sampling
    m = composed_pipeline.ink_mask(images, size)
    assert m.shape == (2, size, size) and set(np.unique(m)) == {0.0, 1.0}
    assert m[0].sum(1).max() >= size // 2 and m[1].sum(0).max() >= size // 2  # stroke still a line
  with pytest.raises(ValueError, match="S, S, 3"):
    composed_pipeline.ink_mask(images[..., 0], 16)


def test_jit_grad_through_heads_is_finite(heads_params):
  model = _heads()
  tokens, sketch, text = _inputs(1)
  labels = jnp.array([0, 3, 4])
  boxes = jnp.array([[0.1, 0.1, 0.5, 0.5], [0.4, 0.2, 0.9, 0.6], [0.0, 0.0, 1.0, 1.0]])
  valid = jnp.array([True, True, False])
  masks = (jax.random.uniform(jax.random.key(12), (B, DEC, DEC)) > 0.7).astype(jnp.float32)

  @jax.jit
  def loss_fn(p):
    out = model.apply({"params": p}, tokens, sketch, text)
    ce = optax.softmax_cross_entropy_with_integer_labels
    return (infonce(out["image"], text, 10.0) + ce(out["text_logits"], labels).mean()
            + ce(out["image_logits"], labels).mean() + stnet.grid_box_loss(out["boxes"], boxes, valid, GRID)
            + stnet.bce_dice_loss(out["reconstruction"], masks))

  loss, grads = jax.jit(jax.value_and_grad(loss_fn))(heads_params)
  chex.assert_shape(loss, ())
  chex.assert_tree_all_finite((loss, grads))
  for path, g in jax.tree_util.tree_leaves_with_path(grads):  # every parameter is trained
    assert float(jnp.abs(g).max()) > 0, jax.tree_util.keystr(path)
