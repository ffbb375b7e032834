"""Box algebra: areas, pairwise (G)IoU, the Faster R-CNN box coding, anchors, clipping.

Boxes are [..., 4] float arrays (x1, y1, x2, y2) in pixels; width = x2 - x1 (torchvision's
convention, no +1). Everything is pure jnp and shape-static.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp

# Largest log-scale a decoded box may grow by (torchvision's BBOX_XFORM_CLIP): an untrained
# head's large dw/dh would otherwise overflow exp() into inf boxes.
BBOX_XFORM_CLIP = math.log(1000.0 / 16)


def area(boxes: jax.Array) -> jax.Array:
  """[..., 4] -> [...]; inverted boxes count as empty (0)."""
  return jnp.maximum(boxes[..., 2] - boxes[..., 0], 0.0) * jnp.maximum(boxes[..., 3] - boxes[..., 1], 0.0)


def _inter_union(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
  lt = jnp.maximum(a[:, None, :2], b[None, :, :2])
  rb = jnp.minimum(a[:, None, 2:], b[None, :, 2:])
  wh = jnp.maximum(rb - lt, 0.0)
  inter = wh[..., 0] * wh[..., 1]
  return inter, area(a)[:, None] + area(b)[None, :] - inter


def _safe_div(num: jax.Array, den: jax.Array) -> jax.Array:
  # 0 / 0 (two empty boxes) is 0, and the unused branch never makes a NaN gradient.
  ok = den > 0
  return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


def pairwise_iou(a: jax.Array, b: jax.Array) -> jax.Array:
  """IoU of every pair: a [N, 4], b [M, 4] -> [N, M]; 0 where both boxes are empty."""
  inter, union = _inter_union(a, b)
  return _safe_div(inter, union)


def pairwise_giou(a: jax.Array, b: jax.Array) -> jax.Array:
  """Generalised IoU (Rezatofighi et al. 2019) of every pair: [N, 4], [M, 4] -> [N, M], in [-1, 1].

  GIoU = IoU - (|C| - |A u B|) / |C| with C the smallest box enclosing both.
  """
  inter, union = _inter_union(a, b)
  iou = _safe_div(inter, union)
  lt = jnp.minimum(a[:, None, :2], b[None, :, :2])
  rb = jnp.maximum(a[:, None, 2:], b[None, :, 2:])
  wh = jnp.maximum(rb - lt, 0.0)
  hull = wh[..., 0] * wh[..., 1]
  return iou - _safe_div(hull - union, hull)


def xyxy_to_cxcywh(boxes: jax.Array) -> jax.Array:
  """[..., 4] (x1, y1, x2, y2) -> [..., 4] (centre x, centre y, width, height)."""
  x1, y1, x2, y2 = jnp.moveaxis(boxes, -1, 0)
  return jnp.stack([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], axis=-1)


def cxcywh_to_xyxy(boxes: jax.Array) -> jax.Array:
  """[..., 4] (centre x, centre y, width, height) -> [..., 4] (x1, y1, x2, y2)."""
  cx, cy, w, h = jnp.moveaxis(boxes, -1, 0)
  return jnp.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)


def encode(boxes: jax.Array, anchors: jax.Array,
           weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0)) -> jax.Array:
  """Faster R-CNN regression targets of `boxes` relative to `anchors`, both [..., 4] -> [..., 4].

  (wx (cx - cx_a) / w_a, wy (cy - cy_a) / h_a, ww log(w / w_a), wh log(h / h_a)); the
  Fast R-CNN head conventionally uses weights (10, 10, 5, 5), the RPN (1, 1, 1, 1).
  Boxes and anchors must have positive widths and heights.
  """
  wx, wy, ww, wh = weights
  b = xyxy_to_cxcywh(boxes)
  a = xyxy_to_cxcywh(anchors)
  return jnp.stack([wx * (b[..., 0] - a[..., 0]) / a[..., 2],
                    wy * (b[..., 1] - a[..., 1]) / a[..., 3],
                    ww * jnp.log(b[..., 2] / a[..., 2]),
                    wh * jnp.log(b[..., 3] / a[..., 3])], axis=-1)


def decode(deltas: jax.Array, anchors: jax.Array,
           weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
           clip_size: tuple[float, float] | None = None) -> jax.Array:
  """Inverse of `encode`: deltas [..., 4] applied to anchors [..., 4] -> boxes [..., 4].

  The log-scales are clamped at BBOX_XFORM_CLIP; `clip_size` = (height, width) clips the
  result to the image.
  """
  wx, wy, ww, wh = weights
  a = xyxy_to_cxcywh(anchors)
  cx = deltas[..., 0] / wx * a[..., 2] + a[..., 0]
  cy = deltas[..., 1] / wy * a[..., 3] + a[..., 1]
  w = jnp.exp(jnp.minimum(deltas[..., 2] / ww, BBOX_XFORM_CLIP)) * a[..., 2]
  h = jnp.exp(jnp.minimum(deltas[..., 3] / wh, BBOX_XFORM_CLIP)) * a[..., 3]
  out = cxcywh_to_xyxy(jnp.stack([cx, cy, w, h], axis=-1))
  return out if clip_size is None else clip_boxes(out, clip_size)


def clip_boxes(boxes: jax.Array, size: tuple[float, float]) -> jax.Array:
  """Clips [..., 4] boxes to an image of `size` = (height, width): x in [0, width], y in [0, height]."""
  h, w = size
  x = jnp.clip(boxes[..., 0::2], 0.0, w)
  y = jnp.clip(boxes[..., 1::2], 0.0, h)
  return jnp.stack([x[..., 0], y[..., 0], x[..., 1], y[..., 1]], axis=-1)


def make_anchors(feature_hw: tuple[int, int], stride: float | tuple[float, float],
                 sizes: Sequence[float], ratios: Sequence[float], offset: float = 0.5) -> jax.Array:
  """Anchors of one feature level: [H * W * A, 4] with A = len(ratios) * len(sizes).

  Row-major over (y, x, ratio, size), so anchor k of cell (i, j) is row (i * W + j) * A + k,
  matching an RPN head's [H, W, A * 4] output reshaped to [H * W * A, 4]. A `ratio` is
  height / width (torchvision's), and each anchor keeps the area size^2. Cell (i, j) is centred
  at ((j + offset) * stride_x, (i + offset) * stride_y): 0.5 puts it at the centre of the
  pixels the cell covers (torchvision uses 0, the cell's top-left corner).
  """
  fh, fw = feature_hw
  sy, sx = (stride, stride) if isinstance(stride, (int, float)) else stride
  r = jnp.asarray(ratios, jnp.float32)
  s = jnp.asarray(sizes, jnp.float32)
  hs = (jnp.sqrt(r)[:, None] * s[None, :]).reshape(-1)  # [A]
  ws = (s[None, :] / jnp.sqrt(r)[:, None]).reshape(-1)
  base = jnp.stack([-ws, -hs, ws, hs], axis=-1) / 2  # [A, 4], centred on 0
  cy = (jnp.arange(fh, dtype=jnp.float32) + offset) * sy
  cx = (jnp.arange(fw, dtype=jnp.float32) + offset) * sx
  cy, cx = jnp.meshgrid(cy, cx, indexing="ij")
  centres = jnp.stack([cx, cy, cx, cy], axis=-1).reshape(-1, 1, 4)  # [H * W, 1, 4]
  return (centres + base[None]).reshape(-1, 4)
