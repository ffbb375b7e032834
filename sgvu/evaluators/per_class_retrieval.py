"""Fine-grained retrieval per class: Acc@K of each sketch's own photo among the photos of its class, reported
for every class and as their mean (the unsupervised-SBIR seed's top-5 / top-10 table, one row per class).

  c.evals.retrieval = {"type": "per_class_retrieval", "ks": (5, 10)}

Metrics: 'Acc@K' (the mean over classes of each class's Acc@K: every class weighs the same whatever its number
of sketches) and 'Acc@K <class>' per class. Found by name (sgvu.evaluators.get), like every evaluator module.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from sgvu import metrics
from sgvu.data.base import Source, gallery_targets
from sgvu.evaluators.retrieval import InstanceRetrieval


class PerClassRetrieval(InstanceRetrieval):
  """InstanceRetrieval with gallery 'category', broken down by class."""

  def __init__(self, predict_fns, *, source: Source, image_size: int, split: str = "test",
               ks: Sequence[int] = (5, 10), batch_size: int = 128, strict: bool = False):
    super().__init__(predict_fns, source=source, image_size=image_size, split=split, ks=ks, gallery="category",
                     batch_size=batch_size, strict=strict)

  def ranks_by_class(self, sketches, photos) -> dict[str, np.ndarray]:
    """{class name: 1-indexed rank of each of its sketches' own photo among the photos of that class}."""
    (q, _, qi), (g, gl, gi) = sketches, photos
    sp = self.source.split(self.split)
    keep, targets = gallery_targets(sp, qi, gi)
    out = {}
    for label in np.unique(gl[targets]):
      rows = np.flatnonzero(gl == label)
      if len(rows) < 2:
        continue  # one photo: a rank of 1 would say nothing
      local = np.full(len(g), -1, np.int64)
      local[rows] = np.arange(len(rows))
      mine = gl[targets] == label
      name = self.source.categories[int(label)]  # labels index Source.categories
      out[name] = metrics.ranks(q[keep[mine]], local[targets[mine]].astype(np.int32), g[rows])
    if not out:
      raise ValueError(f"{self.split}: no class has two or more gallery photos")
    return out

  def score(self, sketches, photos) -> dict[str, float]:
    by_class = self.ranks_by_class(sketches, photos)
    out = {}
    for k in self.ks:
      per = {name: float(np.mean(r <= k)) for name, r in by_class.items()}
      out[f"Acc@{k}"] = float(np.mean(list(per.values())))
      out.update({f"Acc@{k} {name}": v for name, v in per.items()})
    return out


EVALUATOR = PerClassRetrieval
