"""Image decoding, pad-to-square and resizing; plus the folder helpers the readers share.

Every decode error becomes `BadSample(path, reason)`, so a corrupt or
truncated file is named, never a bare PIL traceback mid-epoch.
"""

from __future__ import annotations

import os
import re
import warnings
from typing import Sequence

import numpy as np
from absl import logging
from PIL import Image, ImageFile, ImageFilter

from sgvu.data.base import BadSample, DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
DOCS = "docs/datasets.md"

# A truncated JPEG must fail, not decode to a half-grey picture.
ImageFile.LOAD_TRUNCATED_IMAGES = False

_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "lanczos": Image.Resampling.LANCZOS,
    "nearest": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
}


def _open(path: str) -> Image.Image:
  if not os.path.isfile(path):
    raise BadSample(path, "file is missing")
  try:
    with warnings.catch_warnings():
      # PIL warns (not raises) on some broken headers; make them errors too.
      warnings.simplefilter("error", Image.DecompressionBombWarning)
      img = Image.open(path)
      img.load()
    return img
  except BadSample:
    raise
  except Exception as e:  # PIL raises many types (OSError, SyntaxError, ValueError, ...)
    raise BadSample(path, f"cannot decode image ({type(e).__name__}: {e})") from None


def _flatten_alpha(img: Image.Image) -> Image.Image:
  """Composites transparency onto white (transparent sketch PNGs are white paper)."""
  if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
    img = img.convert("RGBA")
    white = Image.new("RGBA", img.size, (255, 255, 255, 255))
    img = Image.alpha_composite(white, img)
  return img


def load_rgb(path: str) -> np.ndarray:
  """uint8 [H, W, 3]; raises BadSample naming the file."""
  img = _flatten_alpha(_open(path))
  arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
  if arr.ndim != 3 or min(arr.shape[:2]) < 1:
    raise BadSample(path, f"decoded to an empty image {arr.shape}")
  return arr


def load_grey(path: str) -> np.ndarray:
  """uint8 [H, W] (white paper, dark ink); raises BadSample naming the file."""
  img = _flatten_alpha(_open(path))
  arr = np.asarray(img.convert("L"), dtype=np.uint8)
  if arr.ndim != 2 or min(arr.shape) < 1:
    raise BadSample(path, f"decoded to an empty image {arr.shape}")
  return arr


def check_ink(raster: np.ndarray, key: str, threshold: int = 250) -> np.ndarray:
  """Raises BadSample for a blank (all-white) sketch raster."""
  if not np.any(raster < threshold):
    raise BadSample(key, "sketch raster has no ink (blank image)")
  return raster


def pad_to_square(img: np.ndarray, fill: int = 255) -> np.ndarray:
  """Centres the image on a square canvas of `fill` (white), like ImageOps.pad."""
  h, w = img.shape[:2]
  if h == w:
    return img
  side = max(h, w)
  out = np.full((side, side) + img.shape[2:], fill, dtype=img.dtype)
  top, left = (side - h) // 2, (side - w) // 2
  out[top:top + h, left:left + w] = img
  return out


def resize(img: np.ndarray, size: int, resample: str = "bicubic") -> np.ndarray:
  """Resizes a square uint8 image ([S, S] or [S, S, C]) to size x size."""
  if resample not in _RESAMPLE:
    raise ValueError(f"unknown resample {resample!r}; valid: {sorted(_RESAMPLE)}")
  if img.shape[0] == size and img.shape[1] == size:
    return img
  pil = Image.fromarray(img)
  return np.asarray(pil.resize((size, size), _RESAMPLE[resample]), dtype=np.uint8)


def to_square(img: np.ndarray, size: int, resample: str = "bicubic") -> np.ndarray:
  """Pad to square with white, then resize: the photo / raster-sketch preprocessing."""
  return resize(pad_to_square(img), size, resample)


def sketch_to_square(raster: np.ndarray, size: int) -> np.ndarray:
  """to_square for a grey sketch raster; thickens the ink before a large downscale.

  Without it a 3-px line of a 256-px Sketchy PNG fades to a faint 0.3-px grey
  at 24 px: the ink is first widened by ~(scale - 1) px (a min filter).
  """
  square = pad_to_square(raster)
  scale = square.shape[0] / size
  k = 2 * int((scale - 1) // 2) + 1
  if k > 1:
    square = np.asarray(Image.fromarray(square).filter(ImageFilter.MinFilter(k)), np.uint8)
  return resize(square, size)


def grey_to_rgb(img: np.ndarray) -> np.ndarray:
  if img.ndim == 3:
    return img
  return np.repeat(img[:, :, None], 3, axis=2)


# ----------------------------------------------------------------------------
# Folder helpers shared by the readers.


def class_key(name: str) -> str:
  """Spelling-insensitive class id: 'car (sedan)', 'car_(sedan)', 'carsedan' -> 'carsedan'."""
  return re.sub(r"[^a-z0-9]", "", name.lower())


def list_images(folder: str) -> list[str]:
  """Sorted image files (by extension, case-insensitive) directly inside `folder`."""
  try:
    names = os.listdir(folder)
  except OSError:
    return []
  return sorted(os.path.join(folder, n) for n in names
                if n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith("."))


def list_dirs(folder: str) -> list[str]:
  """Sorted names of the sub-folders of `folder` (hidden ones excluded)."""
  try:
    names = os.listdir(folder)
  except OSError:
    return []
  return sorted(n for n in names
                if not n.startswith(".") and os.path.isdir(os.path.join(folder, n)))


def first_dir(root: str, candidates: Sequence[str]) -> str | None:
  """The first `root/candidate` that is a non-empty directory."""
  for c in candidates:
    path = os.path.join(root, c)
    if os.path.isdir(path) and os.listdir(path):
      return path
  return None


def missing_root(dataset: str, root: str | None, layout: str) -> DataError:
  return DataError(
      f"{dataset}: dataset root {root!r} is missing or does not have the expected layout.\n"
      f"Expected:\n{layout}\nSee {DOCS} for where to get it and how to arrange it.")


class IndexSkips:
  """Files dropped while building an index: logged with their name, or fatal in strict mode."""

  def __init__(self, dataset: str, strict: bool = False):
    self.dataset = dataset
    self.strict = strict
    self.items: list[tuple[str, str]] = []

  def add(self, key: str, reason: str) -> None:
    if self.strict:
      raise DataError(f"{self.dataset}: {key}: {reason} (strict=True)")
    logging.warning("%s: skipping %s: %s", self.dataset, key, reason)
    self.items.append((key, reason))


def lookup_split(dataset: str, splits: dict, name: str):
  if name not in splits:
    raise DataError(f"{dataset}: unknown split {name!r}; valid: {sorted(splits)}")
  return splits[name]
