"""The record interface every sketch dataset gives, synthetic or real.

A `Source` knows its categories and, per split, two lists: photos and sketches.
Items are small, hashable index records (no pixels); pixels are decoded on
demand by `Source.load_photo` / `Source.load_sketch`, so an index of 100k items
is cheap and a grain pipeline can decode in worker processes.

Labels index `Source.categories` (the full category list of the dataset), so a
zero-shot split's labels are not contiguous: use `Split.categories` for the
categories present in a split.

Bad input never produces a silent wrong sample: a loader raises `BadSample`
naming the file (or synthetic key) and the reason; pipelines count, log and
skip it, or re-raise as `DataError` when `strict=True`.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Sequence

import numpy as np


class DataError(Exception):
  """A dataset problem that stops the run (strict mode, missing root, ...)."""


class BadSample(DataError):
  """One unreadable sample; `key` names the file or synthetic id."""

  def __init__(self, key: str, reason: str):
    super().__init__(f"{key}: {reason}")
    self.key = key
    self.reason = reason


@dataclasses.dataclass(frozen=True)
class PhotoItem:
  key: str  # unique id; a file path for real data (named in every error)
  label: int  # index into Source.categories


@dataclasses.dataclass(frozen=True)
class SketchItem:
  key: str
  label: int
  # Index into the same split's `photos` of the photo this sketch depicts
  # (fine-grained datasets and SynthSketch); None where there is no pairing
  # (TU-Berlin, QuickDraw).
  photo: int | None = None


@dataclasses.dataclass(frozen=True)
class Split:
  name: str
  categories: tuple[str, ...]  # categories present in this split
  photos: tuple[PhotoItem, ...]
  sketches: tuple[SketchItem, ...]


@dataclasses.dataclass
class Sketch:
  """A decoded sketch: strokes (vector datasets) or a raster (PNG datasets).

  strokes: list of float32 arrays [n_i, 2] of (x, y) on a 256 x 256 canvas, in
    drawing order (QuickDraw's convention after stacking `[xs, ys]`).
  raster: uint8 [H, W], white (255) background, dark ink.
  """

  strokes: list[np.ndarray] | None = None
  raster: np.ndarray | None = None


class Source(abc.ABC):
  """A sketch/photo dataset. Subclasses: SynthSketch and the real readers."""

  name: str
  categories: tuple[str, ...]
  split_names: tuple[str, ...] = ("train", "test")

  @abc.abstractmethod
  def split(self, name: str) -> Split:
    """Returns the index of one split; unknown names raise naming the valid ones."""

  @abc.abstractmethod
  def load_photo(self, item: PhotoItem, size: int | None = None) -> np.ndarray:
    """uint8 [H, W, 3]; raises BadSample.

    `size` is a hint: sources that render (SynthSketch) draw directly at
    size x size; file-based sources return the native size and the pipeline
    pads to square and resizes.
    """

  @abc.abstractmethod
  def load_sketch(self, item: SketchItem) -> Sketch:
    """Raises BadSample for an empty or malformed sketch."""

  def caption(self, item: PhotoItem, rng: np.random.Generator | None = None, keep: float = 1.0) -> str | None:
    """A caption of the photo where the dataset has one. With `rng` and keep < 1, datasets that
    can (SynthSketch) drop each attribute phrase with probability 1 - keep (caption augmentation)."""
    del item, rng, keep
    return None

  def attributes(self, item: PhotoItem) -> dict[str, str] | None:
    """Named appearance attributes of a photo ({'colour': 'red', ...}) where the dataset knows them."""
    del item
    return None

  @staticmethod
  def attribute_prompts(category: str) -> dict[str, dict[str, str]]:
    """Attribute -> {value: a caption naming only that value of a `category` object}; empty where
    the dataset has no attributes."""
    del category
    return {}

  @property
  def skipped(self) -> Sequence[tuple[str, str]]:
    """(key, reason) of everything dropped while building the index."""
    return ()


def gallery_targets(split: Split, sketch_index: np.ndarray, photo_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(rows of the sketches whose photo is in the gallery, that photo's row in the gallery).

  sketch_index / photo_index: item indices into the split of the embedded
  sketches and of the gallery's photos (what `batching.embed_split` returns).
  """
  row_of_photo = {int(i): n for n, i in enumerate(photo_index)}
  keep, targets = [], []
  for n, i in enumerate(sketch_index):
    photo = split.sketches[int(i)].photo
    if photo is not None and int(photo) in row_of_photo:
      keep.append(n)
      targets.append(row_of_photo[int(photo)])
  if not keep:
    raise ValueError(f"split {split.name!r}: no sketch has its photo in the gallery")
  return np.asarray(keep, np.int64), np.asarray(targets, np.int32)
