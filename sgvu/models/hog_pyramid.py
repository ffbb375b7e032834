"""The classical SBIR baseline: a spatial pyramid of HOG (Dalal & Triggs 2005; pyramid pooling as Lazebnik et al.).

Per image: grey levels, one orientation histogram per `cell` x `cell` pixel cell (scikit-image's HOG with 1x1
blocks, so each cell is L2-normalised on its own: contrast-invariant, and a photo's edges and a sketch's strokes
compare), then for each pyramid level L the cell grid is split into L x L regions whose cell histograms are summed
and L2-normalised; all levels concatenated and the whole vector L2-normalised. No learning.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from skimage.color import rgb2gray
from skimage.feature import hog

_EPS = 1e-12


def _unit(x: np.ndarray) -> np.ndarray:
  """L2-normalises the last axis (an all-zero histogram, a blank region, stays zero)."""
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), _EPS)


def _cells(image: np.ndarray, orientations: int, cell: int) -> np.ndarray:
  """One image [H, W, 3] -> cell histograms [H // cell, W // cell, orientations]."""
  # 'L2' rather than HOG's default 'L2-Hys': with one cell per block, clipping at 0.2 flattens the orientations.
  h = hog(rgb2gray(image), orientations=orientations, pixels_per_cell=(cell, cell), cells_per_block=(1, 1),
          block_norm="L2", feature_vector=False)  # [rows, cols, 1, 1, orientations]
  return h.reshape(h.shape[0], h.shape[1], orientations)


def _edges(n: int, parts: int) -> np.ndarray:
  """Boundaries splitting n cells into `parts` non-empty runs (as even as they can be)."""
  return np.arange(parts + 1) * n // parts


def hog_pyramid(images: np.ndarray, levels: Sequence[int] = (1, 2, 4), orientations: int = 9,
                cell: int = 8) -> np.ndarray:
  """Spatial-pyramid HOG descriptors: images [N, H, W, 3] (uint8 RGB) -> float32 [N, D], unit L2 norm,
  D = orientations * sum(L * L for L in levels). Needs at least max(levels) cells along each side."""
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f"hog_pyramid takes RGB images [N, H, W, 3], got shape {images.shape}")
  levels = tuple(int(level) for level in levels)
  if not levels or min(levels) < 1:
    raise ValueError(f"levels must be positive region counts, got {levels}")
  if orientations < 1 or cell < 1:
    raise ValueError(f"orientations and cell must be >= 1, got {orientations} and {cell}")
  rows, cols = images.shape[1] // cell, images.shape[2] // cell
  if min(rows, cols) < max(levels):
    raise ValueError(f"images of {images.shape[1]}x{images.shape[2]} px give {rows}x{cols} cells of {cell} px; "
                     f"level {max(levels)} needs at least {max(levels)}x{max(levels)} cells")
  out = np.zeros((len(images), orientations * sum(level * level for level in levels)), np.float32)
  for n, image in enumerate(images):
    cells = _cells(image, orientations, cell)
    parts = []
    for level in levels:
      r, c = _edges(rows, level), _edges(cols, level)
      regions = [cells[r[i]:r[i + 1], c[j]:c[j + 1]].sum(axis=(0, 1)) for i in range(level) for j in range(level)]
      parts.append(_unit(np.stack(regions)).ravel())
    out[n] = _unit(np.concatenate(parts))
  return out
