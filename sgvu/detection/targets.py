"""Training targets with static shapes: anchor/proposal matching, balanced sampling, Hungarian matching.

Ground truth comes padded: gt_boxes [G, 4] with gt_valid [G] bool, G fixed per dataset.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize

from sgvu.detection import boxes as box_ops

FG, BG, IGNORE = 1, 0, -1


def match_anchors(anchors: jax.Array, gt_boxes: jax.Array, gt_valid: jax.Array, high: float = 0.7,
                  low: float = 0.3, allow_low_quality: bool = True) -> tuple[jax.Array, jax.Array]:
  """Faster R-CNN's assignment of anchors [A, 4] to ground truth [G, 4] (gt_valid [G] bool).

  Returns (labels [A] int32: FG (1) where the best IoU >= high, BG (0) where it is < low,
  IGNORE (-1) between; matched [A] int32, the gt each anchor regresses to (its best valid gt;
  meaningless where the label is not FG)). With allow_low_quality, each valid gt's best anchors
  (all ties, if that IoU is > 0) are also FG and matched to it, so that no object goes without a
  positive; an anchor that is best for two gts takes the one it overlaps more. For the
  Fast R-CNN head use high = low = 0.5, allow_low_quality=False. With no valid gt, all are BG.
  """
  iou = jnp.where(gt_valid[None, :], box_ops.pairwise_iou(anchors, gt_boxes), -1.0)  # [A, G]
  best_iou = jnp.max(iou, axis=1)
  matched = jnp.argmax(iou, axis=1).astype(jnp.int32)
  labels = jnp.where(best_iou >= high, FG, jnp.where(best_iou < low, BG, IGNORE)).astype(jnp.int32)
  if allow_low_quality:
    gt_best = jnp.max(iou, axis=0)  # [G]
    is_best = (iou == gt_best[None, :]) & gt_valid[None, :] & (gt_best[None, :] > 0)
    promoted = jnp.any(is_best, axis=1)
    best_for = jnp.argmax(jnp.where(is_best, iou, -1.0), axis=1).astype(jnp.int32)
    labels = jnp.where(promoted, FG, labels)
    matched = jnp.where(promoted, best_for, matched)
  return labels, matched


def balanced_indices(labels: jax.Array, rng: jax.Array, num: int,
                     fg_fraction: float) -> tuple[jax.Array, jax.Array]:
  """A random minibatch of `num` (static) entries of labels [A] (FG / BG / IGNORE), as torchvision's sampler.

  Up to int(num * fg_fraction) FG, the rest filled with BG; IGNORE never. Returns (indices
  [num] int32, FG first then BG, padded with -1 when there are too few; valid [num] bool).
  Random priorities + top_k keep every shape static.
  """
  a = labels.shape[0]
  k_fg = min(int(num * fg_fraction), a)
  k_bg = min(num, a)
  prio = jax.random.uniform(rng, (a,))  # in [0, 1): -1 marks "not this kind"
  fg_prio, fg_idx = jax.lax.top_k(jnp.where(labels == FG, prio, -1.0), k_fg)
  bg_prio, bg_idx = jax.lax.top_k(jnp.where(labels == BG, prio, -1.0), k_bg)
  fg_ok = fg_prio >= 0
  bg_ok = (bg_prio >= 0) & (jnp.arange(k_bg) < num - jnp.sum(fg_ok))
  pad = max(num - k_fg - k_bg, 0)  # fewer entries than num at all
  idx = jnp.concatenate([fg_idx, bg_idx, jnp.zeros(pad, fg_idx.dtype)]).astype(jnp.int32)
  ok = jnp.concatenate([fg_ok, bg_ok, jnp.zeros(pad, bool)])
  first = jnp.argsort(~ok, stable=True)[:num]  # the chosen ones, in order, then the rest
  ok = ok[first]
  return jnp.where(ok, idx[first], -1), ok


def sample_balanced(labels: jax.Array, rng: jax.Array, num: int, fg_fraction: float) -> jax.Array:
  """`balanced_indices` as a mask: labels [A] -> [A] bool, at most `num` true.

  E.g. the RPN's 256 anchors with up to 50% FG, or the RoI head's 128 proposals with 25% FG.
  """
  idx, ok = balanced_indices(labels, rng, num, fg_fraction)
  return jnp.zeros(labels.shape, bool).at[jnp.where(ok, idx, labels.shape[0])].set(True, mode="drop")


def _hungarian_host(cost: np.ndarray, gt_valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  *batch, q, g = cost.shape
  cost = np.broadcast_to(cost, (*batch, q, g)).reshape(-1, q, g).astype(np.float64)
  gt_valid = np.broadcast_to(gt_valid, (*batch, g)).reshape(-1, g)
  gt_for_query = np.full(cost.shape[:2], -1, np.int32)
  query_for_gt = np.full((cost.shape[0], g), -1, np.int32)
  for b in range(cost.shape[0]):
    cols = np.flatnonzero(gt_valid[b])
    c = cost[b][:, cols]
    finite = np.isfinite(c)
    # A NaN/inf cost would make scipy refuse the matrix; the loss that made it is NaN anyway.
    big = (np.abs(c[finite]).max() + 1.0) * max(q, 1) if finite.any() else 1.0
    c = np.where(finite, c, big)
    rows, j = optimize.linear_sum_assignment(c)
    gt_for_query[b, rows] = cols[j]
    query_for_gt[b, cols[j]] = rows
  return gt_for_query.reshape(*batch, q), query_for_gt.reshape(*batch, g)


def _assign_rows(a: jax.Array) -> jax.Array:
  """Minimum-cost assignment of every row of a [n, m] (n <= m) to its own column, in pure JAX: the
  shortest-augmenting-path Hungarian algorithm (Kuhn-Munkres with potentials, O(n^2 m)), one row at
  a time, as lax loops (jit-, vmap- and compile-cache-friendly; no host round trip). Returns the
  row of each column [m] int32, -1 for the m - n columns left free."""
  n, m = a.shape
  a = jnp.pad(a, ((1, 0), (1, 0)))  # 1-based rows / columns; column 0 is the algorithm's sentinel
  cols = jnp.arange(m + 1)

  def add_row(i, state):
    u, v, p = state
    p = p.at[0].set(i)
    minv, used, way = jnp.full(m + 1, jnp.inf, a.dtype), jnp.zeros(m + 1, bool), jnp.zeros(m + 1, jnp.int32)

    def grow(s):  # one Dijkstra step: settle the closest free column j1
      u, v, p, way, minv, used, j0 = s
      used = used.at[j0].set(True)
      i0 = p[j0]
      reduced = a[i0] - u[i0] - v
      free = ~used & (cols > 0)
      better = free & (reduced < minv)
      minv, way = jnp.where(better, reduced, minv), jnp.where(better, j0, way)
      masked = jnp.where(free, minv, jnp.inf)
      j1 = jnp.argmin(masked).astype(jnp.int32)
      delta = masked[j1]
      u = u.at[p].add(jnp.where(used, delta, 0.0))  # the rows of settled columns (distinct), plus 0s
      v, minv = jnp.where(used, v - delta, v), jnp.where(used, minv, minv - delta)
      return u, v, p, way, minv, used, j1

    u, v, p, way, _, _, j0 = jax.lax.while_loop(lambda s: s[2][s[6]] != 0, grow,
                                                (u, v, p, way, minv, used, jnp.int32(0)))

    def flip(s):  # augment along the path back to the sentinel
      p, j0 = s
      j1 = way[j0]
      return p.at[j0].set(p[j1]), j1

    p, _ = jax.lax.while_loop(lambda s: s[1] != 0, flip, (p, j0))
    return u, v, p

  init = (jnp.zeros(n + 1, a.dtype), jnp.zeros(m + 1, a.dtype), jnp.zeros(m + 1, jnp.int32))
  _, _, p = jax.lax.fori_loop(1, n + 1, add_row, init)
  return p[1:] - 1


def _match_one(cost: jax.Array, gt_valid: jax.Array) -> tuple[jax.Array, jax.Array]:
  """hungarian_match of one image with Q >= G, in JAX: the gts are the rows (padded ones cost 0 everywhere, so
  they take whichever queries the valid ones leave and change nothing), the queries the columns."""
  q, g = cost.shape
  finite = jnp.isfinite(cost)
  big = (jnp.max(jnp.where(finite, jnp.abs(cost), 0.0)) + 1.0) * q
  c = jnp.where(finite, cost, big).astype(jnp.float32)
  gt_of_col = _assign_rows(jnp.where(gt_valid[:, None], c.T, 0.0))  # [Q]
  matched = (gt_of_col >= 0) & gt_valid[jnp.maximum(gt_of_col, 0)]
  gt_for_query = jnp.where(matched, gt_of_col, -1).astype(jnp.int32)
  query_for_gt = jnp.full(g, -1, jnp.int32).at[jnp.where(matched, gt_of_col, g)].set(
      jnp.arange(q, dtype=jnp.int32), mode="drop")
  return gt_for_query, query_for_gt


def hungarian_match(cost: jax.Array, gt_valid: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Minimum-cost one-to-one matching of Q predictions to the valid gts (DETR).

  cost [..., Q, G], gt_valid [..., G] bool -> (gt_for_query [..., Q] int32, -1 = "no object";
  query_for_gt [..., G] int32, -1 for invalid gts, and for valid ones if Q < #valid). With Q >= G
  (DETR's case) it runs in JAX (`_assign_rows`); otherwise scipy's linear_sum_assignment runs on
  the host through jax.pure_callback (the device waits for the host, and the compile cache cannot
  keep a program with a host callback). Non-finite costs count as a large finite cost. The
  result is an integer assignment: no gradient flows through it.
  """
  q, g = cost.shape[-2:]
  batch = jnp.broadcast_shapes(cost.shape[:-2], gt_valid.shape[:-1])
  cost = jax.lax.stop_gradient(cost)
  if q >= g:
    flat_cost = jnp.broadcast_to(cost, (*batch, q, g)).reshape(-1, q, g)
    flat_valid = jnp.broadcast_to(gt_valid, (*batch, g)).reshape(-1, g).astype(bool)
    gt_for_query, query_for_gt = jax.vmap(_match_one)(flat_cost, flat_valid)
    return gt_for_query.reshape(*batch, q), query_for_gt.reshape(*batch, g)
  shapes = (jax.ShapeDtypeStruct((*batch, q), jnp.int32), jax.ShapeDtypeStruct((*batch, g), jnp.int32))
  return jax.pure_callback(_hungarian_host, shapes, cost, gt_valid, vmap_method="broadcast_all")
