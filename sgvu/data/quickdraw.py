"""QuickDraw simplified ndjson sketches + the Doodle2Search photo folders, zero-shot split.

  <root>/sketch/<class>.ndjson   (or the ndjson files directly in <root>)
  <root>/photo/<class>/*.jpg     (or QuickDraw_images_final/, images/)
Each ndjson line: {"word", "countrycode", "timestamp", "recognized", "key_id",
"drawing": [[xs, ys], ...]} with 0..255 coordinates. Files of 100k+ lines are
indexed by byte offset (one pass, nothing kept but the offsets; `max_per_class`
stops early) and a line is parsed only when its sketch is loaded.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

import numpy as np
from absl import logging

from sgvu.data import images, strokes
from sgvu.data.base import BadSample, DataError, PhotoItem, Sketch, SketchItem, Source, Split
from sgvu.data.sketchy import build_class_splits, match_folders

# The 110-class ZS-SBIR QuickDraw subset of Doodle2Search (Dey et al. 2019):
# sounakdey/doodle2search src/data/quick_draw_class_labels.txt (its stray
# 'class_labels.txt' line dropped; spaces written as '_').
QUICKDRAW_110 = (
    "airplane", "alarm_clock", "ant", "apple", "axe", "banana", "bandage", "bat", "beach",
    "bear", "bee", "bench", "bicycle", "bread", "bus", "butterfly", "cactus", "cake",
    "camel", "campfire", "candle", "car", "castle", "cat", "chair", "chandelier", "church",
    "couch", "cow", "crab", "crocodilian", "cruise_ship", "cup", "dog", "dolphin", "door",
    "duck", "eiffel_tower", "elephant", "eyeglasses", "fan", "feather", "fire_hydrant",
    "fish", "flower", "frog", "giraffe", "guitar", "hamburger", "hammer", "hat", "hedgehog",
    "helicopter", "horse", "hot-air_balloon", "hurricane", "kangaroo", "knife",
    "lighthouse", "lion", "lobster", "map", "megaphone", "monkey", "moon", "motorcycle",
    "mountain", "mouse", "mushroom", "owl", "palm_tree", "parrot", "penguin",
    "pickup_truck", "pig", "pineapple", "pizza", "rabbit", "raccoon", "rhinoceros",
    "rifle", "sailboat", "saw", "saxophone", "scissors", "scorpion", "sea_turtle", "shark",
    "sheep", "shoe", "sink", "skateboard", "skyscraper", "snail", "snake", "soccer_ball",
    "spider", "spoon", "squirrel", "swan", "teapot", "teddy_bear", "tiger", "train",
    "tree", "umbrella", "violin", "windmill", "wine_bottle", "zebra")

# Its 30 unseen classes: sounakdey/doodle2search src/data/zeroshot_classes_quickdraw.txt
# at commit a2f0ed6 (an older version of that file lists 25).
QUICKDRAW_UNSEEN = (
    "bat", "cow", "dolphin", "door", "giraffe", "helicopter", "mouse", "raccoon",
    "rhinoceros", "saw", "scissors", "skyscraper", "tree", "windmill", "feather",
    "campfire", "palm_tree", "fire_hydrant", "bread", "beach", "megaphone", "cactus",
    "zebra", "tiger", "shark", "frog", "banana", "cake", "hamburger", "fan")

# Doodle2Search names -> QuickDraw file names, as class keys.
_FILE_ALIASES = {"crocodilian": "crocodile", "eiffeltower": "theeiffeltower"}
SUBSETS = ("doodle2search", "all")
PHOTO_DIRS = ("photo", "photos", "QuickDraw_images_final", "images")
LAYOUT = """  <root>/sketch/<class>.ndjson   (QuickDraw simplified; or the .ndjson files in <root>)
  <root>/photo/<class>/*.jpg      (Doodle2Search photos; optional)"""


def ndjson_files(folder: str) -> dict[str, str]:
  try:
    names = sorted(os.listdir(folder))
  except OSError:
    return {}
  return {images.class_key(n[:-len(".ndjson")]): os.path.join(folder, n)
          for n in names if n.endswith(".ndjson")}


def index_ndjson(path: str, limit: int | None, skips: images.IndexSkips,
                 recognized_only: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """(line numbers, byte offsets) of the first `limit` non-empty lines of `path`."""
  linenos, offsets = [], []
  offset = 0
  with open(path, "rb") as f:
    for lineno, line in enumerate(f, start=1):
      if limit is not None and len(linenos) >= limit:
        break
      if line.strip():
        keep = True
        if recognized_only:
          try:
            keep = bool(json.loads(line).get("recognized", False))
          except (ValueError, AttributeError) as e:
            skips.add(f"{path}:{lineno}", f"malformed ndjson line ({e})")
            keep = False
        if keep:
          linenos.append(lineno)
          offsets.append(offset)
      offset += len(line)
  return np.asarray(linenos, np.int64), np.asarray(offsets, np.int64)


class QuickDraw(Source):
  """QuickDraw sketches (vector) with Doodle2Search photos; `max_per_class` caps each class."""

  name = "quickdraw"

  def __init__(self, root: str | None, *, subset: str = "doodle2search",
               max_per_class: int | None = None, recognized_only: bool = False,
               unseen: Sequence[str] = QUICKDRAW_UNSEEN, strict: bool = False):
    if subset not in SUBSETS:
      raise DataError(f"quickdraw: unknown subset {subset!r}; valid: {list(SUBSETS)}")
    if max_per_class is not None and max_per_class < 1:
      raise DataError(f"quickdraw: max_per_class must be >= 1, got {max_per_class}")
    files = {}
    if root:
      files = ndjson_files(os.path.join(root, "sketch")) or ndjson_files(root)
    if not files:
      raise images.missing_root(self.name, root, LAYOUT)
    self.root = root
    self._skips = images.IndexSkips(self.name, strict)
    sketch_dir = os.path.dirname(next(iter(files.values())))
    if subset == "all":
      self.categories = tuple(sorted(os.path.basename(p)[:-len(".ndjson")]
                                     for p in files.values()))
    else:
      self.categories = QUICKDRAW_110

    self._lines: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    sketches = {}
    for c in self.categories:
      key = images.class_key(c)
      path = files.get(key) or files.get(_FILE_ALIASES.get(key, ""))
      if path is None:
        self._skips.add(os.path.join(sketch_dir, c.replace("_", " ") + ".ndjson"),
                        f"class file for {c!r} is missing")
        continue
      linenos, offsets = index_ndjson(path, max_per_class, self._skips, recognized_only)
      self._lines[path] = (linenos, offsets)
      sketches[c] = [f"{path}:{n}" for n in linenos.tolist()]

    photo_dir = images.first_dir(root, PHOTO_DIRS)
    photos = {}
    if photo_dir is None:
      logging.warning("quickdraw: no photo folder (%s) under %s: sketches only",
                      "/".join(PHOTO_DIRS), root)
    else:
      both_ways = {**_FILE_ALIASES, **{v: k for k, v in _FILE_ALIASES.items()}}
      folders = match_folders(photo_dir, self.categories, both_ways)
      for c in self.categories:
        photos[c] = images.list_images(folders[c]) if c in folders else []
        if not photos[c] and c in sketches:  # a missing class file was reported already
          self._skips.add(os.path.join(photo_dir, c), f"no photos for class {c!r}")
    self._splits = build_class_splits(self.categories, sketches, photos, unseen)

  def split(self, name: str) -> Split:
    return images.lookup_split(self.name, self._splits, name)

  def load_photo(self, item: PhotoItem, size: int | None = None) -> np.ndarray:
    del size
    return images.load_rgb(item.key)

  def read_line(self, item: SketchItem) -> dict:
    """The parsed ndjson record of a sketch; raises BadSample for a malformed line."""
    path, _, lineno = item.key.rpartition(":")
    linenos, offsets = self._lines.get(path, (None, None))
    if linenos is None:
      raise BadSample(item.key, "not a sketch of this QuickDraw index")
    i = int(np.searchsorted(linenos, int(lineno)))
    if i >= len(linenos) or linenos[i] != int(lineno):
      raise BadSample(item.key, "line is not in the index")
    try:
      with open(path, "rb") as f:
        f.seek(int(offsets[i]))
        line = f.readline()
    except OSError as e:
      raise BadSample(item.key, f"cannot read ({e})") from None
    try:
      record = json.loads(line)
    except ValueError as e:
      raise BadSample(item.key, f"malformed ndjson line ({e})") from None
    if not isinstance(record, dict) or "drawing" not in record:
      raise BadSample(item.key, "ndjson record has no 'drawing'")
    word = record.get("word")
    want = images.class_key(self.categories[item.label])
    if word is not None and images.class_key(str(word)) not in (want, _FILE_ALIASES.get(want)):
      raise BadSample(item.key, f"record says word={word!r}, but the file is class "
                      f"{self.categories[item.label]!r}")
    return record

  def load_sketch(self, item: SketchItem) -> Sketch:
    drawing = self.read_line(item)["drawing"]
    if not isinstance(drawing, list):
      raise BadSample(item.key, f"'drawing' must be a list of [xs, ys], got {type(drawing).__name__}")
    try:
      return Sketch(strokes=strokes.from_quickdraw(drawing, item.key))
    except BadSample:
      raise
    except (TypeError, ValueError) as e:
      raise BadSample(item.key, f"malformed 'drawing' ({e})") from None

  @property
  def skipped(self):
    return tuple(self._skips.items)
