"""COCO 2017 + QuickDraw sketches for sketch-guided localization, in their original formats.

  <root>/annotations/instances_train2017.json, instances_val2017.json
  <root>/train2017/*.jpg, val2017/*.jpg
  <sketch_root>/<class>.ndjson          (QuickDraw simplified; or <sketch_root>/sketch/<class>.ndjson)
Splits: train = train2017, test / test_seen / test_unseen = val2017 (the release evaluates there).

Categories: the 56 COCO names that are exactly QuickDraw class names, in the release's hard-coded
order (IISCAditayTripathi/SketchGuidedLocalization lib/datasets/coco.py); no renaming: 'couch',
'cell phone', 'hot dog', ... are spelled the same in both ('teddy bear' is not: QuickDraw's is
'teddy-bear', so it is not among the 56, as in the release). QuickDraw's 'mouse' is the animal,
COCO's the computer mouse; the release pairs them anyway, and so does sgvu.
Unseen group g (0..3): the category at 1-based position i is unseen when i % 4 == g (default 1:
clock, toilet, carrot, couch, ...; 42 seen / 14 unseen), the release's four groups.

Boxes: COCO [x, y, w, h] -> [x, y, x + w, y + h] in pixels, clipped to the image. Crowd boxes are
dropped (counted), like the release's training. Named skips (strict=True raises): a zero-area or
malformed box, an annotation of an unknown image, a missing image file, a category without a
QuickDraw file. Query sketches: the first `max_sketches_per_class` (recognized) drawings of each
class, cut 80/10/10 by line position into train / val / test parts (the release's QuickDraw
split); train queries draw from the train part, test queries from the test part.
"""

from __future__ import annotations

import abc
import collections
import json
import os
from typing import Sequence

import numpy as np
from absl import logging

from sgvu.data import images, localization as loc
from sgvu.data.base import DataError, Sketch, SketchItem
from sgvu.data.quickdraw import QuickDraw, ndjson_files, index_ndjson
from sgvu.data.sketchy import build_class_splits

COCO_QUICKDRAW_56 = (
    "clock", "fire hydrant", "train", "bench", "toilet", "truck", "donut", "skateboard", "carrot", "car",
    "baseball bat", "scissors", "couch", "bear", "spoon", "elephant", "toothbrush", "sheep", "bed", "fork", "apple",
    "pizza", "microwave", "bicycle", "umbrella", "cup", "stop sign", "dog", "cell phone", "book", "keyboard", "bus",
    "oven", "chair", "horse", "cake", "sandwich", "cat", "toaster", "vase", "sink", "knife", "wine glass", "suitcase",
    "broccoli", "zebra", "traffic light", "banana", "cow", "airplane", "giraffe", "laptop", "mouse", "hot dog", "bird",
    "backpack")
SKETCH_PARTS = ("train", "val", "test")
SKETCH_LAYOUT = "  <sketch_root>/<class>.ndjson   (QuickDraw simplified; or <sketch_root>/sketch/<class>.ndjson)"
LAYOUT = """  <root>/annotations/instances_{train,val}2017.json
  <root>/{train,val}2017/*.jpg"""


def unseen_categories(group: int, categories: Sequence[str] = COCO_QUICKDRAW_56) -> tuple[str, ...]:
  """The release's unseen group: 1-based position i % 4 == group."""
  if group not in (0, 1, 2, 3):
    raise DataError(f"unseen_group must be 0, 1, 2 or 3, got {group!r}")
  return tuple(c for i, c in enumerate(categories, start=1) if i % 4 == group)


class QuickDrawQueries(QuickDraw):
  """The QuickDraw ndjson files of `categories` only, each cut by line position into parts.

  Reuses QuickDraw's byte-offset index and line parsing (`load_sketch` checks the record's word);
  not QuickDraw.__init__, which indexes every file of the folder and looks for photos.
  Labels index `categories`.
  """

  name = "quickdraw"

  def __init__(self, root: str | None, categories: Sequence[str], skips: images.IndexSkips, *,
               max_per_class: int | None = 24000, recognized_only: bool = True,
               fractions: Sequence[float] = (0.8, 0.1, 0.1)):
    if len(fractions) != 3 or min(fractions) < 0 or sum(fractions) <= 0:
      raise DataError(f"sketch_fractions must be 3 shares (train, val, test), got {tuple(fractions)}")
    if max_per_class is not None and max_per_class < 1:
      raise DataError(f"max_sketches_per_class must be >= 1 or None, got {max_per_class}")
    files = (ndjson_files(os.path.join(root, "sketch")) or ndjson_files(root)) if root else {}
    if not files:
      raise images.missing_root("quickdraw query sketches (sketch_root)", root, SKETCH_LAYOUT)
    self.root, self.categories, self._skips = root, tuple(categories), skips
    self._lines, self.files = {}, {}
    self.parts: dict[str, dict[int, list[str]]] = {p: {} for p in SKETCH_PARTS}
    folder = os.path.dirname(next(iter(files.values())))
    every = {}
    for label, c in enumerate(self.categories):
      path = files.get(images.class_key(c))
      if path is None:
        skips.add(os.path.join(folder, c + ".ndjson"), f"no QuickDraw file for category {c!r}: it gets no queries")
        continue
      linenos, offsets = index_ndjson(path, max_per_class, skips, recognized_only)
      self._lines[path], self.files[label] = (linenos, offsets), path
      keys = every[c] = [f"{path}:{n}" for n in linenos.tolist()]
      cuts = np.round(np.cumsum(fractions) / sum(fractions) * len(keys)).astype(int).tolist()
      for part, lo, hi in zip(SKETCH_PARTS, [0] + cuts[:-1], cuts):
        self.parts[part][label] = keys[lo:hi]
    self._splits = build_class_splits(self.categories, every, {}, ())  # a sketches-only Source

  def pool(self, part: str, label: int) -> list[str]:
    return self.parts[part].get(label, [])


class QuickDrawQueried(loc.LocalizationSource):
  """Shared by the COCO and VOC readers: image sets indexed on first use, QuickDraw queries."""

  image_sets: dict[str, str]  # 'train' / 'test' -> the dataset's image set

  def _setup(self, sketch_root: str | None, *, seed: int, num_query_sketches: int, sketch_size: int,
             queries: str, max_sketches_per_class: int | None, recognized_only: bool,
             sketch_fractions: Sequence[float], strict: bool) -> None:
    loc.check_options(self.name, num_query_sketches, queries, sketch_size)
    self.seed, self.num_query_sketches = int(seed), num_query_sketches
    self.sketch_size, self.queries = sketch_size, queries
    self._skips = images.IndexSkips(self.name, strict)
    self._dropped: collections.Counter = collections.Counter()
    self._records: dict[str, list[loc.ImageRecord]] = {}
    self._splits: dict[str, loc.LocalizationSplit] = {}
    self._empty_reported: set[tuple[str, int]] = set()
    self.sketches = QuickDrawQueries(sketch_root, self.categories, self._skips, max_per_class=max_sketches_per_class,
                                     recognized_only=recognized_only, fractions=sketch_fractions)

  @abc.abstractmethod
  def _index(self, image_set: str) -> list[loc.ImageRecord]:
    """The records of one image set (bad input through self._skips, filters into self._dropped)."""

  def _has_sketches(self, part: str, label: int) -> bool:
    if self.sketches.pool(part, label):
      return True
    if label in self.sketches.files and (part, label) not in self._empty_reported:
      self._empty_reported.add((part, label))
      self._skips.add(self.sketches.files[label], f"no drawings in the {part!r} part of category "
                      f"{self.categories[label]!r}: it gets no {part} queries")
    return False

  def split(self, name: str) -> loc.LocalizationSplit:
    self.check_split_name(name)
    if name not in self._splits:
      part = "train" if name == "train" else "test"
      image_set = self.image_sets[part]
      if image_set not in self._records:
        self._records[image_set] = self._index(image_set)
      imgs, items = loc.build_queries(self, name, self._records[image_set],
                                      lambda label: self._has_sketches(part, label), self._dropped)
      self._splits[name] = loc.LocalizationSplit(self, name, self.names_of(loc.SPLIT_KINDS[name][0]), imgs, items,
                                                 part)
      logging.info("%s %s: %d images, %d queries; dropped %s", self.name, name, len(imgs), len(items),
                   {k: v for k, v in self._dropped.items() if k.startswith(name + ":") and v})
    return self._splits[name]

  def load_image(self, record: loc.ImageRecord) -> np.ndarray:
    return images.load_rgb(record.key)

  def query_sketches(self, split: loc.LocalizationSplit, record: loc.ImageRecord, label: int,
                     draw: int) -> list[tuple[str, Sketch]]:
    pool = self.sketches.pool(split.sketch_part, label)
    picks = loc.sketch_rule(len(pool), self.num_query_sketches, self.seed, record.image_id, label, draw)
    return [(pool[int(i)], self.sketches.load_sketch(SketchItem(pool[int(i)], label))) for i in picks]

  @property
  def skipped(self):
    return tuple(self._skips.items)

  @property
  def dropped(self) -> dict[str, int]:
    return {k: v for k, v in self._dropped.items() if v}


class COCOLocalization(QuickDrawQueried):
  """COCO 2017 instances with QuickDraw query sketches (the release's protocol, module doc)."""

  name = "coco"

  def __init__(self, root: str | None, *, sketch_root: str | None = None, unseen_group: int = 1,
               seed: int = 0, num_query_sketches: int = 1, sketch_size: int = 128, queries: str = "each",
               max_images: int | None = None, max_sketches_per_class: int | None = 24000,
               recognized_only: bool = True, sketch_fractions: Sequence[float] = (0.8, 0.1, 0.1),
               strict: bool = False):
    if not root or not os.path.isdir(os.path.join(root, "annotations")):
      raise images.missing_root(self.name, root, LAYOUT)
    if sketch_root is None:
      raise DataError("coco: sketch_root (the folder of QuickDraw <class>.ndjson files) is required")
    self.root, self.max_images = root, max_images
    self.categories = COCO_QUICKDRAW_56
    self.unseen = unseen_categories(unseen_group)
    self.seen = tuple(c for c in self.categories if c not in self.unseen)
    self.image_sets = {"train": "train2017", "test": "val2017"}
    self.coco_category_ids: dict[str, int] = {}  # name -> COCO category id (for COCOeval)
    self._setup(sketch_root, seed=seed, num_query_sketches=num_query_sketches, sketch_size=sketch_size,
                queries=queries, max_sketches_per_class=max_sketches_per_class, recognized_only=recognized_only,
                sketch_fractions=sketch_fractions, strict=strict)

  def _index(self, image_set: str) -> list[loc.ImageRecord]:
    path = os.path.join(self.root, "annotations", f"instances_{image_set}.json")
    try:
      with open(path, encoding="utf-8") as f:
        data = json.load(f)
      entries, anns, cats = data["images"], data["annotations"], data["categories"]
    except OSError as e:
      raise DataError(f"coco: cannot read {path} ({e.strerror or e}); expected:\n{LAYOUT}") from None
    except (ValueError, KeyError, TypeError) as e:
      raise DataError(f"coco: {path} is not a COCO instances file ({type(e).__name__}: {e})") from None
    label_of = {}
    for c in cats:
      if c.get("name") in self.categories:
        label_of[c["id"]] = self.categories.index(c["name"])
        self.coco_category_ids[c["name"]] = c["id"]
    for name in self.categories:
      if name not in self.coco_category_ids:
        self._skips.add(f"{path}#categories", f"category {name!r} is not in the file")
    by_id = {e["id"]: e for e in entries}
    boxes = collections.defaultdict(list)
    for a in anns:
      key = f"{path}#annotation{a.get('id')}"
      if a.get("category_id") not in label_of:
        continue  # not one of the 56 (person, ...)
      if a.get("iscrowd", 0):
        self._dropped[f"{image_set}: crowd box"] += 1
        continue
      entry = by_id.get(a.get("image_id"))
      if entry is None:
        self._skips.add(key, f"image_id {a.get('image_id')!r} is not in 'images'")
        continue
      box = _coco_box(a.get("bbox"), entry)
      if isinstance(box, str):
        self._skips.add(key, box)
        continue
      boxes[a["image_id"]].append((box, label_of[a["category_id"]]))
    ids = sorted(i for i in by_id if i in boxes)
    self._dropped[f"{image_set}: image without a box of the 56 categories"] += len(by_id) - len(ids)
    records = []
    for i in ids[:self.max_images]:
      file = os.path.join(self.root, image_set, str(by_id[i].get("file_name", f"{i:012d}.jpg")))
      if not os.path.isfile(file):
        self._skips.add(file, "image file is missing")
        continue
      b, l = zip(*boxes[i])
      records.append(loc.ImageRecord(key=file, image_id=str(i), boxes=np.array(b, np.float32),
                                     labels=np.array(l, np.int32), ignore=np.zeros(len(l), bool)))
    return records


def _coco_box(bbox, entry: dict) -> list[float] | str:
  """xyxy pixels clipped to the image, or the reason it is unusable."""
  try:
    x, y, w, h = (float(v) for v in bbox)
  except (TypeError, ValueError):
    return f"malformed bbox {bbox!r} (expected [x, y, w, h])"
  if not np.all(np.isfinite([x, y, w, h])):
    return f"bbox {bbox!r} is not finite"
  width, height = float(entry.get("width", np.inf)), float(entry.get("height", np.inf))
  x0, y0, x1, y1 = max(x, 0.0), max(y, 0.0), min(x + w, width), min(y + h, height)
  if x1 <= x0 or y1 <= y0:
    return f"zero-area box (bbox {bbox!r} in a {entry.get('width')}x{entry.get('height')} image)"
  return [x0, y0, x1, y1]
