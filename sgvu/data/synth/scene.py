"""Scenes: several SynthSketch objects on one background, with boxes and a caption."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from sgvu.data.synth import background, caption, catalog, palette, photo
from sgvu.data.synth.geometry import bounds
from sgvu.data.synth.instance import CANVAS, make_instance, placed

_SCENE_WORD = 7_000_001  # keeps scene objects apart from the photo instances


def render_scene(seed: int, categories: Sequence[str], index: int, size: int = 256,
                 num_objects: tuple[int, int] = (2, 5)) -> dict:
  """dict(image uint8 [size, size, 3], boxes float32 [K, 4] (x0, y0, x1, y1 pixels),
  labels int32 [K] (index into `categories`), attributes list[dict], caption str)."""
  lo, hi_n = num_objects
  if not 1 <= lo <= hi_n:
    raise ValueError(f"num_objects must be (min, max) with 1 <= min <= max, got {num_objects}")
  rng = np.random.default_rng([seed, _SCENE_WORD, index])
  places = list(palette.PLACES)
  place = places[int(rng.integers(len(places)))]
  n = int(rng.integers(lo, hi_n + 1))
  objects, taken = [], []
  for j in range(n):
    cat = categories[int(rng.integers(len(categories)))]
    inst = make_instance(catalog.get(cat), (seed, catalog.category_seed(cat), _SCENE_WORD, index, j), place=place)
    for _ in range(30):  # rejection-sample a spot that barely overlaps the others
      unit = float(rng.uniform(0.13, 0.24)) * CANVAS
      parts = placed(inst.parts, 0.0, 0.0, unit)
      b = bounds(parts)
      cx = rng.uniform(-b[0] + 2, CANVAS - 2 - b[2])
      cy = rng.uniform(-b[1] + 2, CANVAS - 2 - b[3])
      box = np.array([b[0] + cx, b[1] + cy, b[2] + cx, b[3] + cy], np.float32)
      if all(_overlap(box, t) < 0.15 for t in taken):
        break
    taken.append(box)
    objects.append((box[3], cat, inst, cx, cy, unit, box))
  objects.sort(key=lambda o: o[0])  # nearer (lower) objects are painted last, over farther ones
  img = background.background(place, size, rng)
  k = size / CANVAS
  for _, _, inst, cx, cy, unit, _ in objects:
    photo.paint_object(img, placed(inst.parts, cx, cy, unit), inst.look, unit, k)
  boxes = np.stack([o[6] for o in objects]) * (size / CANVAS)
  boxes = np.clip(boxes, 0, size).astype(np.float32)
  attributes = []
  for o in objects:
    a = o[2].attributes()
    a.pop("neighbour")
    attributes.append(a)
  return dict(image=photo.finish(img, rng),
              boxes=boxes,
              labels=np.array([categories.index(o[1]) for o in objects], np.int32),
              attributes=attributes,
              caption=caption.scene_caption([o[2] for o in objects], place))


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
  """Intersection over the smaller box's area."""
  iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
  ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
  small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
  return float(iw * ih / max(small, 1e-6))
