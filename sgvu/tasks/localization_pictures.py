"""The localization table's picture: query sketches, ground truth and each row's top boxes (output only:
left out of the code hashes, sgvu.experiment.OUTPUT_ONLY)."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
from PIL import Image, ImageDraw

from sgvu import experiment, fonts

@dataclasses.dataclass
class _Query:
  split: str
  index: int  # query index in the split


def _pick_queries(source, per_split: int) -> list[_Query]:
  out = []
  for name in ("test_seen", "test_unseen"):
    n = len(source.split(name))
    out += [_Query(name, int(i)) for i in np.linspace(0, n - 1, min(per_split, n)).astype(int)] if n else []
  return out


def _boxes_of(path: str, image_id: int, category_id: int, top: int) -> list[tuple[list[float], float]]:
  try:
    with open(path) as f:
      results = json.load(f)
  except OSError:
    return []
  mine = [r for r in results if r["image_id"] == image_id and r["category_id"] == category_id]
  mine.sort(key=lambda r: -r["score"])
  return [(r["bbox"], r["score"]) for r in mine[:top]]


def draw_examples(config, source, workdir: str, methods, path: str, per_split: int = 3, cell: int = 160) -> None:
  """Rows: queries (seen, then unseen); columns: the sketch, the image with its ground truth, each row's top boxes."""
  queries = _pick_queries(source, per_split)
  if not queries:
    return
  names = {"test_seen": "seen", "test_unseen": "unseen"}
  canvas = Image.new("RGB", (cell * (2 + len(methods)), 16 + cell * len(queries)), "white")
  draw, font = ImageDraw.Draw(canvas), fonts.label_font(11)
  for j, title in enumerate(["sketch", "ground truth"] + list(methods)):
    draw.text((j * cell + 4, 2), title, fill="black", font=font)
  for i, q in enumerate(queries):
    split = source.split(q.split)
    sample, item = split[q.index], split.items[q.index]
    y = 16 + i * cell
    canvas.paste(Image.fromarray(sample.sketches[0]).resize((cell - 4, cell - 4)), (2, y + 2))
    draw.text((4, y + 4), f"{sample.query_category} ({names[q.split]})", fill="blue", font=font)
    h, w = sample.image.shape[:2]
    s = (cell - 4) / max(h, w)
    photo = Image.fromarray(sample.image).resize((max(1, round(w * s)), max(1, round(h * s))))
    for j in range(1 + len(methods)):
      x = (j + 1) * cell + 2
      canvas.paste(photo, (x, y + 2))
      if j == 0:
        for box in sample.query_boxes:
          draw.rectangle([x + box[0] * s, y + 2 + box[1] * s, x + box[2] * s, y + 2 + box[3] * s], outline="lime",
                         width=2)
        continue
      det = os.path.join(experiment.row_dir(workdir, methods[j - 1], 0), f"detections_{names[q.split]}.json")
      for rank, (b, score) in enumerate(_boxes_of(det, item.image + 1, item.label + 1, 3)):
        red = (255, 60 + 80 * rank, 60 + 80 * rank)
        draw.rectangle([x + b[0] * s, y + 2 + b[1] * s, x + (b[0] + b[2]) * s, y + 2 + (b[1] + b[3]) * s],
                       outline=red, width=2 if rank == 0 else 1)
        if rank == 0:
          draw.text((x + 3, y + cell - 14), f"{score:.2f}", fill=red, font=font)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  canvas.save(path)
