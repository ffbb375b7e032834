"""Sketch -> photo retrieval at the category level (ZS-SBIR) and the instance level (FG-SBIR)."""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

from sgvu import batching, metrics
from sgvu.data.base import Source, gallery_targets


def _need(predict_fns: Mapping[str, Callable], *names: str) -> list[Callable]:
  missing = [n for n in names if n not in predict_fns]
  if missing:
    raise ValueError(f"this evaluator needs predict functions {missing}; the task gives {sorted(predict_fns)}")
  return [predict_fns[n] for n in names]


class _SplitEmbedder:
  """Embeds a split's sketches and photos with the task's predict functions."""

  def __init__(self, predict_fns, source: Source, image_size: int, split: str, batch_size: int, strict: bool):
    self.embed_sketch, self.embed_photo = _need(predict_fns, "embed_sketch", "embed_photo")
    self.source, self.image_size, self.split = source, image_size, split
    self.batch_size, self.strict = batch_size, strict

  def embed(self, params):
    """((sketch embeds, labels, index), (photo embeds, labels, index))."""
    out = []
    for kind, fn in (("sketch", self.embed_sketch), ("photo", self.embed_photo)):
      out.append(batching.embed_split(lambda im, fn=fn: fn(params, im), self.source, self.split, kind,
                                      image_size=self.image_size, batch_size=self.batch_size,
                                      strict=self.strict, desc=self.split))
    return out


class CategoryRetrieval(_SplitEmbedder):
  """mAP@all, mAP@K, P@K: a sketch's relevant photos are those of its category (SAKE-style, docs/metrics.md)."""

  def __init__(self, predict_fns, *, source: Source, image_size: int, split: str = "test",
               ks: Sequence[int] = (100, 200), batch_size: int = 128, strict: bool = False):
    super().__init__(predict_fns, source, image_size, split, batch_size, strict)
    self.ks = tuple(ks)

  def score(self, sketches, photos) -> dict[str, float]:
    (q, ql, _), (g, gl, _) = sketches, photos
    return metrics.retrieval_metrics(q, ql, g, gl, ks=self.ks)

  def gallery_size(self) -> int:
    return len(self.source.split(self.split).photos)

  def run(self, params):
    return self.score(*self.embed(params))


class InstanceRetrieval(_SplitEmbedder):
  """Acc@K of each sketch's own photo. gallery 'all': among every photo of the split (FG-SBIR);
  'category': among the photos of the sketch's category (fine-grained zero-shot, seed 004)."""

  GALLERIES = ("all", "category")

  def __init__(self, predict_fns, *, source: Source, image_size: int, split: str = "test",
               ks: Sequence[int] = (1, 5, 10), gallery: str = "all", batch_size: int = 128, strict: bool = False):
    super().__init__(predict_fns, source, image_size, split, batch_size, strict)
    if gallery not in self.GALLERIES:
      raise ValueError(f"instance_retrieval gallery={gallery!r}; valid: {list(self.GALLERIES)}")
    self.ks, self.gallery = tuple(ks), gallery

  def ranks(self, sketches, photos) -> np.ndarray:
    """1-indexed rank of each query's own photo in its gallery (queries whose photo is in the gallery)."""
    (q, _, qi), (g, gl, gi) = sketches, photos
    sp = self.source.split(self.split)
    keep, targets = gallery_targets(sp, qi, gi)
    if self.gallery == "all":
      return metrics.ranks(q[keep], targets, g)
    out = []
    target_label = gl[targets]
    for label in np.unique(target_label):
      rows = np.flatnonzero(gl == label)
      if len(rows) < 2:
        continue
      local = np.full(len(g), -1, np.int64)
      local[rows] = np.arange(len(rows))
      mine = target_label == label
      out.append(metrics.ranks(q[keep[mine]], local[targets[mine]].astype(np.int32), g[rows]))
    if not out:
      raise ValueError(f"{self.split}: no category has two or more gallery photos")
    return np.concatenate(out)

  def score(self, sketches, photos) -> dict[str, float]:
    r = self.ranks(sketches, photos)
    return {f"Acc@{k}": float(np.mean(r <= k)) for k in self.ks}

  def gallery_size(self) -> int:
    sp = self.source.split(self.split)
    if self.gallery == "all":
      return len(sp.photos)
    labels = np.asarray([p.label for p in sp.photos])
    return int(np.bincount(labels)[np.unique(labels)].min())

  def run(self, params):
    return self.score(*self.embed(params))
