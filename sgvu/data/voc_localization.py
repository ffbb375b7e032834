"""PASCAL VOC 2007 + QuickDraw sketches for sketch-guided localization, in their original formats.

  <root>/VOC2007/Annotations/<id>.xml        (<root> may be VOCdevkit, its parent, or VOC2007 itself)
  <root>/VOC2007/JPEGImages/<id>.jpg
  <root>/VOC2007/ImageSets/Main/trainval.txt, test.txt
  <sketch_root>/<class>.ndjson               (QuickDraw simplified, as for COCO)
Splits: train = trainval, test / test_seen / test_unseen = test. Categories: the 10 VOC classes that
are QuickDraw classes (bicycle, bird, bus, car, cat, chair, cow, dog, horse, sheep); unseen:
bicycle, cat, horse (the release's VOC protocol). Objects of the other 10 VOC classes are not
targets (counted in `dropped`).

Boxes: VOC's 1-based inclusive pixel corners -> [xmin - 1, ymin - 1, xmax, ymax] (continuous
pixels, width = xmax - xmin + 1). 'difficult' objects are kept with ignore=True by default, as the
VOC07 AP does (a detection on one is neither a hit nor a miss; a training loss should skip them);
`difficult='drop'` removes them. A query needs a non-difficult box of its category.
Named skips (strict=True raises): a missing or malformed XML file, a missing image, a zero-area or
unreadable box, an id listed twice.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import Sequence

import numpy as np

from sgvu.data import images, localization as loc
from sgvu.data.base import DataError
from sgvu.data.coco_localization import QuickDrawQueried

VOC_CATEGORIES = ("bicycle", "bird", "bus", "car", "cat", "chair", "cow", "dog", "horse", "sheep")
VOC_UNSEEN = ("bicycle", "cat", "horse")
DIFFICULT = ("ignore", "drop")
LAYOUT = """  <root>/VOC2007/Annotations/<id>.xml
  <root>/VOC2007/JPEGImages/<id>.jpg
  <root>/VOC2007/ImageSets/Main/{trainval,test}.txt"""


def find_voc2007(root: str | None) -> str | None:
  """The VOC2007 folder under `root` (VOCdevkit's parent, VOCdevkit, or VOC2007 itself)."""
  if not root:
    return None
  for cand in (root, os.path.join(root, "VOC2007"), os.path.join(root, "VOCdevkit", "VOC2007")):
    if os.path.isdir(os.path.join(cand, "Annotations")) and os.path.isdir(os.path.join(cand, "ImageSets", "Main")):
      return cand
  return None


class VOCLocalization(QuickDrawQueried):
  """VOC 2007 with QuickDraw query sketches (module doc)."""

  name = "voc"

  def __init__(self, root: str | None, *, sketch_root: str | None = None, unseen: Sequence[str] = VOC_UNSEEN,
               difficult: str = "ignore", seed: int = 0, num_query_sketches: int = 1, sketch_size: int = 128,
               queries: str = "each", max_sketches_per_class: int | None = 24000, recognized_only: bool = True,
               sketch_fractions: Sequence[float] = (0.8, 0.1, 0.1), strict: bool = False):
    self.folder = find_voc2007(root)
    if self.folder is None:
      raise images.missing_root(self.name, root, LAYOUT)
    if sketch_root is None:
      raise DataError("voc: sketch_root (the folder of QuickDraw <class>.ndjson files) is required")
    if difficult not in DIFFICULT:
      raise DataError(f"voc: unknown difficult={difficult!r}; valid: {list(DIFFICULT)}")
    bad = [u for u in unseen if u not in VOC_CATEGORIES]
    if bad:
      raise DataError(f"voc: unseen {bad} are not among the categories {VOC_CATEGORIES}")
    self.root, self.difficult = root, difficult
    self.categories = VOC_CATEGORIES
    self.unseen = tuple(c for c in self.categories if c in unseen)
    self.seen = tuple(c for c in self.categories if c not in unseen)
    self.image_sets = {"train": "trainval", "test": "test"}
    self._setup(sketch_root, seed=seed, num_query_sketches=num_query_sketches, sketch_size=sketch_size,
                queries=queries, max_sketches_per_class=max_sketches_per_class, recognized_only=recognized_only,
                sketch_fractions=sketch_fractions, strict=strict)

  def _index(self, image_set: str) -> list[loc.ImageRecord]:
    list_file = os.path.join(self.folder, "ImageSets", "Main", f"{image_set}.txt")
    try:
      with open(list_file, encoding="utf-8") as f:
        ids = [line.split()[0] for line in f if line.strip()]
    except OSError as e:
      raise DataError(f"voc: cannot read {list_file} ({e.strerror or e}); expected:\n{LAYOUT}") from None
    records, seen_ids = [], set()
    for i in ids:
      xml = os.path.join(self.folder, "Annotations", f"{i}.xml")
      if i in seen_ids:
        self._skips.add(f"{list_file}:{i}", "image id listed twice")
        continue
      seen_ids.add(i)
      rec = self._read(i, xml, image_set)
      if rec is not None:
        records.append(rec)
    return records

  def _read(self, image_id: str, xml: str, image_set: str) -> loc.ImageRecord | None:
    if not os.path.isfile(xml):
      self._skips.add(xml, "annotation file is missing")
      return None
    try:
      objects = ET.parse(xml).getroot().findall("object")
    except (ET.ParseError, OSError) as e:
      self._skips.add(xml, f"malformed XML ({e})")
      return None
    boxes, labels, ignore = [], [], []
    for n, obj in enumerate(objects):
      name = (obj.findtext("name") or "").strip().lower()
      if name not in self.categories:
        self._dropped[f"{image_set}: object of another VOC class"] += 1
        continue
      hard = (obj.findtext("difficult") or "0").strip() == "1"
      if hard and self.difficult == "drop":
        self._dropped[f"{image_set}: difficult object"] += 1
        continue
      try:
        x0, y0, x1, y1 = (float(obj.find("bndbox").findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax"))
      except (AttributeError, TypeError, ValueError):
        self._skips.add(f"{xml}#object{n}", "bndbox missing or not numeric (needs xmin, ymin, xmax, ymax)")
        continue
      box = [x0 - 1.0, y0 - 1.0, x1, y1]
      if not np.all(np.isfinite(box)) or box[2] <= box[0] or box[3] <= box[1]:
        self._skips.add(f"{xml}#object{n}", f"zero-area box (xmin {x0}, ymin {y0}, xmax {x1}, ymax {y1})")
        continue
      boxes.append(box)
      labels.append(self.categories.index(name))
      ignore.append(hard)
    if not boxes:
      self._dropped[f"{image_set}: image without a box of the 10 categories"] += 1
      return None
    jpg = os.path.join(self.folder, "JPEGImages", f"{image_id}.jpg")
    if not os.path.isfile(jpg):
      self._skips.add(jpg, "image file is missing")
      return None
    return loc.ImageRecord(key=jpg, image_id=image_id, boxes=np.array(boxes, np.float32),
                           labels=np.array(labels, np.int32), ignore=np.array(ignore, bool))
