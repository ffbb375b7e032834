"""CMA (sketch-guided localization, seed 000): shapes under jit, the attention path and its ablation, BatchNorm modes,
the losses against NumPy transcriptions of their definitions (the paper's margin-ranking loss literally), training."""

import functools
import itertools
import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sgvu.detection import boxes as box_ops
from sgvu.detection import losses
from sgvu.models import cma
from sgvu.models.cma import CMA, CMAConfig

SIZE = 64
# rbg keys: XLA's CPU compile of threefry costs seconds per random op (a tiny model's init: 20 s vs 2 s).
key = functools.partial(jax.random.key, impl="rbg")
TINY = dict(cnn_widths=(8, 16, 16), feature_stride=8, anchor_sizes=(16.0, 32.0), rpn_dim=16, head_dim=32,
            rpn_pre_nms_train=64, rpn_post_nms_train=32, rpn_pre_nms_test=48, rpn_post_nms_test=16, num_rois=16,
            rpn_batch=32, detections_per_image=8)
GT = np.array([[[4, 6, 30, 28], [32, 30, 60, 62], [0, 0, 0, 0]],
               [[10, 10, 50, 40], [0, 0, 0, 0], [0, 0, 0, 0]]], np.float32)
GT_VALID = np.array([[True, True, False], [True, False, False]])
GT_QUERY = np.array([[True, False, False], [True, False, False]])


def tiny(**changes) -> CMAConfig:
  return CMAConfig(**TINY).replace(**changes)


def inputs(seed=0, batch=2, k=1):
  a, b = jax.random.split(key(seed))
  return jax.random.normal(a, (batch, SIZE, SIZE, 3)), jax.random.normal(b, (batch, k, SIZE, SIZE, 3))


FROZEN = CMAConfig(**TINY).replace(batchnorm="frozen", attention_batchnorm="frozen")  # most tests' model


@functools.lru_cache(maxsize=None)
def init(cfg, k=1):
  """The variables of CMA(cfg) (cached: every distinct config costs a compile)."""
  images, sketches = inputs(k=k)
  return jax.jit(CMA(cfg).init)(key(0), images, sketches)


@functools.partial(jax.jit, static_argnums=0)
def forward(cfg, variables, images, sketches):
  return CMA(cfg).apply(variables, images, sketches)


@functools.partial(jax.jit, static_argnums=0)
def train_forward(cfg, variables, images, sketches, rng):
  """CMA.train_forward on the GT boxes; returns (outputs, updated model state)."""
  return CMA(cfg).apply(variables, images, sketches, GT, GT_VALID, GT_QUERY, rng, method=CMA.train_forward,
                        mutable=["batch_stats"])


def test_config_round_trip_and_validation():
  cfg = tiny(use_attention=False)
  assert CMAConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
  assert cma.paper_config().backbone == "resnet50" and cma.paper_config().feature_dim == 1024
  with pytest.raises(ValueError, match="batchnorm 'sometimes'"):
    tiny(batchnorm="sometimes")
  with pytest.raises(ValueError, match="feature_stride must be 16"):
    CMAConfig(backbone="resnet50", feature_stride=8)
  with pytest.raises(ValueError, match="unknown keys"):
    CMAConfig.from_dict({"backbone": "cnn", "widths": [8]})


def test_outputs_shapes_under_jit_without_retracing():
  model, variables = CMA(FROZEN), init(FROZEN)
  p, anchors = TINY["rpn_post_nms_test"], (SIZE // 8) ** 2 * 6

  @jax.jit
  @chex.assert_max_traces(n=1)
  def run(variables, images, sketches):
    return model.apply(variables, images, sketches), model.apply(variables, images, sketches, method=CMA.detect)

  for seed in (0, 1):  # new values, same shapes: one trace
    out, det = run(variables, *inputs(seed))
  chex.assert_shape(out["rpn_logits"], (2, anchors))
  chex.assert_shape([out["rpn_deltas"]], (2, anchors, 4))
  chex.assert_shape(out["anchors"], (anchors, 4))
  chex.assert_shape([out["proposals"], out["box_deltas"]], (2, p, 4))
  chex.assert_shape([out["proposal_valid"], out["scores"]], (2, p))
  chex.assert_shape(out["score_logits"], (2, p, 2))
  chex.assert_shape(out["attention"], (2, SIZE // 8, SIZE // 8))
  d = TINY["detections_per_image"]
  chex.assert_shape(det["boxes"], (2, d, 4))
  chex.assert_shape([det["scores"], det["valid"]], (2, d))
  props, valid = np.asarray(out["proposals"]), np.asarray(out["proposal_valid"])
  assert valid.any() and (props >= 0).all() and (props <= SIZE).all()
  assert (props[~valid] == 0).all() and np.isfinite(np.asarray(out["scores"])).all()
  s = np.asarray(det["scores"])
  assert det["valid"].any() and (np.diff(s, axis=1)[np.asarray(det["valid"])[:, 1:]] <= 1e-6).all()  # best first


def test_train_forward_samples_rois_with_static_shapes():
  out, _ = train_forward(FROZEN, init(FROZEN), *inputs(), key(5))
  r = TINY["num_rois"]
  chex.assert_shape([out["rois"], out["roi_box_targets"], out["roi_box_deltas"]], (2, r, 4))
  chex.assert_shape([out["roi_valid"], out["roi_fg"], out["roi_labels"], out["roi_scores"]], (2, r))
  chex.assert_shape(out["proposals"], (2, TINY["rpn_post_nms_train"], 4))  # the training proposal count
  valid, fg, labels = (np.asarray(out[k]) for k in ("roi_valid", "roi_fg", "roi_labels"))
  assert valid.all()  # 32 proposals + gt boxes are enough candidates for 16 RoIs
  # The gt boxes themselves are candidates, so every image has FG RoIs, at most 25% of 16.
  assert (fg.sum(1) >= 1).all() and (fg.sum(1) <= 4).all()
  assert (labels <= fg).all() and labels.sum() >= 2  # query boxes; image 0's second box is FG, label 0
  targets = np.asarray(out["roi_box_targets"])
  assert (targets[labels == 0] == 0).all() and np.isfinite(targets).all()


def test_attention_ablation_removes_the_sketch_from_the_rpn():
  images, sketches = inputs()
  _, other = inputs(seed=7)
  for use_attention in (True, False):
    cfg = FROZEN.replace(use_attention=use_attention)
    variables = init(cfg)
    assert ("attention" in variables["params"]) == use_attention
    assert ("attention_fuse" in variables["params"]) == use_attention
    a, b = forward(cfg, variables, images, sketches), forward(cfg, variables, images, other)
    rpn_moved = float(jnp.max(jnp.abs(a["rpn_logits"] - b["rpn_logits"])))
    assert (rpn_moved > 0) == use_attention, (use_attention, rpn_moved)  # without attention: bit-identical
    assert ("attention" in a) == use_attention
    assert float(jnp.max(jnp.abs(a["score_logits"] - b["score_logits"]))) > 0  # scoring always sees the sketch


def test_cross_modal_attention_formula():
  """A = op(<max-pool theta_S(F_S), theta_I(F_I)> / D), theta = conv -> BN (running stats) -> ReLU -> conv."""
  c, d = 6, 4
  f_img = jax.random.normal(key(1), (2, 5, 5, c))
  f_sk = jax.random.normal(key(2), (2, 3, 4, 4, c))  # k = 3: the per-sketch maps are averaged
  module = cma.CrossModalAttention(d, "frozen")
  variables = module.init(key(0), f_img, f_sk, False)
  p = jax.tree.map(lambda x: np.asarray(x, np.float64), variables["params"])
  p["op"] = {"kernel": np.array([[1.7]]), "bias": np.array([0.3])}
  got = module.apply({**variables, "params": p}, f_img, f_sk, False)

  def theta(x, q):
    h = x @ q["conv1"]["kernel"][0, 0]
    h = np.maximum(h / np.sqrt(1 + 1e-5) * q["bn"]["scale"] + q["bn"]["bias"], 0)  # mean 0, var 1
    return h @ q["conv2"]["kernel"][0, 0]

  t_img = theta(np.asarray(f_img, np.float64), p["theta_image"])
  want = np.zeros((2, 5, 5))
  for b, k in itertools.product(range(2), range(3)):
    s = theta(np.asarray(f_sk[b, k], np.float64), p["theta_sketch"]).reshape(-1, d).max(0)
    want[b] += (1.7 * (t_img[b] @ s) / d + 0.3) / 3
  np.testing.assert_allclose(got[..., 0], want, rtol=1e-4, atol=1e-5)


def test_batchnorm_frozen_keeps_its_statistics():
  """'frozen' normalises with the running statistics in training too ('train' updates them: see the training test)."""
  variables = init(FROZEN)
  _, new = train_forward(FROZEN, variables, *inputs(), key(1))
  for a, b in zip(jax.tree.leaves(variables["batch_stats"]), jax.tree.leaves(new["batch_stats"]), strict=True):
    np.testing.assert_array_equal(a, b)
  abstract = jax.eval_shape(CMA(tiny(batchnorm="none", attention_batchnorm="none")).init, key(0), *inputs())
  assert set(abstract) == {"params"}  # 'none': no BatchNorm, no model state


# ------------------------------------------------------------------------------------------ losses vs NumPy

def ref_margin_ranking(a, y, valid, m_pos=0.7, m_neg=0.3):
  """The seed's L(R, s), transcribed term by term over the valid RoIs of one query."""
  idx = [i for i in range(len(a)) if valid[i]]
  total = 0.0
  for n, k in enumerate(idx):
    total += y[k] * max(m_pos - a[k], 0) + (1 - y[k]) * max(a[k] - m_neg, 0)
    for l in idx[n + 1:]:
      if y[l] == y[k]:
        total += max(abs(a[k] - a[l]) - m_neg, 0)
      else:
        total += max(m_pos - abs(a[k] - a[l]), 0)
  return total, len(idx) + len(idx) * (len(idx) - 1) / 2


def test_margin_ranking_loss_is_the_papers_formula():
  rng = np.random.default_rng(0)
  a = rng.uniform(size=(4, 9)).astype(np.float32)
  y = rng.integers(0, 2, size=(4, 9))
  valid = rng.uniform(size=(4, 9)) < 0.7
  valid[3] = False  # a query without any valid RoI
  ref = [ref_margin_ranking(a[b], y[b], valid[b]) for b in range(4)]
  terms = jax.jit(losses.margin_ranking_terms)
  loss = jax.jit(losses.margin_ranking_loss, static_argnames="reduction")
  total, count = terms(jnp.asarray(a), jnp.asarray(y), jnp.asarray(valid))
  np.testing.assert_allclose(total, [t for t, _ in ref], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(count, [c for _, c in ref])
  np.testing.assert_allclose(loss(a, y, valid, reduction="sum"), np.mean([t for t, _ in ref]), rtol=1e-5)
  np.testing.assert_allclose(loss(a, y, valid), sum(t for t, _ in ref) / sum(c for _, c in ref), rtol=1e-5)
  # By hand: positives 0.5 and 0.95 (the third RoI is padding): unary 0.7 - 0.5, same-label pair 0.45 - 0.3.
  pair = terms(jnp.array([[0.5, 0.95, 0.0]]), jnp.array([[1, 1, 0]]), jnp.array([[True, True, False]]))[0]
  np.testing.assert_allclose(pair, [0.2 + 0.15], atol=1e-6)
  pair = terms(jnp.array([[0.75, 0.25, 0.1]]), jnp.array([[1, 0, 0]]), jnp.array([[True, True, True]]))[0]
  # unary 0; pairs (0.75, 0.25): 0.7 - 0.5; (0.75, 0.1): 0.7 - 0.65; (0.25, 0.1) same label: 0.
  np.testing.assert_allclose(pair, [0.2 + 0.05], atol=1e-6)
  # No valid RoI: a finite zero with zero gradients; with some, finite gradients.
  g = jax.grad(lambda s: loss(s, y, np.zeros_like(valid)))(jnp.asarray(a))
  assert np.isfinite(np.asarray(g)).all() and not np.asarray(g).any()
  g = jax.grad(lambda s: loss(s, y, valid))(jnp.asarray(a))
  assert np.isfinite(np.asarray(g)).all() and not np.asarray(g)[~valid].any()


def test_smooth_l1_bce_cross_entropy_against_numpy():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(50,)).astype(np.float32) * 0.5
  for beta in (1.0, 1 / 9):
    want = np.where(np.abs(x) < beta, 0.5 * x ** 2 / beta, np.abs(x) - 0.5 * beta)
    np.testing.assert_allclose(losses.smooth_l1(x, beta), want, rtol=1e-6)
  # Region cross-entropy and box loss: masked means.
  logits = rng.normal(size=(2, 5, 2)).astype(np.float32)
  labels = rng.integers(0, 2, size=(2, 5))
  valid = rng.uniform(size=(2, 5)) < 0.6
  ce = np.log(np.exp(logits).sum(-1)) - np.take_along_axis(logits, labels[..., None], -1)[..., 0]
  np.testing.assert_allclose(losses.region_cross_entropy(logits, labels, valid), ce[valid].mean(), rtol=1e-5)
  d, t = rng.normal(size=(2, 5, 4)), rng.normal(size=(2, 5, 4))
  sl1 = np.where(np.abs(d - t) < 1, 0.5 * (d - t) ** 2, np.abs(d - t) - 0.5).sum(-1)
  np.testing.assert_allclose(losses.region_box_loss(d, t, valid), sl1[valid].mean(), rtol=1e-5)
  assert float(losses.region_box_loss(d, t, np.zeros_like(valid))) == 0.0
  # RPN: BCE over the sampled anchors, smooth-L1 (beta 1/9) over the FG ones, with the same sample.
  cfg = tiny()
  anchors = np.asarray(jax.device_get(box_ops.make_anchors((8, 8), 8, cfg.anchor_sizes, cfg.anchor_ratios)))
  z = rng.normal(size=(2, len(anchors))).astype(np.float32)
  dz = rng.normal(size=(2, len(anchors), 4)).astype(np.float32) * 0.3
  rng_key = key(3)
  rpn_losses = jax.jit(functools.partial(losses.rpn_losses, num=32))
  cls, box = rpn_losses(z, dz, anchors, GT, GT_VALID, rng_key)
  # The same sample (vmapped as rpn_losses does: rbg keys draw differently per key under vmap).
  tg = jax.jit(jax.vmap(lambda g, v, k: losses.rpn_targets(anchors, g, v, k, 32)))(
      GT, GT_VALID, jax.random.split(rng_key, 2))
  sampled, fg, tbox = (np.asarray(tg[k]) for k in ("sampled", "fg", "box_targets"))
  assert sampled.sum(1).max() <= 32 and fg.sum(1).min() >= 1 and (fg.sum(1) <= 16).all()
  bce = np.maximum(z, 0) - z * fg + np.log1p(np.exp(-np.abs(z)))
  np.testing.assert_allclose(cls, bce[sampled].mean(), rtol=1e-5)
  e = np.abs(dz - tbox)
  sl1 = np.where(e < 1 / 9, 0.5 * e ** 2 * 9, e - 0.5 / 9).sum(-1)
  np.testing.assert_allclose(box, sl1[fg].mean(), rtol=1e-5)
  # No ground truth: only background, zero box loss, all finite.
  cls, box = rpn_losses(z, dz, anchors, GT, np.zeros_like(GT_VALID), rng_key)
  assert np.isfinite(float(cls)) and float(box) == 0.0


def test_training_steps_decrease_the_loss_with_finite_gradients():
  cfg = tiny(batchnorm="train")
  model = CMA(cfg)
  variables = init(cfg)
  images, sketches = inputs()
  tx = optax.adam(3e-3)

  def loss_fn(params, stats):
    out, new = model.apply({"params": params, "batch_stats": stats}, images, sketches, GT, GT_VALID, GT_QUERY,
                           key(1), method=CMA.train_forward, mutable=["batch_stats"])
    total, terms = losses.cma_losses(out, GT, GT_VALID, key(2), **cfg.rpn_target_kwargs())
    return total, (terms, new["batch_stats"])

  @jax.jit
  def step(params, stats, opt):
    (loss, (terms, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, stats)
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), stats, opt, loss, terms, grads

  params, stats = variables["params"], variables["batch_stats"]
  stats0 = stats
  opt = tx.init(params)
  history = []
  for i in range(3):
    params, stats, opt, loss, terms, grads = step(params, stats, opt)
    history.append(float(loss))
    if i == 0:
      assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))
      assert set(terms) == {"rpn_cls", "rpn_box", "region_cls", "region_box", "margin", "loss"}
      assert all(np.isfinite(float(v)) for v in terms.values())
      # Every head gets a gradient: the attention, both backbones, the RPN, the scorer.
      for name in ("attention", "img", "sketch", "rpn", "score_out", "box_out"):
        assert any(np.abs(np.asarray(g)).max() > 0 for g in jax.tree.leaves(grads[name])), name
  assert history[-1] < history[0], history
  # batchnorm 'train': the running statistics moved (backbones, region head and theta alike).
  for path, a in jax.tree_util.tree_leaves_with_path(stats0):
    b = functools.reduce(lambda t, k: t[k.key], path, stats)
    assert np.abs(np.asarray(a) - np.asarray(b)).max() > 0, jax.tree_util.keystr(path)


@pytest.mark.parametrize("fusion", cma.SKETCH_FUSIONS)
def test_three_sketch_queries(fusion):
  cfg = FROZEN.replace(num_sketches=3, sketch_fusion=fusion)
  images, sketches = inputs(k=3)
  abstract = jax.eval_shape(CMA(cfg).init, key(0), images, sketches)
  assert ("sketch_fuse" in abstract["params"]) == (fusion == "conv")
  with pytest.raises(ValueError, match="k=3"):
    jax.eval_shape(CMA(cfg).apply, abstract, images, sketches[:, :1])
  if fusion in ("mean", "max"):  # jnp.mean / jnp.max of the maps: the shapes suffice
    out = jax.eval_shape(CMA(cfg).apply, abstract, images, sketches)
  else:  # the paper's two: run them
    out = forward(cfg, init(cfg, k=3), images, sketches)
    assert np.isfinite(np.asarray(out["scores"])).all()
  chex.assert_shape(out["scores"], (2, TINY["rpn_post_nms_test"]))


def _count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def test_resnet50_configuration_builds_and_runs():
  cfg = cma.paper_config(rpn_pre_nms_test=64, rpn_post_nms_test=4, detections_per_image=4)
  model = CMA(cfg)
  images, sketches = inputs(batch=1)
  abstract = jax.eval_shape(model.init, key(0), images, sketches)
  shapes = abstract["params"]
  # torchvision's resnet50 without fc: conv1 .. layer4 = 23,508,032 parameters (BN scale/bias included).
  assert _count(shapes["img"]) + _count(shapes["region"]) == 23_508_032
  assert _count(shapes["sketch"]) == _count(shapes["img"])  # conv1 .. layer3, separate weights
  # Random values from the shapes (std 0.02; BN statistics mean 0, var 1): no second compile for the init.
  rng = np.random.default_rng(0)
  params = jax.tree.map(lambda s: rng.normal(0, 0.02, s.shape).astype(np.float32), shapes)
  stats = jax.tree_util.tree_map_with_path(
      lambda path, s: np.full(s.shape, float(path[-1].key == "var"), np.float32), abstract["batch_stats"])
  variables = {"params": params, "batch_stats": stats}
  out = jax.jit(lambda v: model.apply(v, images, sketches, method=CMA.detect))(variables)
  chex.assert_shape(out["boxes"], (1, 4, 4))
  assert np.isfinite(np.asarray(out["boxes"])).all()
