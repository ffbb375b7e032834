"""Patch pairs for the 8-way relative-position pretext task (Doersch et al. 2015), across domains.

A 3x3 grid of patches is laid at a random place in an image; the centre patch 'a' and one of
its 8 neighbours 'b' are cut out, and the label says which neighbour (`OFFSETS`). Patches sit
`gap` pixels apart and each is shifted by its own random jitter, so a network cannot solve the
task from low-level cues that continue across the patch boundary (the paper's "uneven spacing
and jitter"). Modes: both patches from the photo, both from its edge map, or one from each
('cross'), which ties the two domains' features together.

Every example is drawn from `np.random.default_rng((seed, i))`: element i of the dataset is
the same on every run, so a resumed loader replays the same pairs.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import grain
import numpy as np

# Label k is the neighbour at (dy, dx) = OFFSETS[k] grid cells from the centre: row-major,
# the centre skipped.
OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
MODES = ("photo", "edge", "cross")
_ENDLESS = 2**31 - 1


def _is_int(v) -> bool:
  return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


@dataclasses.dataclass(frozen=True)
class Geometry:
  """Patch side, gap between neighbouring patches, and maximal jitter (each way), in pixels."""
  patch: int
  gap: int
  jitter: int

  def __post_init__(self):
    for name in ("patch", "gap", "jitter"):
      if not _is_int(getattr(self, name)):
        raise ValueError(f"Geometry.{name} must be an int, got {getattr(self, name)!r}")
    if self.patch < 1:
      raise ValueError(f"Geometry.patch must be positive, got {self.patch}")
    if self.gap < 0 or self.jitter < 0:
      raise ValueError(f"Geometry.gap and .jitter must be >= 0, got gap={self.gap}, jitter={self.jitter}")

  @property
  def pitch(self) -> int:
    """Distance between the top-left corners of neighbouring grid cells."""
    return self.patch + self.gap

  @property
  def span(self) -> int:
    """Side of the square a 3x3 grid needs, jitter included."""
    return 3 * self.patch + 2 * self.gap + 2 * self.jitter


def _check_mode(mode: str) -> None:
  if mode not in MODES:
    raise ValueError(f"unknown mode {mode!r}; valid: {list(MODES)}")


def _check_pair(photo: np.ndarray, edge: np.ndarray, geometry: Geometry) -> None:
  """Same-size uint8 [H, W, 3] images (or stacks of them), at least span x span."""
  for what, img in (("photo", photo), ("edge", edge)):
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim < 3 or img.shape[-1] != 3:
      raise ValueError(f"{what}: expected uint8 [..., H, W, 3], got {getattr(img, 'dtype', type(img).__name__)} "
                       f"{getattr(img, 'shape', '')}")
  if photo.shape != edge.shape:
    raise ValueError(f"photo and edge must have the same shape, got {photo.shape} and {edge.shape}")
  h, w = photo.shape[-3:-1]
  if h < geometry.span or w < geometry.span:
    raise ValueError(f"image {h}x{w} is smaller than the {geometry.span}x{geometry.span} span of {geometry}")


def sample_pair(photo: np.ndarray, edge: np.ndarray, rng: np.random.Generator, geometry: Geometry,
                mode: str) -> dict:
  """{'a': centre patch, 'b': neighbour patch (uint8 [P, P, 3]), 'label': int32 index into OFFSETS}."""
  _check_mode(mode)
  _check_pair(photo, edge, geometry)
  h, w = photo.shape[:2]
  g = geometry
  oy = int(rng.integers(0, h - g.span + 1))
  ox = int(rng.integers(0, w - g.span + 1))
  label = int(rng.integers(len(OFFSETS)))
  dy, dx = OFFSETS[label]
  # Each patch gets its own jitter, so the spacing between the two is uneven too.
  jit = rng.integers(0, 2 * g.jitter + 1, size=(2, 2))
  if mode == "photo":
    src_a, src_b = photo, photo
  elif mode == "edge":
    src_a, src_b = edge, edge
  else:
    # Drawn last, so the same rng state gives the same grid in every mode.
    src_a, src_b = (photo, edge) if rng.random() < 0.5 else (edge, photo)

  def cut(src, cy, cx, j):
    y = oy + cy * g.pitch + int(j[0])
    x = ox + cx * g.pitch + int(j[1])
    return src[y:y + g.patch, x:x + g.patch].copy()  # not a view: a caller may augment it in place

  return {"a": cut(src_a, 1, 1, jit[0]), "b": cut(src_b, 1 + dy, 1 + dx, jit[1]), "label": np.int32(label)}


def pair_dataset(photos: np.ndarray, edges: np.ndarray, *, geometry: Geometry, mode: str,
                 seed: int) -> grain.MapDataset:
  """An effectively endless MapDataset of single pairs; element i depends only on (seed, i)."""
  _check_mode(mode)
  _check_pair(photos, edges, geometry)
  if photos.ndim != 4 or len(photos) < 1:
    raise ValueError(f"photos: expected a non-empty stack [N, H, W, 3], got {photos.shape}")
  if not _is_int(seed) or seed < 0:
    raise ValueError(f"seed must be a non-negative int, got {seed!r}")
  n = len(photos)

  def make(i):
    rng = np.random.default_rng((seed, int(i)))
    k = int(rng.integers(n))
    return sample_pair(photos[k], edges[k], rng, geometry, mode)

  return grain.MapDataset.range(_ENDLESS).map(make)


def pair_loader(photos: np.ndarray, edges: np.ndarray, *, geometry: Geometry, mode: str, batch_size: int,
                seed: int) -> Iterator[dict]:
  """Batches {'a', 'b': uint8 [B, P, P, 3], 'label': int32 [B]}; the iterator has get_state / set_state."""
  if not _is_int(batch_size) or batch_size < 1:
    raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
  ds = pair_dataset(photos, edges, geometry=geometry, mode=mode, seed=seed)
  return iter(ds.batch(batch_size).to_iter_dataset())
