"""PASCAL VOC 2012 images as unlabeled pretext images (no annotations are read).

  <root>/JPEGImages/<id>.jpg
  <root>/ImageSets/Main/<split>.txt     (train, val, trainval: one id per line)
`root` is the VOC2012 folder itself. Images are centre-cropped to a square and resized, so
every pretext grid sees image content and no padding. Decoding uses `images.load_rgb`, which
names the file in every error; `load_all` logs, counts and skips the images it cannot read.
"""

from __future__ import annotations

import os

import numpy as np
from absl import logging

from sgvu.data import images
from sgvu.data.base import BadSample


def _centre_square(img: np.ndarray) -> np.ndarray:
  h, w = img.shape[:2]
  side = min(h, w)
  top, left = (h - side) // 2, (w - side) // 2
  return img[top:top + side, left:left + side]


SPLITS = ("train", "val", "trainval")
LAYOUT = """  <root>/JPEGImages/<id>.jpg
  <root>/ImageSets/Main/<split>.txt     (train, val, trainval: one image id per line)"""


class VOCImages:
  """The image ids of one VOC split, decoded on demand."""

  def __init__(self, root: str, split: str = "train", max_images: int | None = None):
    if max_images is not None and (isinstance(max_images, bool) or not isinstance(max_images, int)
                                   or max_images < 1):
      raise ValueError(f"voc_images: max_images must be a positive int or None, got {max_images!r}")
    if not os.path.isdir(root):
      raise FileNotFoundError(f"voc_images: root {root!r} is not a directory")
    self.root, self.split = root, split
    self.image_dir = os.path.join(root, "JPEGImages")
    if not os.path.isdir(self.image_dir):
      raise FileNotFoundError(f"voc_images: image folder {self.image_dir!r} is missing")
    list_file = os.path.join(root, "ImageSets", "Main", f"{split}.txt")
    if not os.path.isfile(list_file):
      raise FileNotFoundError(f"voc_images: split file {list_file!r} is missing")
    with open(list_file) as f:
      # First token only: a class file (aeroplane_train.txt) adds a +-1 column after the id.
      listed = [line.split()[0] for line in f if line.strip()]
    ids = list(dict.fromkeys(listed))
    if len(ids) < len(listed):
      logging.warning("voc_images: %s lists %d ids more than once; keeping the first of each",
                      list_file, len(listed) - len(ids))
    if not ids:
      raise ValueError(f"voc_images: split file {list_file!r} lists no image ids")
    self.ids = ids[:max_images] if max_images is not None else ids

  def __len__(self) -> int:
    return len(self.ids)

  def path(self, index: int) -> str:
    return os.path.join(self.image_dir, f"{self.ids[index]}.jpg")

  def load(self, index: int, size: int) -> np.ndarray:
    """uint8 [size, size, 3] RGB; raises BadSample naming the file if it is missing or corrupt."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
      raise ValueError(f"voc_images: size must be a positive int, got {size!r}")
    return images.resize(_centre_square(images.load_rgb(self.path(index))), size)

  def load_all(self, size: int) -> tuple[np.ndarray, int]:
    """All images as uint8 [N, size, size, 3], and how many were skipped (missing or corrupt)."""
    out, skipped = [], 0
    for i in range(len(self)):
      try:
        out.append(self.load(i, size))
      except BadSample as e:
        logging.warning("voc_images: skipping %s: %s", e.key, e.reason)
        skipped += 1
    if not out:
      raise ValueError(f"voc_images: none of the {len(self)} images of split {self.split!r} "
                       f"under {self.root!r} could be read")
    if skipped:
      logging.warning("voc_images: skipped %d of %d images of split %r", skipped, len(self), self.split)
    return np.stack(out), skipped
