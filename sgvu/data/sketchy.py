"""Sketchy (Sangkloy et al. 2016) with the extended photo set, zero-shot split.

Reads the release as distributed:
  <root>/256x256/sketch/tx_000000000000/<class>/<photo>-<n>.png
  <root>/256x256/photo/tx_000000000000/<class>/<photo>.jpg
  <root>/EXTEND_image_sketchy/<class>/*.jpg   (extended photos of the ZS-SBIR works)
The Doodle2Search re-arrangement (`<root>/sketch/...`, `<root>/extended_photo/`)
and the Sketch_LVM one (`<root>/Sketchy/sketch/...`) are found too. Class
folders are matched across sketch / photo / extended folders by a
spelling-insensitive key, so `hot-air_balloon` and `hot_air_balloon` agree.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable, Mapping, Sequence

from absl import logging

from sgvu.data import images
from sgvu.data.base import PhotoItem, Sketch, SketchItem, Source, Split

# The 21 unseen classes of the Sketchy zero-shot split used by seed 004 (CLIP for
# ZS-SBIR); listed in its release, aneeshan95/Sketch_LVM src/dataset_retrieval.py
# (`unseen_classes`), and identical to SAKE's `zeroshot0` split (Yelamarthi et al. 2018).
SKETCHY_UNSEEN = (
    "bat", "cabin", "cow", "dolphin", "door", "giraffe", "helicopter", "mouse", "pear",
    "raccoon", "rhinoceros", "saw", "scissors", "seagull", "skyscraper", "songbird",
    "sword", "tree", "wheelchair", "windmill", "window")

AUGMENTATION = "tx_000000000000"  # the un-augmented rendering of the release
LAYOUT = f"""  <root>/256x256/sketch/{AUGMENTATION}/<class>/<photo>-<n>.png
  <root>/256x256/photo/{AUGMENTATION}/<class>/<photo>.jpg
  <root>/EXTEND_image_sketchy/<class>/*.jpg   (optional: extended photo set)"""


def _stem(path: str) -> str:
  return os.path.splitext(os.path.basename(path))[0]


def sketchy_photo_stem(sketch_path: str) -> str:
  """n02691156_10151-3.png -> n02691156_10151 (the photo the sketch was drawn from)."""
  return _stem(sketch_path).rsplit("-", 1)[0]


def match_folders(folder: str, categories: Sequence[str],
                  aliases: Mapping[str, str] | None = None) -> dict[str, str]:
  """category -> sub-folder of `folder` whose class_key matches (aliases: key -> key)."""
  wanted = {images.class_key(c) for c in categories}
  by_key = {}
  for name in images.list_dirs(folder):
    key = images.class_key(name)
    if key not in wanted:  # an alias only where the plain spelling matches no class
      key = (aliases or {}).get(key, key)
    by_key.setdefault(key, name)
  out = {}
  for c in categories:
    name = by_key.get(images.class_key(c))
    if name is not None:
      out[c] = os.path.join(folder, name)
  return out


def build_class_splits(categories: Sequence[str], sketches: Mapping[str, Sequence[str]],
                       photos: Mapping[str, Sequence[str]], unseen: Iterable[str],
                       photo_stem_of_sketch: Callable[[str], str] | None = None
                       ) -> dict[str, Split]:
  """The zero-shot 'train' (seen classes) / 'test' (unseen classes) splits.

  Labels index `categories`. With `photo_stem_of_sketch`, a sketch's `photo` is
  the index of the same-class photo with that file stem (None if absent).
  """
  unseen_keys = {images.class_key(u) for u in unseen}
  splits = {}
  for split_name, want_unseen in (("train", False), ("test", True)):
    cats = [c for c in categories if (images.class_key(c) in unseen_keys) == want_unseen]
    photo_items, by_stem = [], {}
    for c in cats:
      label = categories.index(c)
      for p in photos.get(c, ()):
        by_stem[(label, _stem(p))] = len(photo_items)
        photo_items.append(PhotoItem(key=p, label=label))
    sketch_items = []
    for c in cats:
      label = categories.index(c)
      for s in sketches.get(c, ()):
        photo = by_stem.get((label, photo_stem_of_sketch(s))) if photo_stem_of_sketch else None
        sketch_items.append(SketchItem(key=s, label=label, photo=photo))
    splits[split_name] = Split(split_name, tuple(cats), tuple(photo_items), tuple(sketch_items))
  return splits


class FolderSource(Source):
  """Photos and raster sketches stored as image files: shared loading."""

  name = "folder"
  _splits: dict[str, Split]
  _skips: images.IndexSkips

  def split(self, name: str) -> Split:
    return images.lookup_split(self.name, self._splits, name)

  def load_photo(self, item: PhotoItem, size: int | None = None):
    del size  # file-based: the pipeline pads and resizes
    return images.load_rgb(item.key)

  def load_sketch(self, item: SketchItem) -> Sketch:
    return Sketch(raster=images.check_ink(images.load_grey(item.key), item.key))

  @property
  def skipped(self):
    return tuple(self._skips.items)


class Sketchy(FolderSource):
  """Sketchy / Sketchy-extended; `extended=None` uses the extended photos when present."""

  name = "sketchy"

  def __init__(self, root: str | None, *, extended: bool | None = None,
               unseen: Sequence[str] = SKETCHY_UNSEEN, strict: bool = False):
    base = None
    if root:
      for cand in ("256x256", "Sketchy", os.path.join("rendered_256x256", "256x256"), ""):
        path = os.path.join(root, cand)
        if images.first_dir(os.path.join(path, "sketch"), [AUGMENTATION]):
          base = path
          break
    if base is None:
      raise images.missing_root(self.name, root, LAYOUT)
    self.root = root
    self._skips = images.IndexSkips(self.name, strict)
    sketch_dir = os.path.join(base, "sketch", AUGMENTATION)
    photo_dir = os.path.join(base, "photo", AUGMENTATION)
    ext_dir = images.first_dir(root, ["EXTEND_image_sketchy", "extended_photo"]) or \
        images.first_dir(base, ["EXTEND_image_sketchy", "extended_photo"])
    if extended and ext_dir is None:
      raise images.missing_root(self.name + " (extended=True)", root, LAYOUT)
    self.extended = bool(ext_dir) if extended is None else extended

    self.categories = tuple(images.list_dirs(sketch_dir))
    sketches = {c: images.list_images(os.path.join(sketch_dir, c)) for c in self.categories}
    photo_folders = match_folders(photo_dir, self.categories)
    ext_folders = match_folders(ext_dir, self.categories) if self.extended else {}
    photos = {}
    for c in self.categories:
      # Originals first; extended photos with the same stem are the same picture.
      files = images.list_images(photo_folders[c]) if c in photo_folders else []
      seen = {_stem(p) for p in files}
      for p in images.list_images(ext_folders[c]) if c in ext_folders else []:
        if _stem(p) not in seen:
          seen.add(_stem(p))
          files.append(p)
      if not files:
        self._skips.add(os.path.join(photo_dir, c), f"no photos for class {c!r}")
      photos[c] = files
    self._splits = build_class_splits(self.categories, sketches, photos, unseen,
                                      photo_stem_of_sketch=sketchy_photo_stem)
    unpaired = sum(s.photo is None for sp in self._splits.values() for s in sp.sketches)
    if unpaired:  # still usable category-level; left out of instance pairing
      logging.warning("sketchy: %d sketches have no photo of their name (no pairing)", unpaired)
