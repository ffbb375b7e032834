"""QMUL-Shoe-V2 / QMUL-Chair-V2 as distributed with the on-the-fly FG-SBIR release.

Layout (AyanKumarBhunia/on-the-fly-FGSBIR, dataset_chairv2.py; the same in the
group's later FG-SBIR code):
  <root>/ShoeV2/ShoeV2_Coordinate   pickle: dict '<...>/train/<photo>_<n>' or
                                    '<...>/test/<photo>_<n>' -> float [N, 3]
                                    (x, y on a 256 canvas, pen: 1 ends a stroke)
  <root>/ShoeV2/photo/<photo>.png
The split is named inside each key; the photo is the key's last component
without its trailing `_<n>` ('2525993170_1' -> 2525993170.png). A split's
photos are those its sketches depict (the release builds its gallery so).
`<root>` may also be the ShoeV2/ folder itself.
"""

from __future__ import annotations

import collections
import os
import pickle

import numpy as np

from sgvu.data import images, strokes
from sgvu.data.base import BadSample, DataError, PhotoItem, Sketch, SketchItem, Source, Split

VARIANTS = {"ShoeV2": "shoe", "ChairV2": "chair"}
PHOTO_EXTENSIONS = (".png", ".jpg")


def _layout(name: str) -> str:
  return (f"  <root>/{name}/{name}_Coordinate   (pickle of pen-state sketches)\n"
          f"  <root>/{name}/photo/<photo>.png")


def _load_pickle(path: str):
  try:
    with open(path, "rb") as f:
      return pickle.load(f)
  except UnicodeDecodeError:
    with open(path, "rb") as f:  # written by Python 2
      return pickle.load(f, encoding="latin1")
  except Exception as e:
    raise DataError(f"{path}: cannot read the coordinate pickle ({type(e).__name__}: {e})") from None


def parse_key(key: str) -> tuple[str | None, str]:
  """'/train/2525993170_1' -> ('train', '2525993170'); split None if not named."""
  parts = [p for p in str(key).replace("\\", "/").split("/") if p]
  split = next((p for p in parts if p in ("train", "test")), None)
  if split is None:  # the release matches by substring
    split = "train" if "train" in str(key) else "test" if "test" in str(key) else None
  last = parts[-1] if parts else ""
  photo = "_".join(last.split("_")[:-1])
  return split, photo


class QMUL(Source):
  """Fine-grained shoe / chair SBIR: one category, every sketch paired with its photo."""

  def __init__(self, root: str | None, *, variant: str = "ShoeV2", strict: bool = False):
    if variant not in VARIANTS:
      raise DataError(f"qmul: unknown variant {variant!r}; valid: {sorted(VARIANTS)}")
    self.name = variant.lower()
    self.categories = (VARIANTS[variant],)
    folder = None
    for cand in (variant, "", os.path.join("Dataset", variant)):
      d = os.path.join(root, cand) if root else None
      if d and os.path.isfile(os.path.join(d, f"{variant}_Coordinate")):
        folder = d
        break
    if folder is None:
      raise images.missing_root(self.name, root, _layout(variant))
    self.root = root
    self._skips = images.IndexSkips(self.name, strict)
    coord_path = os.path.join(folder, f"{variant}_Coordinate")
    coords = _load_pickle(coord_path)
    if not isinstance(coords, dict):
      raise DataError(f"{coord_path}: expected a dict of sketches, got {type(coords).__name__}")

    by_split = collections.defaultdict(list)  # split -> [(pickle key, photo name)]
    for k in sorted(coords, key=str):
      split, photo = parse_key(k)
      if split is None or not photo:
        self._skips.add(f"{coord_path}[{k!r}]", "key names no train/test split or no photo")
        continue
      by_split[split].append((k, photo))

    self._coords: dict[str, object] = {}
    self._splits = {}
    photo_dir = os.path.join(folder, "photo")
    for split in ("train", "test"):
      wanted = collections.Counter(photo for _, photo in by_split[split])
      photo_items, index = [], {}
      for photo in sorted(wanted):
        path = next((os.path.join(photo_dir, photo + e) for e in PHOTO_EXTENSIONS
                     if os.path.isfile(os.path.join(photo_dir, photo + e))), None)
        if path is None:
          self._skips.add(os.path.join(photo_dir, photo + ".png"),
                          f"photo missing; dropping its {wanted[photo]} {split} sketch(es)")
          continue
        index[photo] = len(photo_items)
        photo_items.append(PhotoItem(key=path, label=0))
      sketch_items = []
      for k, photo in by_split[split]:
        if photo in index:
          key = f"{coord_path}[{k}]"
          self._coords[key] = coords[k]
          sketch_items.append(SketchItem(key=key, label=0, photo=index[photo]))
      self._splits[split] = Split(split, self.categories, tuple(photo_items), tuple(sketch_items))

  def split(self, name: str) -> Split:
    return images.lookup_split(self.name, self._splits, name)

  def load_photo(self, item: PhotoItem, size: int | None = None) -> np.ndarray:
    del size
    return images.load_rgb(item.key)

  def load_sketch(self, item: SketchItem) -> Sketch:
    if item.key not in self._coords:
      raise BadSample(item.key, "not a sketch of this index")
    try:
      return Sketch(strokes=strokes.from_pen_states(self._coords[item.key], item.key))
    except BadSample:
      raise
    except (TypeError, ValueError) as e:
      raise BadSample(item.key, f"malformed pen-state coordinates ({e})") from None

  @property
  def skipped(self):
    return tuple(self._skips.items)
