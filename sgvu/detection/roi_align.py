"""RoIAlign (He et al., Mask R-CNN) with torchvision.ops.roi_align's semantics, as two small matmuls.

For each bin, torchvision averages sampling_ratio^2 bilinear samples on a regular grid inside the
bin. Bilinear interpolation is separable and so is torchvision's out-of-range rule (a sample
more than one pixel outside the map counts as 0), so the average over a bin equals
Ay[bin_y] . F . Ax[bin_x] with Ay [oh, H] and Ax [ow, W] the sample weights averaged per bin.
Two contractions replace gathers: exact, shape-static, differentiable in the features, and a
matmul is what TPUs and GPUs run best.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _axis_weights(start: jax.Array, bin_size: jax.Array, bins: int, sampling_ratio: int,
                  size: int) -> jax.Array:
  """Averaged bilinear weights of one axis: start, bin_size [R] -> [R, bins, size]."""
  steps = (jnp.arange(sampling_ratio, dtype=start.dtype) + 0.5) / sampling_ratio  # within a bin
  pos = jnp.arange(bins, dtype=start.dtype)[:, None] + steps[None, :]  # [bins, sr], in bin units
  t = start[:, None, None] + pos[None] * bin_size[:, None, None]  # [R, bins, sr] sample coordinates
  inside = (t >= -1.0) & (t <= size)
  t = jnp.maximum(t, 0.0)
  low = jnp.floor(t).astype(jnp.int32)
  at_edge = low >= size - 1  # torchvision: samples past the last pixel centre read the last pixel
  low = jnp.where(at_edge, size - 1, low)
  high = jnp.where(at_edge, size - 1, low + 1)
  frac = jnp.where(at_edge, 0.0, t - low)
  w = ((1.0 - frac)[..., None] * jax.nn.one_hot(low, size, dtype=start.dtype)
       + frac[..., None] * jax.nn.one_hot(high, size, dtype=start.dtype))
  return jnp.mean(w * inside[..., None], axis=2)  # average the sr samples of each bin


def roi_align(features: jax.Array, boxes: jax.Array, output_size: tuple[int, int] = (7, 7),
              spatial_scale: float = 1.0, sampling_ratio: int = 2, aligned: bool = True,
              precision: jax.lax.PrecisionLike = None) -> jax.Array:
  """Pools features [H, W, C] inside boxes [R, 4] (x1, y1, x2, y2 in input-image pixels) -> [R, oh, ow, C].

  spatial_scale maps image pixels to feature cells (1 / stride). aligned=True shifts by half a
  pixel so that feature cell i is centred at image coordinate (i + 0.5) / spatial_scale (the
  pixel model of Detectron2 and of `make_anchors`' default offset); aligned=False is the
  original Mask R-CNN version, where boxes are also at least one cell wide. `sampling_ratio`
  must be positive: torchvision's adaptive choice (<= 0) would make shapes depend on the boxes.
  For a batch, vmap over features [B, H, W, C] and boxes [B, R, 4]. Memory: the intermediate is
  [R, oh, W, C]; chunk the boxes (lax.map) if that is too large.
  """
  if sampling_ratio <= 0:
    raise ValueError(f"sampling_ratio must be positive (static shapes), got {sampling_ratio}")
  oh, ow = output_size
  h, w, _ = features.shape
  dtype = jnp.promote_types(features.dtype, jnp.float32)
  boxes = boxes.astype(dtype) * spatial_scale - (0.5 if aligned else 0.0)
  bw = boxes[:, 2] - boxes[:, 0]
  bh = boxes[:, 3] - boxes[:, 1]
  if not aligned:
    bw, bh = jnp.maximum(bw, 1.0), jnp.maximum(bh, 1.0)
  wy = _axis_weights(boxes[:, 1], bh / oh, oh, sampling_ratio, h)  # [R, oh, H]
  wx = _axis_weights(boxes[:, 0], bw / ow, ow, sampling_ratio, w)  # [R, ow, W]
  rows = jnp.einsum("rih,hwc->riwc", wy.astype(features.dtype), features, precision=precision)
  return jnp.einsum("riwc,rjw->rijc", rows, wx.astype(features.dtype), precision=precision)
