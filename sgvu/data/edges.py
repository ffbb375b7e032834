"""Canny edge maps drawn like sketches: black edges on white paper, pixel-aligned with the photo.

The edge domain of cross-domain context prediction: a photo's edge map stands in for a sketch
of it, so a patch pair taken at the same place in photo and edge map shows the same content.
The detector is scikit-image's (`skimage.feature.canny`), not a hand-written one.
"""

from __future__ import annotations

import numpy as np
from skimage import color, feature

INK, PAPER = 0, 255


def _check_image(image: np.ndarray, what: str = "image") -> None:
  if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
    dtype = getattr(image, "dtype", type(image).__name__)
    raise ValueError(f"{what}: expected a uint8 numpy array, got dtype {dtype}")
  ok_rank = image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)
  if not ok_rank or min(image.shape[:2]) < 1:
    raise ValueError(f"{what}: expected shape [H, W, 3] or [H, W] with H, W >= 1, got {image.shape}")


def canny_edges(image: np.ndarray, sigma: float = 1.5) -> np.ndarray:
  """uint8 [H, W, 3] (or [H, W]) -> uint8 [H, W, 3]: 0 on Canny edges, 255 elsewhere.

  A constant image has no gradient, so it gives an all-white map.
  """
  _check_image(image)
  if not sigma > 0:
    raise ValueError(f"canny_edges: sigma must be > 0, got {sigma}")
  grey = color.rgb2gray(image) if image.ndim == 3 else image.astype(np.float64) / 255.0
  edges = feature.canny(grey, sigma=sigma)
  out = np.where(edges, INK, PAPER).astype(np.uint8)
  return np.repeat(out[:, :, None], 3, axis=2)


def edge_maps(images: np.ndarray, sigma: float = 1.5) -> np.ndarray:
  """canny_edges over a stack uint8 [N, H, W, 3] -> uint8 [N, H, W, 3]."""
  if not isinstance(images, np.ndarray) or images.ndim != 4 or images.shape[3] != 3:
    shape = getattr(images, "shape", type(images).__name__)
    raise ValueError(f"edge_maps: expected images of shape [N, H, W, 3], got {shape}")
  out = np.empty(images.shape, np.uint8)
  for i, image in enumerate(images):
    out[i] = canny_edges(image, sigma)
  return out
