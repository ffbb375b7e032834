"""Real composed (sketch + text) retrieval datasets: CSTBIR, FS-COCO and the QMUL sketch+text duet.

Layouts are in each class's docstring. Indexing checks every file it names (`verify`):
  'none'  existence only;
  'quick' (default) also the image header and its end marker (a truncated JPEG / PNG), and parses stroke files;
  'full'  decodes everything (blank sketch rasters too; minutes on a full release).
A file that fails is logged and listed in `skipped` (DataError naming it with strict=True); one that passes
'quick' but cannot be decoded raises BadSample naming it when loaded, which the pipelines count and skip.
"""

from __future__ import annotations

import collections
import csv
import glob
import os
import re
import zlib
import numpy as np
from PIL import Image

from sgvu.data import images, qmul, sketch_files
from sgvu.data.base import BadSample, DataError, Sketch, SketchItem
from sgvu.data.composed import PLACEHOLDER, ComposedQuery, ComposedSource, ComposedSplit

VERIFY = ("none", "quick", "full")
_SKETCH_TOKENS = re.compile(r"\[sketch\]|<sketch>", re.IGNORECASE)


def check_image(path: str, verify: str) -> None:
  """Raises BadSample naming `path` if it is missing or (per `verify`) unreadable."""
  if not os.path.isfile(path):
    raise BadSample(path, "file is missing")
  if verify == "full":
    images.load_rgb(path)
  elif verify == "quick":
    try:
      with Image.open(path) as img:
        fmt = img.format
    except Exception as e:  # PIL raises many types
      raise BadSample(path, f"cannot read the image header ({type(e).__name__}: {e})") from None
    with open(path, "rb") as f:  # a cut-off download keeps its header but loses its end marker
      f.seek(max(0, os.path.getsize(path) - 4096))
      tail = f.read()
    if (fmt == "JPEG" and b"\xff\xd9" not in tail) or (fmt == "PNG" and b"IEND" not in tail):
      raise BadSample(path, f"truncated {fmt} (no end marker)")


def check_sketch(path: str, verify: str) -> None:
  """As check_image for a sketch: a picture, or a QuickDraw .ndjson / .json stroke file (parsed unless 'none')."""
  if not os.path.isfile(path):
    raise BadSample(path, "file is missing")
  if sketch_files.is_stroke_file(path):
    if verify != "none":
      sketch_files.read_sketch(path)
  elif not path.lower().endswith(images.IMAGE_EXTENSIONS):
    raise BadSample(path, f"unsupported sketch format (pictures {images.IMAGE_EXTENSIONS} or "
                          f"QuickDraw {sketch_files.STROKE_SUFFIXES})")
  elif verify == "full":
    sketch_files.read_sketch(path)
  else:
    check_image(path, verify)


def with_placeholder(text: str) -> tuple[str, bool]:
  """(text with the release's sketch token as PLACEHOLDER, whether one had to be prepended)."""
  text = " ".join(_SKETCH_TOKENS.sub(PLACEHOLDER, text).split())
  if PLACEHOLDER in text:
    return text, False
  return f"{PLACEHOLDER} {text}".strip(), True


class _FileSource(ComposedSource):
  """Shared by the readers: file images, skips, split lookup."""

  def _start(self, name: str, strict: bool, verify: str) -> None:
    if verify not in VERIFY:
      raise DataError(f"{name}: unknown verify {verify!r}; valid: {VERIFY}")
    self.name, self.verify = name, verify
    self._skips = images.IndexSkips(name, strict)
    self._splits: dict[str, ComposedSplit] = {}

  def _ok(self, check, path: str, cache: dict) -> bool:
    """check(path, verify) once per path; a failure is a counted skip."""
    if path not in cache:
      try:
        check(path, self.verify)
        cache[path] = True
      except BadSample as e:  # keyed by the file even where the error names its line
        self._skips.add(path, e.reason if e.key == path else f"{e.key}: {e.reason}")
        cache[path] = False
    return cache[path]

  def split(self, name: str) -> ComposedSplit:
    self._check_split(name)
    return self._splits[name]

  def load_image(self, split: str, index: int, size: int | None = None) -> np.ndarray:
    del size
    keys = self.split(split).images
    if not 0 <= int(index) < len(keys):
      raise BadSample(f"{self.name}/{split}[{index}]", f"image index outside the gallery of {len(keys)}")
    return images.load_rgb(keys[int(index)])

  def load_sketch(self, query: ComposedQuery) -> Sketch:
    return sketch_files.read_sketch(query.sketch)

  @property
  def skipped(self):
    return tuple(self._skips.items)


# ---------------------------------------------------------------------------- CSTBIR

CSTBIR_LAYOUT = """  <root>/<any>.csv   header: split,text,object_category,image_filename,sketch_filename
  <root>/images/<image_filename>     (Visual Genome JPEGs)
  <root>/sketches/<sketch_filename>  (PNG, or QuickDraw .ndjson / .json strokes)"""
_CSTBIR_COLUMNS = ("split", "text", "object_category", "image_filename", "sketch_filename")
_CSTBIR_SPLITS = {"train": "train", "val": "val", "test1k": "test1k", "test_1k": "test1k", "test5k": "test5k",
                  "test_5k": "test5k", "open": "open", "open_category": "open"}


class CSTBIR(_FileSource):
  """CSTBIR (Gatti et al. 2024): Visual Genome scenes, a QuickDraw sketch of one object + the rest in words.

  Every `<root>/*.csv` is read (sorted). Query keys are '<csv>:<line>'; a split's gallery is its rows' unique
  images in order of first appearance (an image stays even if its rows' sketches are bad). `notes` counts texts
  without a sketch token ('* ' was prepended).
  """

  kind = "scene"
  split_names = ("train", "val", "test1k", "test5k", "open")

  def __init__(self, root: str | None, strict: bool = False, verify: str = "quick"):
    self._start("cstbir", strict, verify)
    csvs = sorted(glob.glob(os.path.join(root, "*.csv"))) if root and os.path.isdir(root) else []
    if not csvs:
      raise images.missing_root(self.name, root, CSTBIR_LAYOUT)
    self.root, self.notes = root, collections.Counter()
    rows = {s: [] for s in self.split_names}  # split -> [(key, text, category, image, sketch)]
    for path in csvs:
      with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in _CSTBIR_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
          raise DataError(f"{path}: CSV lacks column(s) {missing}; expected layout:\n{CSTBIR_LAYOUT}")
        for row in reader:
          key = f"{path}:{reader.line_num}"
          split = _CSTBIR_SPLITS.get((row["split"] or "").strip().lower().replace("-", "_"))
          if split is None:
            self._skips.add(key, f"unknown split {row['split']!r}; valid: {sorted(_CSTBIR_SPLITS)}")
            continue
          text, prefixed = with_placeholder(row["text"] or "")
          if text.count(PLACEHOLDER) != 1:
            self._skips.add(key, f"text has {text.count(PLACEHOLDER)} sketch placeholders: {row['text']!r}")
            continue
          category = " ".join((row["object_category"] or "").split())
          if not category:
            self._skips.add(key, "empty object_category")
            continue
          self.notes["no sketch token; '* ' prepended"] += prefixed
          rows[split].append((key, text, category, os.path.join(root, "images", row["image_filename"] or ""),
                              os.path.join(root, "sketches", row["sketch_filename"] or "")))
    image_ok, sketch_ok = {}, {}
    kept = {s: [r for r in rs if self._ok(check_image, r[3], image_ok)] for s, rs in rows.items()}
    self.categories = tuple(sorted({r[2] for rs in kept.values() for r in rs}))
    for split, rs in kept.items():
      gallery = list(dict.fromkeys(r[3] for r in rs))
      index = {p: i for i, p in enumerate(gallery)}
      queries = tuple(ComposedQuery(key, sketch, text, index[image], self.categories.index(cat))
                      for key, text, cat, image, sketch in rs if self._ok(check_sketch, sketch, sketch_ok))
      cats = tuple(sorted({self.categories[q.label] for q in queries}))
      self._splits[split] = ComposedSplit(split, cats, tuple(gallery), (-1,) * len(gallery), queries)


# ---------------------------------------------------------------------------- FS-COCO

FSCOCO_LAYOUT = """  <root>/raster_sketches/<user>/<id>.jpg
  <root>/images/<user>/<id>.jpg
  <root>/text/<user>/<id>.txt        (the caption)
  <root>/train.txt, <root>/test.txt  (optional: lines '<user>/<id>'; else a fixed 70/30 split by id)"""


class FSCOCO(_FileSource):
  """FS-COCO (Chowdhury et al. 2022): a freehand scene sketch per COCO photo, with the sketcher's caption.

  A query is the whole-scene sketch + '* <caption>' (the sketch is the scene); label 0 ('scene');
  its target is its own photo. A split file lists '<user>/<id>' (an extension is ignored); with only one
  present, the other split is the rest.
  """

  kind = "scene"
  split_names = ("train", "test")
  categories = ("scene",)

  def __init__(self, root: str | None, strict: bool = False, verify: str = "quick"):
    self._start("fscoco", strict, verify)
    sketch_dir = os.path.join(root, "raster_sketches") if root else ""
    users = images.list_dirs(sketch_dir) if sketch_dir else []
    if not users:
      raise images.missing_root(self.name, root, FSCOCO_LAYOUT)
    self.root = root
    sketches = {f"{u}/{os.path.splitext(os.path.basename(p))[0]}": p
                for u in users for p in images.list_images(os.path.join(sketch_dir, u))}
    ids = list(sketches)
    listed = {s: self._read_split_file(os.path.join(root, f"{s}.txt")) for s in self.split_names}
    if listed["train"] is None and listed["test"] is None:  # crc32, not hash(): the same split in every process
      listed["train"] = {i for i in ids if zlib.crc32(i.encode()) % 10 < 7}
    for s, other in (("train", "test"), ("test", "train")):
      if listed[s] is None:
        listed[s] = set(ids) - listed[other]
    checked = {}
    for split in self.split_names:
      gallery, queries = [], []
      for i in ids:
        if i not in listed[split]:
          continue
        photo = self._find(os.path.join(root, "images", i))
        text = self._caption(os.path.join(root, "text", i + ".txt"))
        if photo is None or text is None or not self._ok(check_image, photo, checked) \
            or not self._ok(check_sketch, sketches[i], checked):
          continue
        queries.append(ComposedQuery(sketches[i], sketches[i], f"{PLACEHOLDER} {text}", len(gallery), 0))
        gallery.append(photo)
      self._splits[split] = ComposedSplit(split, self.categories if queries else (), tuple(gallery),
                                          (-1,) * len(gallery), tuple(queries))

  def _read_split_file(self, path: str) -> set[str] | None:
    if not os.path.isfile(path):
      return None
    with open(path, encoding="utf-8") as f:
      return {os.path.splitext(line.strip().replace("\\", "/"))[0] for line in f if line.strip()}

  def _find(self, stem: str) -> str | None:
    for ext in images.IMAGE_EXTENSIONS:
      if os.path.isfile(stem + ext):
        return stem + ext
    self._skips.add(stem + ".jpg", "photo missing")
    return None

  def _caption(self, path: str) -> str | None:
    try:
      with open(path, encoding="utf-8") as f:
        text = " ".join(f.read().replace(PLACEHOLDER, " ").split())  # the one '*' is the sketch's
    except (OSError, UnicodeDecodeError) as e:
      self._skips.add(path, f"cannot read the caption ({type(e).__name__}: {e})")
      return None
    if not text:
      self._skips.add(path, "empty caption")
      return None
    return text


# ---------------------------------------------------------------------------- QMUL duet


class QMULDuet(_FileSource):
  """QMUL-Shoe-V2 / Chair-V2 with query texts (the sketch+text duet): target = the sketch's own photo.

  texts: a CSV with columns sketch_key,text (default `<variant folder>/texts.csv` if present); sketch_key is
  the coordinate-pickle key ('/train/2525993170_1') or the full QMUL item key. A text without PLACEHOLDER
  gets '* ' prepended; a sketch without a row has text '*' (the sketch alone).
  """

  kind = "instance"
  split_names = ("train", "test")

  def __init__(self, root: str | None, variant: str = "ShoeV2", texts: str | None = None, strict: bool = False):
    self.qmul = qmul.QMUL(root, variant=variant, strict=strict)
    self.photo_source = self.qmul  # the sketch/photo pairs the duet trains on (no text)
    self._start(f"{self.qmul.name}_duet", strict, "none")
    self.root, self.variant, self.categories = root, variant, self.qmul.categories
    if texts is None:
      folder = next((os.path.join(root, c) for c in (variant, "", os.path.join("Dataset", variant))
                     if os.path.isfile(os.path.join(root, c, f"{variant}_Coordinate"))), root)
      texts = os.path.join(folder, "texts.csv")
      by_key = self._read_texts(texts) if os.path.isfile(texts) else {}
    elif not os.path.isfile(texts):
      raise DataError(f"{self.name}: texts file {texts!r} is missing (columns sketch_key,text)")
    else:
      by_key = self._read_texts(texts)
    used = set()
    for split in self.split_names:
      sp = self.qmul.split(split)
      queries = []
      for s in sp.sketches:
        pickle_key = s.key[s.key.index("[") + 1:-1]
        key = next((k for k in (s.key, pickle_key) if k in by_key), None)
        used.add(key)
        queries.append(ComposedQuery(s.key, s.key, by_key.get(key, PLACEHOLDER), int(s.photo), s.label))
      self._splits[split] = ComposedSplit(split, sp.categories, tuple(p.key for p in sp.photos),
                                          tuple(p.label for p in sp.photos), tuple(queries))
    for k in sorted(set(by_key) - used):
      self._skips.add(f"{texts}[{k}]", "text names no sketch of the index")

  def _read_texts(self, path: str) -> dict[str, str]:
    with open(path, encoding="utf-8-sig", newline="") as f:
      reader = csv.DictReader(f)
      if not {"sketch_key", "text"} <= set(reader.fieldnames or []):
        raise DataError(f"{path}: expected columns sketch_key,text; got {reader.fieldnames}")
      out = {}
      for row in reader:
        text = with_placeholder(row["text"] or "")[0]
        if text.count(PLACEHOLDER) != 1:
          self._skips.add(f"{path}:{reader.line_num}", f"text has {text.count(PLACEHOLDER)} sketch placeholders")
        else:
          out[(row["sketch_key"] or "").strip()] = text
      return out

  def load_sketch(self, query: ComposedQuery) -> Sketch:
    return self.qmul.load_sketch(SketchItem(query.sketch, query.label, query.target))

  @property
  def skipped(self):
    return tuple(self.qmul.skipped) + tuple(self._skips.items)
