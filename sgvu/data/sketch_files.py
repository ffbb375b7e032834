"""A user's own sketch file -> `Sketch`, and a decoded sketch -> the model's input picture.

Files (what `python -m sgvu.tools.search --sketch` and the search page take):
- a picture (PNG/JPEG/...: white paper, dark strokes; transparency is white),
- a QuickDraw .ndjson file: one record {"drawing": [[xs, ys], ...], ...} per
  line; `line` picks the non-empty line (0-based),
- a .json file holding one QuickDraw record or just the list of [xs, ys] strokes.
Raw QuickDraw drawings (screen pixels) are fitted onto the 256 canvas.

`render` is the one way a decoded sketch becomes a model input: the training
pipeline (`pipeline.render_sketch`) and the tools both call it.
Errors are `DataError`s (`BadSample`) naming the file, its line and the stroke.
numpy + PIL only.
"""

from __future__ import annotations

import json
import os

import numpy as np

from sgvu.data import images, strokes as strokes_lib
from sgvu.data.base import BadSample, DataError, Sketch

STROKE_SUFFIXES = (".ndjson", ".json")


def is_stroke_file(path: str) -> bool:
  return path.lower().endswith(STROKE_SUFFIXES)


def _read_text(path: str) -> str:
  try:
    with open(path, encoding="utf-8") as f:
      return f.read()
  except UnicodeDecodeError as e:
    raise BadSample(path, f"not a UTF-8 text file ({e.reason}); stroke files are QuickDraw JSON") from None
  except OSError as e:
    raise BadSample(path, f"cannot read ({e.strerror or e})") from None


def read_record(path: str, line: int = 0) -> tuple[object, str]:
  """(the QuickDraw drawing of a stroke file, its key: 'path' or 'path:lineno' for .ndjson)."""
  text = _read_text(path)
  if path.lower().endswith(".ndjson"):
    rows = [(n, l) for n, l in enumerate(text.splitlines(), 1) if l.strip()]
    if not 0 <= line < len(rows):
      raise BadSample(path, f"line {line} asked for, but the file has {len(rows)} non-empty lines (0-based)")
    number, text = rows[line]
    key = f"{path}:{number}"
  else:
    key = path
  try:
    record = json.loads(text)
  except ValueError as e:
    raise BadSample(key, f"invalid JSON ({e})") from None
  if isinstance(record, dict):
    if "drawing" not in record:
      raise BadSample(key, f"no 'drawing' key (keys: {sorted(record)[:8]}); expected a QuickDraw record")
    record = record["drawing"]
  if not isinstance(record, list) or not record:
    raise BadSample(key, "'drawing' must be a non-empty list of [xs, ys] strokes")
  return record, key


def read_sketch(path: str, line: int = 0) -> Sketch:
  """The sketch in `path`: strokes (.ndjson / .json) or a grey raster (a picture); raises DataError naming it."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise BadSample(path, "sketch file not found")
  if is_stroke_file(path):
    drawing, key = read_record(path, line)
    return Sketch(strokes=strokes_lib.from_quickdraw(drawing, key, fit=True))
  return Sketch(raster=images.check_ink(images.load_grey(path), path))


def render(sketch: Sketch, size: int, *, fraction: float = 1.0, key: str = "<sketch>") -> np.ndarray:
  """uint8 [size, size, 3]: strokes rendered (the first `fraction` of their points), or a raster squared."""
  if sketch.strokes is not None:
    grey = strokes_lib.render_strokes(sketch.strokes, size, fraction=fraction, key=key)
  elif sketch.raster is not None:
    if fraction != 1.0:
      raise DataError(f"{key}: a raster sketch has no stroke order and cannot be rendered partially")
    raster = np.asarray(sketch.raster)
    if raster.ndim != 2 or raster.dtype != np.uint8:
      raise BadSample(key, f"raster must be uint8 [H, W], got {raster.dtype} {raster.shape}")
    grey = images.sketch_to_square(raster, size)
  else:
    raise BadSample(key, "sketch has neither strokes nor raster")
  return images.grey_to_rgb(grey)


def load_query(path: str, size: int, line: int = 0) -> np.ndarray:
  """uint8 [size, size, 3] of a sketch file, as the model sees it."""
  return render(read_sketch(path, line), size, key=os.fspath(path))
