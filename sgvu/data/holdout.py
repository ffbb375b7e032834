"""Validation splits carved out of a source's *train* split: hyperparameters are chosen on them,
never on the test split (unseen categories, held-out instances).

`Holdout(source, "categories", every=5)`: every 5th seen category is held out ("test"), the model
trains on the others, so the zero-shot structure of the real protocol is kept inside the seen
categories. `Holdout(source, "instances", every=5)`: every 5th training photo (with its sketches)
is held out, for instance-level protocols. Photos and sketches are re-indexed and the sketch ->
photo pairing is kept.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from sgvu.data.base import PhotoItem, Sketch, SketchItem, Source, Split


MODES = ("categories", "instances")


def _subset(name: str, split: Split, keep: Sequence[int], all_categories: Sequence[str]) -> Split:
  """The photos `keep` (indices into split.photos) with their sketches."""
  new_index = {old: new for new, old in enumerate(keep)}
  photos = tuple(split.photos[i] for i in keep)
  sketches = tuple(SketchItem(s.key, s.label, new_index[s.photo]) for s in split.sketches
                   if s.photo is not None and s.photo in new_index)
  labels = {p.label for p in photos}
  return Split(name, tuple(c for c in split.categories if all_categories.index(c) in labels), photos, sketches)


class Holdout(Source):
  """`source`'s train split, cut into train and validation ("test") by category or by instance."""

  def __init__(self, source: Source, mode: str = "categories", every: int = 5):
    if mode not in MODES:
      raise ValueError(f"holdout mode {mode!r} is not one of {MODES}")
    if every < 2:
      raise ValueError(f"holdout every must be >= 2, got {every}")
    train = source.split("train")
    if any(s.photo is None for s in train.sketches):
      raise ValueError(f"{source.name}: holdout needs sketches paired with photos")
    if mode == "categories":
      held = {source.categories.index(c) for c in train.categories[every - 1::every]}
      is_held = [p.label in held for p in train.photos]
    else:
      is_held = [i % every == every - 1 for i in range(len(train.photos))]
    val = [i for i, h in enumerate(is_held) if h]
    rest = [i for i, h in enumerate(is_held) if not h]
    if not val or not rest:
      raise ValueError(f"holdout {mode} every={every} of {source.name}'s train split leaves no train or no "
                       "validation photos")
    self.inner, self.mode, self.every = source, mode, every
    self.name, self.categories = f"{source.name}-val", source.categories
    self._splits = {"train": _subset("train", train, rest, source.categories),
                    "test": _subset("test", train, val, source.categories)}

  def split(self, name: str) -> Split:
    if name not in self._splits:
      raise KeyError(f"unknown split {name!r} of {self.name}; valid: {sorted(self._splits)}")
    return self._splits[name]

  def load_photo(self, item: PhotoItem, size: int | None = None) -> np.ndarray:
    return self.inner.load_photo(item, size)

  def load_sketch(self, item: SketchItem) -> Sketch:
    return self.inner.load_sketch(item)

  def caption(self, item, rng=None, keep: float = 1.0):
    return self.inner.caption(item, rng=rng, keep=keep) if rng is not None else self.inner.caption(item)

  def attributes(self, item):
    return self.inner.attributes(item)

  def attribute_prompts(self, category: str):
    return self.inner.attribute_prompts(category)

  @property
  def skipped(self):
    return self.inner.skipped
