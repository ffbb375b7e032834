"""TU-Berlin sketches (Eitz et al. 2012) extended with photos (Zhang et al. 2016), zero-shot split.

Layouts found (first match wins):
  Doodle2Search:  <root>/sketches/<class>/*.png      <root>/images/<class>/*.jpg
  SAKE:           <root>/png_ready/<class>/*.png     <root>/ImageResized_ready/<class>/*.JPEG
  raw downloads:  <root>/png/<class>/*.png           <root>/ImageResized/<class>/*.JPEG
`<root>` may also be the folder holding `TUBerlin/` or `TU-Berlin/`. Photo class
folders of the raw ImageResized archive are spelled differently ('flyingbird',
'tromobone', ...): they are matched by a spelling-insensitive key plus the
renames of the Doodle2Search download script (sounakdey/doodle2search).
"""

from __future__ import annotations

import os
from typing import Sequence

from sgvu.data import images
from sgvu.data.sketchy import FolderSource, build_class_splits, match_folders

# The standard 30 unseen classes (SAKE, Liu et al. 2019; used by seed 004's TU-Berlin
# numbers). Source: the complement of the 220 seen classes listed in SAKE's released
# qliu24/SAKE dataset/TUBerlin/zeroshot/png_ready_filelist_test.txt (250 - 220 = 30);
# the same 30 names are listed as `unseen_classes_tuberlin` in a Sketch_LVM-derived
# dataset file. SAKE's own cname_cid_zero.txt was not available to check against.
TUBERLIN_UNSEEN = (
    "ant", "banana", "bottle opener", "brain", "bread", "bridge", "bus", "canoe", "fan",
    "frying-pan", "horse", "hot air balloon", "laptop", "lighter", "parachute", "penguin",
    "pizza", "rollerblades", "shoe", "snowboard", "space shuttle", "streetlight",
    "suitcase", "table", "teacup", "telephone", "t-shirt", "tractor", "trombone",
    "windmill")

# Misspelled / shortened photo folders of ImageResized.zip (key -> sketch-class key),
# from the renames in sounakdey/doodle2search download_datasets.sh.
PHOTO_FOLDER_ALIASES = {
    "tromobone": "trombone", "chandeler": "chandelier", "griaffe": "giraffe",
    "diamod": "diamond", "spidar": "spider", "spacesshuttle": "spaceshuttle",
    "wristwatching": "wristwatch", "mouse": "mouseanimal", "pipe": "pipeforsmoking",
}

SKETCH_DIRS = ("sketches", "png_ready", "png")
PHOTO_DIRS = ("images", "ImageResized_ready", "ImageResized")
LAYOUT = """  <root>/sketches/<class>/*.png   (or png_ready/, png/)
  <root>/images/<class>/*.jpg      (or ImageResized_ready/, ImageResized/)"""


class TUBerlin(FolderSource):
  """TU-Berlin extended: 250 classes, 20k sketches, ~204k photos."""

  name = "tuberlin"

  def __init__(self, root: str | None, *, unseen: Sequence[str] = TUBERLIN_UNSEEN,
               strict: bool = False):
    sketch_dir = photo_dir = None
    if root:
      for cand in ("", "TUBerlin", "TU-Berlin"):
        base = os.path.join(root, cand)
        sketch_dir = images.first_dir(base, SKETCH_DIRS)
        if sketch_dir:
          photo_dir = images.first_dir(base, PHOTO_DIRS)
          break
    if sketch_dir is None or photo_dir is None:
      raise images.missing_root(self.name, root, LAYOUT)
    self.root = root
    self._skips = images.IndexSkips(self.name, strict)
    self.categories = tuple(images.list_dirs(sketch_dir))
    sketches = {c: images.list_images(os.path.join(sketch_dir, c)) for c in self.categories}
    photo_folders = match_folders(photo_dir, self.categories, PHOTO_FOLDER_ALIASES)
    photos = {}
    for c in self.categories:
      photos[c] = images.list_images(photo_folders[c]) if c in photo_folders else []
      if not photos[c]:
        self._skips.add(os.path.join(photo_dir, c), f"no photos for class {c!r}")
    self._splits = build_class_splits(self.categories, sketches, photos, unseen)
