"""Composed (sketch + text) retrieval: R@K and MdR, or Acc@K among a category's photos.

A row's score of a (query, image) pair need not be a dot product of two fixed embeddings (STNet
re-weights each image's tokens by the query's sketch), so the row supplies three predict functions:
  embed_queries(params, sketches uint8 [b,S,S,3], texts list[str], labels int32 [b]) -> a query pytree
  embed_images(params, images uint8 [b,S,S,3]) -> an image pytree
  score(params, queries, images) -> float [Q, G]  (higher = better; blocked by the row as it needs)
and this evaluator turns the score matrix into ranks of each query's target. Ties: the lower gallery index
ranks first (as sgvu.metrics.retrieval). With `within_category`, a query is ranked among the images of its
own category only (the fine-grained protocol).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np

from sgvu.data.composed_pipeline import SplitArrays


def ranks_from_scores(scores: np.ndarray, targets: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
  """1-indexed rank [Q] of each query's target among the valid images (all when `valid` is None)."""
  scores = np.asarray(scores, np.float64)
  q, g = scores.shape
  if not np.all(np.isfinite(scores)):
    raise ValueError(f"scores has {int(np.sum(~np.isfinite(scores)))} non-finite entries")
  targets = np.asarray(targets, np.int64)
  if targets.shape != (q,) or targets.min() < 0 or targets.max() >= g:
    raise ValueError(f"targets must be [{q}] gallery indices in [0, {g}); got shape {targets.shape}")
  valid = np.ones((q, g), bool) if valid is None else np.asarray(valid, bool)
  rows = np.arange(q)
  if not valid[rows, targets].all():
    raise ValueError("a query's target is not among its valid images")
  mine = scores[rows, targets][:, None]
  before = (scores > mine) | ((scores == mine) & (np.arange(g)[None] < targets[:, None]))
  return 1 + np.sum(before & valid, axis=1)


def rank_metrics(ranks: np.ndarray, ks: Sequence[int], prefix: str = "", name: str = "R") -> dict[str, float]:
  """{prefix R@K: share of queries whose target ranks <= K, prefix MdR: median rank}."""
  ranks = np.asarray(ranks)
  out = {f"{prefix}{name}@{k}": float(np.mean(ranks <= k)) for k in ks}
  out[f"{prefix}MdR"] = float(np.median(ranks))
  return out


def _batched(fn: Callable, n: int, batch_size: int, *arrays) -> Any:
  parts = [fn(*(a[i:i + batch_size] for a in arrays)) for i in range(0, n, batch_size)]
  return jax.tree.map(lambda *xs: np.concatenate([np.asarray(x) for x in xs]), *parts)


class ComposedRetrieval:
  """Scores every split of `arrays` named in `splits`; metric names are '<label> R@K' and '<label> MdR'."""

  def __init__(self, predict_fns: Mapping[str, Callable], *, arrays: Mapping[str, SplitArrays],
               splits: Sequence[tuple[str, str]] = (), ks: Sequence[int] = (10, 20, 50, 100),
               within_category: bool = False, metric: str = "R", batch_size: int = 256):
    missing = [k for k in ("embed_queries", "embed_images", "score") if k not in predict_fns]
    if missing:
      raise ValueError(f"composed retrieval needs predict functions {missing}")
    unknown = [s for s, _ in splits if s not in arrays]
    if unknown:
      raise ValueError(f"splits {unknown} have no arrays; have {sorted(arrays)}")
    self.fns, self.arrays, self.splits = predict_fns, arrays, tuple(tuple(s) for s in splits)
    self.ks, self.within_category, self.metric, self.batch_size = tuple(ks), within_category, metric, batch_size

  def ranks(self, params, split: str) -> np.ndarray:
    a = self.arrays[split]
    queries = _batched(lambda s, l, i: self.fns["embed_queries"](params, s, [a.texts[j] for j in i], l),
                       len(a), self.batch_size, a.sketches, a.labels, np.arange(len(a)))
    images = _batched(lambda x: self.fns["embed_images"](params, x), len(a.images), self.batch_size, a.images)
    scores = np.asarray(self.fns["score"](params, queries, images))
    valid = a.labels[:, None] == a.image_labels[None] if self.within_category else None
    return ranks_from_scores(scores, a.targets, valid)

  def run(self, params) -> dict[str, Any]:
    out = {}
    for split, label in self.splits:
      out.update(rank_metrics(self.ranks(params, split), self.ks, prefix=f"{label} " if label else "",
                              name=self.metric))
    return out


EVALUATOR = ComposedRetrieval
