"""Tiny copies of the real datasets, written in exactly their original layouts and formats.

Each `write_*` function returns a dict describing what it wrote, so tests can
check a reader against it. Photos are solid colours derived from their file
stem (`photo_colour`), so a test can tell which photo a pipeline delivered.
Reused by the experiment tests: keep the signatures stable.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle

import numpy as np
from PIL import Image

from sgvu.data import strokes as strokes_lib


def photo_colour(stem: str) -> tuple[int, int, int]:
  """A distinct, JPEG-robust colour per photo name (channels in 40..215)."""
  h = hashlib.sha256(stem.encode()).digest()
  return tuple(40 + (b % 176) for b in h[:3])


def _write_photo(path: str, stem: str, size=(40, 30)) -> str:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  w, h = size
  img = Image.new("RGB", (w, h), photo_colour(stem))
  fmt = "PNG" if path.lower().endswith(".png") else "JPEG"
  img.save(path, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
  return path


def _toy_strokes(seed: int) -> list[np.ndarray]:
  """A few wobbly strokes on the 256 canvas (each drawing different)."""
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(int(rng.integers(2, 5))):
    start = rng.uniform(40, 216, size=2)
    steps = rng.normal(0, 12, size=(int(rng.integers(3, 8)), 2))
    out.append(np.clip(start + np.cumsum(steps, axis=0), 0, 255).astype(np.float32))
  return out


def _write_sketch_png(path: str, seed: int, size: int = 256, mode: str = "L") -> str:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  raster = strokes_lib.render_strokes(_toy_strokes(seed), size)
  Image.fromarray(raster).convert(mode).save(path, "PNG")
  return path


def _write_truncated_jpeg(path: str) -> str:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  _write_photo(path, "corrupt", size=(64, 48))
  data = open(path, "rb").read()
  with open(path, "wb") as f:
    f.write(data[: len(data) // 2])
  return path


def _write_blank_png(path: str) -> str:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.new("L", (256, 256), 255).save(path, "PNG")
  return path


# ----------------------------------------------------------------------------


SKETCHY_CLASSES = ("airplane", "car_(sedan)", "hot-air_balloon", "bat", "cow")


def write_sketchy(root: str, classes=SKETCHY_CLASSES, photos_per_class: int = 2,
                  sketches_per_photo: int = 2, extended: bool = True,
                  extra_extended: int = 1, corrupt: bool = False) -> dict:
  """<root>/256x256/{sketch,photo}/tx_000000000000/<class>/..., <root>/EXTEND_image_sketchy/."""
  sub = "tx_000000000000"
  photos, sketches, ext, bad = {}, {}, {}, []
  seed = 0
  for ci, c in enumerate(classes):
    photos[c], sketches[c], ext[c] = [], [], []
    for p in range(photos_per_class):
      stem = f"n{ci:08d}_{100 + p}"
      photos[c].append(_write_photo(os.path.join(root, "256x256", "photo", sub, c, stem + ".jpg"), stem))
      for n in range(1, sketches_per_photo + 1):
        seed += 1
        sketches[c].append(_write_sketch_png(
            os.path.join(root, "256x256", "sketch", sub, c, f"{stem}-{n}.png"), seed))
      if extended:  # the extended set repeats the original photos
        ext[c].append(_write_photo(os.path.join(root, "EXTEND_image_sketchy", c, stem + ".jpg"), stem))
    for e in range(extra_extended if extended else 0):
      stem = f"ext_{ci}_{e}"
      ext[c].append(_write_photo(os.path.join(root, "EXTEND_image_sketchy", c, stem + ".jpg"), stem,
                                 size=(30, 44)))
  if corrupt:
    c = classes[0]
    bad.append(_write_truncated_jpeg(os.path.join(root, "256x256", "photo", sub, c, "n99999999_1.jpg")))
    bad.append(_write_blank_png(os.path.join(root, "256x256", "sketch", sub, c, "n99999999_1-1.png")))
  return {"root": root, "classes": tuple(classes), "photos": photos, "sketches": sketches,
          "extended": ext, "bad": bad}


TUBERLIN_CLASSES = ("airplane", "alarm clock", "mouse (animal)", "trombone", "hot air balloon")
# ImageResized.zip spellings of some photo folders (cf. sgvu.data.tuberlin.PHOTO_FOLDER_ALIASES).
_TUBERLIN_RAW_PHOTO_FOLDER = {"alarm clock": "alarmclock", "mouse (animal)": "mouse",
                              "trombone": "tromobone", "hot air balloon": "hotairballoon"}


def write_tuberlin(root: str, classes=TUBERLIN_CLASSES, photos_per_class: int = 3,
                   sketches_per_class: int = 3, layout: str = "doodle2search",
                   corrupt: bool = False) -> dict:
  """layout 'doodle2search': <root>/TU-Berlin/{sketches,images}/<class_with_underscores>/;
  'raw': <root>/TUBerlin/png/<class name>/<n>.png + ImageResized/<squashed name>/*.JPEG."""
  if layout not in ("doodle2search", "raw"):
    raise ValueError(f"unknown layout {layout!r}")
  photos, sketches, bad = {}, {}, []
  n = 0
  for c in classes:
    if layout == "raw":
      base = os.path.join(root, "TUBerlin")
      sk_dir = os.path.join(base, "png", c)
      ph_dir = os.path.join(base, "ImageResized", _TUBERLIN_RAW_PHOTO_FOLDER.get(c, c.replace(" ", "")))
      ext = ".JPEG"
    else:
      base = os.path.join(root, "TU-Berlin")
      name = c.replace(" ", "_")
      sk_dir, ph_dir, ext = os.path.join(base, "sketches", name), os.path.join(base, "images", name), ".jpg"
    sketches[c] = []
    for _ in range(sketches_per_class):
      n += 1
      sketches[c].append(_write_sketch_png(os.path.join(sk_dir, f"{n}.png"), n, size=128))
    photos[c] = [_write_photo(os.path.join(ph_dir, f"{c.replace(' ', '')}_{k}{ext}"), f"{c}_{k}")
                 for k in range(photos_per_class)]
  if corrupt:
    bad.append(_write_truncated_jpeg(os.path.join(os.path.dirname(photos[classes[0]][0]), "zz_bad.jpg")))
    bad.append(_write_blank_png(os.path.join(os.path.dirname(sketches[classes[0]][0]), "99999.png")))
  return {"root": root, "classes": tuple(classes), "photos": photos, "sketches": sketches, "bad": bad}


# Doodle2Search class name -> QuickDraw file name.
QUICKDRAW_FILES = {"airplane": "airplane", "eiffel_tower": "The Eiffel Tower",
                   "crocodilian": "crocodile", "palm_tree": "palm tree", "bat": "bat",
                   "fire_hydrant": "fire hydrant"}


def quickdraw_record(word: str, key_id: int, drawing_seed: int) -> dict:
  drawing = strokes_lib.to_quickdraw(_toy_strokes(drawing_seed))
  return {"word": word, "countrycode": "DE", "timestamp": "2017-03-01 20:41:36.70725 UTC",
          "recognized": bool(key_id % 3), "key_id": str(5000000000000000 + key_id),
          "drawing": drawing}


def write_quickdraw(root: str, classes=tuple(QUICKDRAW_FILES), sketches_per_class: int = 5,
                    photos_per_class: int = 2, malformed: bool = False, corrupt: bool = False) -> dict:
  """<root>/sketch/<QuickDraw file name>.ndjson + <root>/photo/<Doodle2Search name>/*.jpg."""
  files, photos, bad = {}, {}, []
  k = 0
  for c in classes:
    word = QUICKDRAW_FILES.get(c, c.replace("_", " "))
    path = os.path.join(root, "sketch", word + ".ndjson")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    lines = []
    for _ in range(sketches_per_class):
      k += 1
      lines.append(json.dumps(quickdraw_record(word, k, k)))
    if malformed and c == classes[0]:
      bad_lines = ['{"word": "' + word + '", "drawing": [[[1, 2, 3], [4, 5]]', # cut off: bad JSON
                   json.dumps({"word": word, "key_id": "1", "drawing": []}),  # no strokes
                   json.dumps({"word": word, "key_id": "2", "drawing": [[[1, 2, 3], [4, 5]]]})]  # xs != ys
      lines[1:1] = bad_lines
      bad += [f"{path}:{i}" for i in (2, 3, 4)]
    with open(path, "w") as f:
      f.write("\n".join(lines) + "\n")
    files[c] = path
    photos[c] = [_write_photo(os.path.join(root, "photo", c, f"{c}_{j}.jpg"), f"{c}_{j}")
                 for j in range(photos_per_class)]
  if corrupt:
    bad.append(_write_truncated_jpeg(os.path.join(root, "photo", classes[0], "zz_bad.jpg")))
  return {"root": root, "classes": tuple(classes), "files": files, "photos": photos, "bad": bad,
          "sketches_per_class": sketches_per_class}


def write_qmul(root: str, name: str = "ShoeV2", train_photos: int = 3, test_photos: int = 2,
               sketches_per_photo: int = 2, missing_photo: bool = False,
               malformed: bool = False) -> dict:
  """<root>/<name>/<name>_Coordinate (pickle: '/train/<photo>_<n>' -> float [N, 3]) + photo/*.png."""
  if name not in ("ShoeV2", "ChairV2"):
    raise ValueError(f"unknown QMUL variant {name!r}")
  folder = os.path.join(root, name)
  coords, photos, keys, bad = {}, {"train": [], "test": []}, {"train": [], "test": []}, []
  seed = 0
  for split, count in (("train", train_photos), ("test", test_photos)):
    for p in range(count):
      # ChairV2 photo names contain an underscore themselves ('00140128_v1').
      stem = f"{2525993170 + 100 * p + (split == 'test')}" if name == "ShoeV2" else \
          f"{140128 + 100 * p + (split == 'test'):08d}_v1"
      photos[split].append(_write_photo(os.path.join(folder, "photo", stem + ".png"), stem,
                                        size=(48, 40)))
      for n in range(1, sketches_per_photo + 1):
        seed += 1
        key = f"/{split}/{stem}_{n}"
        coords[key] = strokes_lib.to_pen_states(_toy_strokes(seed)).astype(np.float64)
        keys[split].append(key)
  if missing_photo:
    key = "/train/9999999999_1"
    coords[key] = strokes_lib.to_pen_states(_toy_strokes(999)).astype(np.float64)
    bad.append(os.path.join(folder, "photo", "9999999999.png"))
  if malformed:
    key = keys["test"][0]
    coords[key] = np.zeros((5, 2))  # no pen column
    bad.append(key)
  with open(os.path.join(folder, f"{name}_Coordinate"), "wb") as f:
    pickle.dump(coords, f)
  return {"root": root, "folder": folder, "photos": photos, "keys": keys, "bad": bad}


def outcome(fn):
  """fn() or, when it raises BadSample, ("bad", key, reason): loads from a folder and from its copy compare alike."""
  from sgvu.data.base import BadSample  # pylint: disable=g-import-not-at-top
  try:
    return fn()
  except BadSample as e:
    return ("bad", e.key, e.reason)
