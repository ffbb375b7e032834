"""Zero-shot classification of a split's photos (or sketches) against "a photo of a [category]"."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from sgvu import batching
from sgvu.data import category_text
from sgvu.data.base import Source

TEMPLATE = "a photo of a {}"


def _unit(x: np.ndarray) -> np.ndarray:
  return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class ZeroShot:
  """Top-1 accuracy of nearest class text among the split's categories; one metric per kind:
  `zero_shot_acc` for photos (the CLIP pretraining's figure), `<kind>_zero_shot_acc` otherwise."""

  def __init__(self, predict_fns, *, source: Source, image_size: int, split: str = "test",
               kinds: Sequence[str] = ("photo",), template: str = TEMPLATE, batch_size: int = 128,
               strict: bool = False):
    for need in ["embed_texts"] + [f"embed_{k}" for k in kinds]:
      if need not in predict_fns:
        raise ValueError(f"zero_shot needs the predict function {need!r}; the task gives {sorted(predict_fns)}")
    self.fns, self.source, self.image_size, self.split = predict_fns, source, image_size, split
    self.kinds, self.template, self.batch_size, self.strict = tuple(kinds), template, batch_size, strict

  def class_texts(self) -> list[str]:
    return [self.template.format(category_text(c)) for c in self.source.split(self.split).categories]

  def run(self, params) -> dict[str, float]:
    sp = self.source.split(self.split)
    text = _unit(np.asarray(self.fns["embed_texts"](params, self.class_texts())))
    column = {self.source.categories.index(c): i for i, c in enumerate(sp.categories)}
    out = {}
    for kind in self.kinds:
      fn = self.fns[f"embed_{kind}"]
      emb, labels, _ = batching.embed_split(lambda im: fn(params, im), self.source, self.split, kind,
                                            image_size=self.image_size, batch_size=self.batch_size,
                                            strict=self.strict)
      pred = np.argmax(_unit(emb) @ text.T, -1)
      target = np.asarray([column[int(l)] for l in labels])
      out["zero_shot_acc" if kind == "photo" else f"{kind}_zero_shot_acc"] = float(np.mean(pred == target))
    return out
