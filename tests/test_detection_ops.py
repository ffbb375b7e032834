"""sgvu.detection against plain NumPy loops that implement the same definitions (torchvision's where it has one)."""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sgvu.detection import boxes as box_ops
from sgvu.detection import nms as nms_ops
from sgvu.detection import roi_align as roi_ops
from sgvu.detection import targets

# ------------------------------------------------------------ NumPy references


def ref_iou(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  out = np.zeros((len(a), len(b)))
  for i, j in itertools.product(range(len(a)), range(len(b))):
    iw = max(0.0, min(a[i, 2], b[j, 2]) - max(a[i, 0], b[j, 0]))
    ih = max(0.0, min(a[i, 3], b[j, 3]) - max(a[i, 1], b[j, 1]))
    area_a = max(a[i, 2] - a[i, 0], 0) * max(a[i, 3] - a[i, 1], 0)
    area_b = max(b[j, 2] - b[j, 0], 0) * max(b[j, 3] - b[j, 1], 0)
    union = area_a + area_b - iw * ih
    out[i, j] = iw * ih / union if union > 0 else 0.0
  return out


def ref_giou(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  iou = ref_iou(a, b)
  out = np.zeros_like(iou)
  for i, j in itertools.product(range(len(a)), range(len(b))):
    hull = (max(a[i, 2], b[j, 2]) - min(a[i, 0], b[j, 0])) * (max(a[i, 3], b[j, 3]) - min(a[i, 1], b[j, 1]))
    area_a = (a[i, 2] - a[i, 0]) * (a[i, 3] - a[i, 1])
    area_b = (b[j, 2] - b[j, 0]) * (b[j, 3] - b[j, 1])
    inter = iou[i, j] * (area_a + area_b) / (1 + iou[i, j])  # from iou = I / (A + B - I)
    out[i, j] = iou[i, j] - (hull - (area_a + area_b - inter)) / hull
  return out


def ref_nms(boxes, scores, thr, valid=None, labels=None):
  """Greedy NMS by the definition: best score first (ties: lower index), suppress IoU > thr."""
  valid = np.ones(len(scores), bool) if valid is None else valid
  iou = ref_iou(boxes, boxes)
  suppressed = ~valid
  keep = []
  for i in np.argsort(-scores, kind="stable"):
    if suppressed[i]:
      continue
    keep.append(i)
    same = np.ones(len(scores), bool) if labels is None else labels == labels[i]
    suppressed |= (iou[i] > thr) & same
  return keep


def ref_bilinear(f, y, x):
  """torchvision's bilinear_interpolate, one sample."""
  h, w = f.shape[:2]
  if y < -1.0 or y > h or x < -1.0 or x > w:
    return np.zeros(f.shape[2])
  y, x = max(y, 0.0), max(x, 0.0)
  y0, x0 = int(y), int(x)
  if y0 >= h - 1:
    y0 = y1 = h - 1
    y = float(y0)
  else:
    y1 = y0 + 1
  if x0 >= w - 1:
    x0 = x1 = w - 1
    x = float(x0)
  else:
    x1 = x0 + 1
  ly, lx = y - y0, x - x0
  return ((1 - ly) * (1 - lx) * f[y0, x0] + (1 - ly) * lx * f[y0, x1]
          + ly * (1 - lx) * f[y1, x0] + ly * lx * f[y1, x1])


def ref_roi_align(f, boxes, out_hw, scale, sr, aligned):
  f = np.asarray(f, np.float64)
  oh, ow = out_hw
  out = np.zeros((len(boxes), oh, ow, f.shape[2]))
  off = 0.5 if aligned else 0.0
  for r, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, np.float64)):
    sx, sy, ex, ey = x1 * scale - off, y1 * scale - off, x2 * scale - off, y2 * scale - off
    rw, rh = ex - sx, ey - sy
    if not aligned:
      rw, rh = max(rw, 1.0), max(rh, 1.0)
    bh, bw = rh / oh, rw / ow
    for i, j in itertools.product(range(oh), range(ow)):
      acc = 0.0
      for iy, ix in itertools.product(range(sr), range(sr)):
        acc = acc + ref_bilinear(f, sy + i * bh + (iy + 0.5) * bh / sr, sx + j * bw + (ix + 0.5) * bw / sr)
      out[r, i, j] = acc / (sr * sr)
  return out


def random_boxes(rng, n, size=100.0, min_wh=1.0, max_wh=40.0):
  xy = rng.uniform(0, size, (n, 2))
  wh = rng.uniform(min_wh, max_wh, (n, 2))
  return np.concatenate([xy, xy + wh], 1).astype(np.float32)


# ------------------------------------------------------------ boxes


def test_iou_and_giou_match_reference():
  rng = np.random.default_rng(0)
  a, b = random_boxes(rng, 13), random_boxes(rng, 9)
  b[0] = a[0]  # identical: IoU 1, GIoU 1
  b[1] = [500, 500, 510, 520]  # far away: IoU 0, GIoU < 0
  iou, giou = box_ops.pairwise_iou(a, b), box_ops.pairwise_giou(a, b)
  chex.assert_shape([iou, giou], (13, 9))
  np.testing.assert_allclose(iou, ref_iou(a, b), atol=1e-6)
  np.testing.assert_allclose(giou, ref_giou(a, b), atol=1e-6)
  assert iou[0, 0] == pytest.approx(1.0) and giou[0, 0] == pytest.approx(1.0)
  assert np.all(np.asarray(giou[:, 1]) < 0)
  empty = jnp.zeros((1, 4))  # two empty boxes: 0, not NaN
  assert float(box_ops.pairwise_iou(empty, empty)[0, 0]) == 0.0
  assert float(box_ops.pairwise_giou(empty, empty)[0, 0]) == 0.0
  np.testing.assert_allclose(box_ops.area(jnp.array([[0, 0, 2, 3], [5, 5, 4, 9.]])), [6.0, 0.0])


def test_iou_gradient_is_finite_for_empty_boxes():
  g = jax.grad(lambda b: box_ops.pairwise_giou(b, b).sum())(jnp.zeros((2, 4)))
  assert np.all(np.isfinite(g))


def test_box_formats_round_trip():
  rng = np.random.default_rng(1)
  b = random_boxes(rng, 20)
  c = box_ops.xyxy_to_cxcywh(b)
  np.testing.assert_allclose(c[:, :2], (b[:, :2] + b[:, 2:]) / 2, rtol=1e-6)
  np.testing.assert_allclose(c[:, 2:], b[:, 2:] - b[:, :2], rtol=1e-6)
  np.testing.assert_allclose(box_ops.cxcywh_to_xyxy(c), b, atol=1e-4)


def test_encode_matches_reference_and_decode_inverts_it():
  rng = np.random.default_rng(2)
  gt, anchors = random_boxes(rng, 50).astype(np.float64), random_boxes(rng, 50).astype(np.float64)
  weights = (10.0, 10.0, 5.0, 5.0)
  gw, gh = gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]
  aw, ah = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
  want = np.stack([10 * ((gt[:, 0] + gw / 2) - (anchors[:, 0] + aw / 2)) / aw,
                   10 * ((gt[:, 1] + gh / 2) - (anchors[:, 1] + ah / 2)) / ah,
                   5 * np.log(gw / aw), 5 * np.log(gh / ah)], 1)
  deltas = box_ops.encode(jnp.asarray(gt, jnp.float32), jnp.asarray(anchors, jnp.float32), weights)
  np.testing.assert_allclose(deltas, want, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(box_ops.decode(deltas, jnp.asarray(anchors, jnp.float32), weights), gt, atol=1e-3)


def test_decode_clamps_scale_and_clips():
  anchor = jnp.array([[10.0, 10.0, 26.0, 26.0]])  # 16 x 16
  out = box_ops.decode(jnp.array([[0.0, 0.0, 100.0, 100.0]]), anchor)  # exp(100) would overflow
  assert np.all(np.isfinite(out))
  np.testing.assert_allclose(out[0, 2] - out[0, 0], 1000.0, rtol=1e-4)  # 16 * 1000 / 16
  clipped = box_ops.decode(jnp.array([[0.0, 0.0, 100.0, 100.0]]), anchor, clip_size=(50, 80))
  np.testing.assert_allclose(clipped, [[0, 0, 80, 50]])
  np.testing.assert_allclose(box_ops.clip_boxes(jnp.array([[-5.0, 3.0, 90.0, 70.0]]), (60, 80)), [[0, 3, 80, 60]])


def test_anchors_count_centres_shapes():
  sizes, ratios, stride = (32.0, 64.0), (0.5, 1.0, 2.0), 16
  a = np.asarray(box_ops.make_anchors((3, 5), stride, sizes, ratios))
  chex.assert_shape(a, (3 * 5 * 6, 4))
  a = a.reshape(3, 5, 6, 4)
  c = np.asarray(box_ops.xyxy_to_cxcywh(a))
  np.testing.assert_allclose(c[..., 0], ((np.arange(5) + 0.5) * stride)[None, :, None] * np.ones((3, 1, 6)))
  np.testing.assert_allclose(c[..., 1], ((np.arange(3) + 0.5) * stride)[:, None, None] * np.ones((1, 5, 6)))
  want = [(r, s) for r in ratios for s in sizes]  # ratio-major, then size
  np.testing.assert_allclose(c[0, 0, :, 3] / c[0, 0, :, 2], [r for r, _ in want], rtol=1e-5)  # h / w
  np.testing.assert_allclose(c[0, 0, :, 2] * c[0, 0, :, 3], [s * s for _, s in want], rtol=1e-5)
  torchvision_like = np.asarray(box_ops.make_anchors((2, 2), (8, 4), (10.0,), (1.0,), offset=0.0))
  np.testing.assert_allclose(box_ops.xyxy_to_cxcywh(torchvision_like)[:, :2], [[0, 0], [4, 0], [0, 8], [4, 8]])


# ------------------------------------------------------------ NMS


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nms_matches_greedy_reference_with_ties_and_padding(seed):
  rng = np.random.default_rng(seed)
  n = 200
  b = random_boxes(rng, n, size=60.0)
  b[10:20] = b[0:10]  # duplicate boxes (IoU 1)
  b[20] = [5, 5, 5, 9]  # zero-area: overlaps nothing, survives
  scores = np.round(rng.random(n), 1).astype(np.float32)  # ~10 distinct values: many ties
  valid = rng.random(n) < 0.9
  for thr, max_out in [(0.5, 300), (0.3, 10), (0.7, 64)]:
    keep, ok = jax.jit(nms_ops.nms, static_argnums=(2, 3))(b, scores, thr, max_out, valid)
    chex.assert_shape([keep, ok], (max_out,))
    want = ref_nms(b, scores, thr, valid)[:max_out]
    assert np.asarray(ok).sum() == len(want)
    np.testing.assert_array_equal(np.asarray(keep)[:len(want)], want)
    assert np.all(np.asarray(keep)[len(want):] == -1) and not np.any(np.asarray(ok)[len(want):])


def test_nms_edge_cases():
  b = jnp.array([[0, 0, 10, 10], [0, 0, 10, 10.], [50, 50, 60, 60]])
  keep, ok = nms_ops.nms(b, jnp.array([0.5, 0.5, jnp.nan]), 0.5, 4)  # tie: lower index; NaN never
  np.testing.assert_array_equal(keep, [0, -1, -1, -1])
  keep, ok = nms_ops.nms(b, jnp.ones(3), 0.5, 4, valid=jnp.zeros(3, bool))  # nothing valid
  assert not np.any(ok) and np.all(np.asarray(keep) == -1)
  keep, _ = nms_ops.nms(b, jnp.array([0.1, 0.9, 0.5]), 1.0, 4)  # IoU 1 is not > 1: all kept
  np.testing.assert_array_equal(keep, [1, 2, 0, -1])


def test_batched_nms_matches_per_class_reference():
  rng = np.random.default_rng(5)
  b = random_boxes(rng, 120, size=40.0)
  scores = rng.random(120).astype(np.float32)
  labels = rng.integers(0, 3, 120)
  keep, ok = nms_ops.batched_nms(b, scores, labels, 0.4, 150)
  want = ref_nms(b, scores, 0.4, labels=labels)
  np.testing.assert_array_equal(np.asarray(keep)[:np.asarray(ok).sum()], want)


def test_nms_jit_vmap_static_shapes():
  rng = np.random.default_rng(3)
  b = np.stack([random_boxes(rng, 64, size=50.0) for _ in range(4)])
  s = rng.random((4, 64)).astype(np.float32)
  fn = jax.jit(jax.vmap(chex.assert_max_traces(lambda bb, ss: nms_ops.nms(bb, ss, 0.5, 16), n=1)))
  fn(b[::-1], s[::-1])
  keep, ok = fn(b, s)  # new data, same shapes: no retrace
  chex.assert_shape([keep, ok], (4, 16))
  for i in range(4):
    want = ref_nms(b[i], s[i], 0.5)[:16]
    np.testing.assert_array_equal(np.asarray(keep[i])[:len(want)], want)
    assert int(ok[i].sum()) == len(want)


# ------------------------------------------------------------ RoIAlign


def test_roi_align_linear_ramp_exact():
  # f = 2 y + 3 x + 1 (channel 0) and 5 - x (channel 1): bilinear sampling is exact on a linear map and
  # the samples of a bin are symmetric about its centre, so each bin is the map at the bin centre.
  h, w = 12, 16
  yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
  f = np.stack([2 * yy + 3 * xx + 1, 5 - xx], -1).astype(np.float32)
  scale = 0.5  # stride 2
  boxes = np.array([[4.0, 6.0, 20.0, 18.0], [2.0, 2.0, 9.0, 23.0]], np.float32)  # inside [1, 2W - 1]
  out = roi_ops.roi_align(jnp.asarray(f), jnp.asarray(boxes), (3, 4), scale, 2, True)
  chex.assert_shape(out, (2, 3, 4, 2))
  for r, (x1, y1, x2, y2) in enumerate(boxes):
    sx, sy = x1 * scale - 0.5, y1 * scale - 0.5
    cy = sy + (np.arange(3) + 0.5) * (y2 - y1) * scale / 3
    cx = sx + (np.arange(4) + 0.5) * (x2 - x1) * scale / 4
    np.testing.assert_allclose(out[r, ..., 0], 2 * cy[:, None] + 3 * cx[None, :] + 1, rtol=1e-5)
    np.testing.assert_allclose(out[r, ..., 1], np.broadcast_to(5 - cx[None, :], (3, 4)), rtol=1e-5)


@pytest.mark.parametrize("aligned", [True, False])
def test_roi_align_matches_reference_at_borders(aligned):
  rng = np.random.default_rng(4)
  f = rng.normal(size=(9, 11, 3)).astype(np.float32)
  boxes = np.concatenate([random_boxes(rng, 6, size=40.0, min_wh=0.5, max_wh=30.0),
                          [[-10, -6, 8, 5], [35, 30, 60, 50], [3, 3, 3.2, 3.1], [-30, -30, -5, -5]]]).astype(np.float32)
  for out_hw, sr, scale in [((7, 7), 2, 0.25), ((2, 3), 3, 0.5)]:
    got = roi_ops.roi_align(jnp.asarray(f), jnp.asarray(boxes), out_hw, scale, sr, aligned)
    np.testing.assert_allclose(got, ref_roi_align(f, boxes, out_hw, scale, sr, aligned), atol=1e-5)


def test_roi_align_jit_vmap_and_errors():
  rng = np.random.default_rng(6)
  f = rng.normal(size=(3, 8, 8, 4)).astype(np.float32)
  b = np.stack([random_boxes(rng, 5, size=24.0) for _ in range(3)])
  fn = jax.jit(jax.vmap(lambda ff, bb: roi_ops.roi_align(ff, bb, (2, 2), 0.25)))
  out = fn(f, b)
  chex.assert_shape(out, (3, 5, 2, 2, 4))
  for i in range(3):
    np.testing.assert_allclose(out[i], ref_roi_align(f[i], b[i], (2, 2), 0.25, 2, True), atol=1e-5)
  with pytest.raises(ValueError, match="sampling_ratio"):
    roi_ops.roi_align(jnp.asarray(f[0]), jnp.asarray(b[0]), sampling_ratio=0)


# ------------------------------------------------------------ targets


def test_match_anchors_invariants():
  rng = np.random.default_rng(7)
  anchors = box_ops.make_anchors((8, 8), 8, (12.0, 24.0), (0.5, 1.0, 2.0))
  gt = np.array([[3, 4, 20, 30], [30, 32, 60, 50], [40, 2, 47, 9], [0, 0, 64, 64], [0, 0, 1, 1]], np.float32)
  gt_valid = np.array([True, True, True, False, True])
  labels, matched = jax.jit(targets.match_anchors)(anchors, gt, gt_valid)
  labels, matched = np.asarray(labels), np.asarray(matched)
  chex.assert_shape([labels, matched], (anchors.shape[0],))
  iou = np.array(box_ops.pairwise_iou(anchors, gt))  # float32 as matched (ties must be exact)
  np.testing.assert_allclose(iou, ref_iou(anchors, gt), atol=1e-6)
  iou[:, ~gt_valid] = -1
  best = iou.max(1)
  promoted = np.zeros(len(anchors), bool)
  for j in np.flatnonzero(gt_valid):
    ties = np.flatnonzero(iou[:, j] == iou[:, j].max())
    assert np.all(labels[ties] == targets.FG), j  # every valid gt's best anchors are positives
    assert np.any(matched[ties] == j), j  # ... and regress to it (these gts are apart)
    promoted[ties] = True
  rest = ~promoted
  np.testing.assert_array_equal(labels[rest], np.where(best[rest] >= 0.7, 1, np.where(best[rest] < 0.3, 0, -1)))
  fg = labels == targets.FG
  assert np.all(gt_valid[matched[fg]])  # never the padded gt
  np.testing.assert_array_equal(matched[rest & fg], iou[rest & fg].argmax(1))
  labels, _ = targets.match_anchors(anchors, gt, np.zeros(5, bool))  # no gt: all background
  assert np.all(np.asarray(labels) == targets.BG)
  labels, _ = targets.match_anchors(anchors, gt, gt_valid, 0.5, 0.5, allow_low_quality=False)
  np.testing.assert_array_equal(labels, np.where(best >= 0.5, 1, 0))


@pytest.mark.parametrize("num, frac, n_fg, n_bg", [(256, 0.5, 30, 1000), (256, 0.5, 300, 1000),
                                                   (128, 0.25, 5, 40), (64, 0.25, 0, 10)])
def test_sample_balanced(num, frac, n_fg, n_bg):
  a = 1500
  labels = np.full(a, targets.IGNORE, np.int32)
  perm = np.random.default_rng(num + n_fg).permutation(a)
  labels[perm[:n_fg]] = targets.FG
  labels[perm[n_fg:n_fg + n_bg]] = targets.BG
  fn = jax.jit(targets.balanced_indices, static_argnums=(2, 3))
  idx, ok = fn(labels, jax.random.key(0), num, frac)
  chex.assert_shape([idx, ok], (num,))
  idx, ok = np.asarray(idx), np.asarray(ok)
  want_fg = min(n_fg, int(num * frac))
  want_total = min(num, want_fg + n_bg)
  assert ok.sum() == want_total and np.all(ok[:want_total]) and np.all(idx[~ok] == -1)
  chosen = idx[ok]
  assert len(set(chosen.tolist())) == len(chosen)
  assert np.all(labels[chosen[:want_fg]] == targets.FG) and np.all(labels[chosen[want_fg:]] == targets.BG)
  mask = np.asarray(targets.sample_balanced(labels, jax.random.key(0), num, frac))
  np.testing.assert_array_equal(np.flatnonzero(mask), np.sort(chosen))
  other, _ = fn(labels, jax.random.key(1), num, frac)
  assert not np.array_equal(np.asarray(other), idx) or want_total == n_fg + n_bg  # random unless all taken


def test_sample_balanced_fewer_entries_than_num():
  labels = jnp.array([1, 0, -1, 0, 1], jnp.int32)
  idx, ok = targets.balanced_indices(labels, jax.random.key(3), 16, 0.5)
  chex.assert_shape(idx, (16,))
  assert int(ok.sum()) == 4 and sorted(np.asarray(idx)[:4].tolist()[:2]) == [0, 4]
  assert sorted(np.asarray(idx)[:4].tolist()) == [0, 1, 3, 4] and np.all(np.asarray(idx)[4:] == -1)


def brute_force_assignment(cost, gt_valid):
  cols = np.flatnonzero(gt_valid)
  q = cost.shape[0]
  best, best_cost = None, np.inf
  if len(cols) <= q:
    for rows in itertools.permutations(range(q), len(cols)):
      c = sum(cost[r, g] for r, g in zip(rows, cols))
      if c < best_cost - 1e-12:
        best, best_cost = dict(zip(cols, rows)), c
  else:
    for gs in itertools.permutations(cols, q):
      c = sum(cost[r, g] for r, g in enumerate(gs))
      if c < best_cost - 1e-12:
        best, best_cost = {g: r for r, g in enumerate(gs)}, c
  return best_cost, best


@pytest.mark.parametrize("q, g", [(5, 3), (4, 4), (3, 5)])
def test_hungarian_equals_brute_force(q, g):
  rng = np.random.default_rng(q * 10 + g)
  match = jax.jit(targets.hungarian_match)
  for trial in range(5):
    cost = rng.random((q, g)).astype(np.float32)
    gt_valid = rng.random(g) < 0.8 if trial else np.ones(g, bool)
    gt_for_query, query_for_gt = (np.asarray(x) for x in match(cost, gt_valid))
    chex.assert_shape([gt_for_query, query_for_gt], [(q,), (g,)])
    want_cost, _ = brute_force_assignment(cost.astype(np.float64), gt_valid)
    pairs = [(r, j) for j, r in enumerate(query_for_gt) if r >= 0]
    assert sum(float(cost[r, j]) for r, j in pairs) == pytest.approx(want_cost, abs=1e-5)
    assert len(pairs) == min(q, gt_valid.sum()) and all(gt_valid[j] for _, j in pairs)
    for r, j in pairs:
      assert gt_for_query[r] == j
    assert np.sum(gt_for_query >= 0) == len(pairs)


def test_hungarian_vmap_and_nonfinite():
  rng = np.random.default_rng(9)
  cost = rng.random((3, 4, 3)).astype(np.float32)
  cost[1, 0, 0] = np.nan
  gt_valid = np.array([[True, True, False], [True, True, True], [False, False, False]])
  gt_for_query, query_for_gt = jax.jit(jax.vmap(targets.hungarian_match))(cost, gt_valid)
  chex.assert_shape([gt_for_query, query_for_gt], [(3, 4), (3, 3)])
  for b in range(3):
    want_cost, _ = brute_force_assignment(np.nan_to_num(cost[b], nan=1e9).astype(np.float64), gt_valid[b])
    got = [(int(r), j) for j, r in enumerate(np.asarray(query_for_gt[b])) if r >= 0]
    assert sum(np.nan_to_num(cost[b], nan=1e9)[r, j] for r, j in got) == pytest.approx(want_cost, abs=1e-5)
  assert np.all(np.asarray(gt_for_query[2]) == -1)


def test_hungarian_in_jax_equals_scipy_on_detr_sizes():
  """Q >= G runs the pure-JAX algorithm: the same total cost as scipy on the host, padded gts left out."""
  rng = np.random.default_rng(3)
  q, g, batch = 10, 8, 16
  cost = (rng.random((batch, q, g)) * 10).astype(np.float32)
  cost[:4] = np.round(cost[:4])  # ties
  gt_valid = rng.random((batch, g)) < 0.6
  gt_valid[0], gt_valid[1] = True, False
  gt_for_query, query_for_gt = (np.asarray(x) for x in jax.jit(targets.hungarian_match)(cost, gt_valid))
  host_gfq, _ = targets._hungarian_host(cost, gt_valid)  # pylint: disable=protected-access
  for b in range(batch):
    got = [(r, j) for r, j in enumerate(gt_for_query[b]) if j >= 0]
    want = [(r, j) for r, j in enumerate(host_gfq[b]) if j >= 0]
    assert sorted(j for _, j in got) == list(np.flatnonzero(gt_valid[b]))
    assert sum(cost[b, r, j] for r, j in got) == pytest.approx(sum(cost[b, r, j] for r, j in want), abs=1e-4)
    for r, j in got:
      assert query_for_gt[b, j] == r
    assert np.all(query_for_gt[b][~gt_valid[b]] == -1)
