"""Zero-shot tests of a CLIP: categories of photos (or sketches) against "a photo of a [category]",
attribute words (colour, texture, place) and caption -> photo retrieval within a category."""

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
  """Top-1 accuracies, one metric per test:
  - `<kind>_zero_shot@1` (kinds: photo, sketch): nearest class text among the split's categories;
  - `<attribute>_zero_shot@1` (attributes, e.g. colour): among the prompts naming each value of the
    attribute for the photo's own category ("a red shoe", "a blue shoe", ...), the photo's value wins;
  - `caption_photo_r@1` (caption_retrieval): a photo's full caption ranks that photo first among the
    photos of its category (`caption_photo_chance` = mean 1 / category size beside it).
  """

  def __init__(self, predict_fns, *, source: Source, image_size: int, split: str = "test",
               kinds: Sequence[str] = ("photo",), attributes: Sequence[str] = (),
               caption_retrieval: bool = False, template: str = TEMPLATE, batch_size: int = 128,
               strict: bool = False):
    for need in ["embed_texts"] + [f"embed_{k}" for k in kinds] + (["embed_photo"] if attributes or
                                                                    caption_retrieval else []):
      if need not in predict_fns:
        raise ValueError(f"zero_shot needs the predict function {need!r}; the task gives {sorted(predict_fns)}")
    known = source.attribute_prompts(source.categories[0])
    for a in attributes:
      if a not in known:
        raise ValueError(f"zero_shot: attribute {a!r} is not one {source.name} has; valid: {sorted(known)}")
    self.fns, self.source, self.image_size, self.split = predict_fns, source, image_size, split
    self.kinds, self.attributes, self.caption_retrieval = tuple(kinds), tuple(attributes), caption_retrieval
    self.template, self.batch_size, self.strict = template, batch_size, strict

  def class_texts(self) -> list[str]:
    return [self.template.format(category_text(c)) for c in self.source.split(self.split).categories]

  def _texts(self, params, texts: list[str]) -> np.ndarray:
    out = [np.asarray(self.fns["embed_texts"](params, texts[i:i + self.batch_size]))
           for i in range(0, len(texts), self.batch_size)]
    return _unit(np.concatenate(out))

  def _embed(self, params, kind: str):
    fn = self.fns[f"embed_{kind}"]
    emb, labels, index = batching.embed_split(lambda im: fn(params, im), self.source, self.split, kind,
                                              image_size=self.image_size, batch_size=self.batch_size,
                                              strict=self.strict)
    return _unit(emb), labels, index

  def run(self, params) -> dict[str, float]:
    sp = self.source.split(self.split)
    text = self._texts(params, self.class_texts())
    column = {self.source.categories.index(c): i for i, c in enumerate(sp.categories)}
    out, photos = {}, None
    for kind in self.kinds:
      emb, labels, index = self._embed(params, kind)
      if kind == "photo":
        photos = (emb, labels, index)
      target = np.asarray([column[int(l)] for l in labels])
      out[f"{kind}_zero_shot@1"] = float(np.mean(np.argmax(emb @ text.T, -1) == target))
    if (self.attributes or self.caption_retrieval) and photos is None:
      photos = self._embed(params, "photo")
    if self.attributes:
      out.update(self._attributes(params, *photos))
    if self.caption_retrieval:
      out.update(self._captions(params, *photos))
    return out

  def _attributes(self, params, emb, labels, index) -> dict[str, float]:
    hits = {a: [] for a in self.attributes}
    items = self.source.split(self.split).photos
    for label in np.unique(labels):
      rows = np.flatnonzero(labels == label)
      prompts = self.source.attribute_prompts(self.source.categories[int(label)])
      for a in self.attributes:
        values = list(prompts[a])
        pred = np.argmax(emb[rows] @ self._texts(params, [prompts[a][v] for v in values]).T, -1)
        truth = [self.source.attributes(items[int(i)])[a] for i in index[rows]]
        hits[a].extend(values[p] == t for p, t in zip(pred, truth))
    return {f"{a}_zero_shot@1": float(np.mean(h)) for a, h in hits.items()}

  def _captions(self, params, emb, labels, index) -> dict[str, float]:
    items = self.source.split(self.split).photos
    captions = self._texts(params, [self.source.caption(items[int(i)]) for i in index])
    hits, chance = [], []
    for label in np.unique(labels):
      rows = np.flatnonzero(labels == label)
      hits.extend(np.argmax(captions[rows] @ emb[rows].T, -1) == np.arange(len(rows)))
      chance.extend([1.0 / len(rows)] * len(rows))
    return {"caption_photo_r@1": float(np.mean(hits)), "caption_photo_chance": float(np.mean(chance))}
