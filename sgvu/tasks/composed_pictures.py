"""Retrieval grids of composed queries: the sketch, its words, the top hits with the target framed green."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from absl import logging
from PIL import Image, ImageDraw

from sgvu import fonts


def composed_grid(sketches: Sequence[np.ndarray], texts: Sequence[str], hits: Sequence[Sequence[np.ndarray]],
                  correct: Sequence[Sequence[bool]], path: str, *, title: str = "", cell: int = 72) -> None:
  """One row per query: the sketch, the query words under it, then the ranked hits (green = the target)."""
  font, pad, text_h = fonts.label_font(11), 4, 16
  head = 20 if title else 0
  cols = 1 + max(len(h) for h in hits)
  width = cols * (cell + pad) + pad + 6
  canvas = Image.new("RGB", (width, head + len(sketches) * (cell + text_h + pad) + pad), "white")
  draw = ImageDraw.Draw(canvas)
  if title:
    draw.text((pad, 3), title, fill=(0, 0, 0), font=font)
  for r, (sketch, text, row, ok) in enumerate(zip(sketches, texts, hits, correct)):
    y = head + pad + r * (cell + text_h + pad)
    canvas.paste(Image.fromarray(np.asarray(sketch, np.uint8)).resize((cell, cell)), (pad, y))
    draw.rectangle([pad - 1, y - 1, pad + cell, y + cell], outline=(60, 60, 200), width=2)
    draw.text((pad, y + cell + 1), text, fill=(60, 60, 200), font=font)
    for c, (img, good) in enumerate(zip(row, ok)):
      x = pad + 6 + (c + 1) * (cell + pad)
      canvas.paste(Image.fromarray(np.asarray(img, np.uint8)).resize((cell, cell)), (x, y))
      draw.rectangle([x - 2, y - 2, x + cell + 1, y + cell + 1], outline=(30, 160, 30) if good else (200, 40, 40),
                     width=3)
  canvas.save(path)


def top_hits(scores: np.ndarray, k: int, allowed: np.ndarray | None = None) -> np.ndarray:
  """Indices of the k best images of one query's scores (ties: lower index first), among `allowed` if given."""
  order = np.argsort(-np.asarray(scores), kind="stable")
  return (order if allowed is None else order[np.asarray(allowed)[order]])[:k]


def draw(config, predict_fns, params, arrays, workdir: str, *, within_category: bool, name: str) -> None:
  """Top-10 of `config.grid_queries` random test queries of `arrays` by a row's predict functions."""
  rng = np.random.default_rng(0)
  pick = np.sort(rng.choice(len(arrays), size=min(config.grid_queries, len(arrays)), replace=False))
  texts = [arrays.texts[i] for i in pick]
  q = predict_fns["embed_queries"](params, arrays.sketches[pick], texts, arrays.labels[pick])
  g = predict_fns["embed_images"](params, arrays.images)
  scores = np.asarray(predict_fns["score"](params, q, g))
  hits, correct = [], []
  for row, i in enumerate(pick):
    allowed = arrays.image_labels == arrays.labels[i] if within_category else None
    top = top_hits(scores[row], 10, allowed)
    hits.append([arrays.images[j] for j in top])
    correct.append([int(j) == int(arrays.targets[i]) for j in top])
  path = os.path.join(workdir, "retrieval_grid.png")
  composed_grid(arrays.sketches[pick], texts, hits, correct, path,
                title=f"{config.name}: {name}, top-10 (target framed green)")
  logging.info("retrieval grid: %s", path)
