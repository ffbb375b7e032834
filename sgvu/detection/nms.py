"""Greedy non-maximum suppression with static shapes (works under jit and vmap).

Candidates are visited best score first (equal scores: lower index first). Each step keeps the
best candidate still standing and suppresses every other candidate whose IoU with it is above
`iou_threshold` (strictly, as torchvision), so a step costs O(N) and memory stays O(N): no
N x N IoU matrix, which at RPN sizes (N ~ 10^4) would not fit in memory.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from sgvu.detection import boxes as box_ops


def nms(boxes: jax.Array, scores: jax.Array, iou_threshold: float, max_out: int,
        valid: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
  """Greedy NMS of boxes [N, 4] with scores [N].

  valid [N] bool (optional): candidates that may be kept at all (padding, a score threshold);
  NaN scores are never kept. Returns (indices [max_out] int32 into the N boxes, best score
  first, padded with -1; valid [max_out] bool). `max_out` is static; the loop stops early
  once no candidate is left (under vmap, when none is left in any row).
  """
  return _greedy(boxes, scores, None, iou_threshold, max_out, valid)


def batched_nms(boxes: jax.Array, scores: jax.Array, labels: jax.Array, iou_threshold: float,
                max_out: int, valid: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
  """NMS within each class: boxes [N, 4], scores [N], labels [N] int -> as `nms`.

  A kept box suppresses only boxes of its own label. (torchvision shifts each class's boxes
  apart instead; at float32 that shift costs IoU precision, a label test costs nothing.)
  """
  return _greedy(boxes, scores, labels, iou_threshold, max_out, valid)


def _greedy(boxes, scores, labels, iou_threshold, max_out, valid):
  boxes, scores = jnp.asarray(boxes), jnp.asarray(scores)
  n = boxes.shape[0]
  ok = ~jnp.isnan(scores) if valid is None else valid & ~jnp.isnan(scores)
  order = jnp.argsort(-jnp.where(ok, scores, -jnp.inf), stable=True)
  sorted_boxes = boxes[order]
  sorted_area = box_ops.area(sorted_boxes)
  sorted_labels = None if labels is None else jnp.asarray(labels)[order]
  alive0 = ok[order]  # [N] in score order: not yet kept or suppressed

  def cond(state):
    i, alive, _ = state
    return (i < max_out) & jnp.any(alive)

  def body(state):
    i, alive, keep = state
    best = jnp.argmax(alive)  # the first alive candidate is the best one left
    b = sorted_boxes[best]
    lt = jnp.maximum(sorted_boxes[:, :2], b[:2])
    rb = jnp.minimum(sorted_boxes[:, 2:], b[2:])
    wh = jnp.maximum(rb - lt, 0.0)
    inter = wh[:, 0] * wh[:, 1]
    union = sorted_area + sorted_area[best] - inter
    iou = jnp.where(union > 0, inter / jnp.where(union > 0, union, 1.0), 0.0)
    suppress = iou > iou_threshold
    if sorted_labels is not None:
      suppress = suppress & (sorted_labels == sorted_labels[best])
    alive = alive & ~suppress & (jnp.arange(n) != best)
    return i + 1, alive, keep.at[i].set(order[best].astype(jnp.int32))

  keep0 = jnp.full((max_out,), -1, jnp.int32)
  _, _, keep = jax.lax.while_loop(cond, body, (jnp.int32(0), alive0, keep0))
  return keep, keep >= 0

