"""Vector sketches: validation, format conversion and anti-aliased rendering.

Convention (see `sgvu.data.base.Sketch`): a sketch is a list of float32 arrays
[n_i, 2] of absolute (x, y) on a 256 x 256 canvas, in drawing order.
numpy + PIL only, so it runs in grain worker processes without JAX.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from sgvu.data.base import BadSample

CANVAS = 256
# Points may stray this far outside 0..255 (QuickDraw raw strokes overshoot a
# little); anything further is a corrupt file, not a sloppy drawing.
_CANVAS_SLACK = 128.0
_SUPERSAMPLE = 4
_DEFAULT_KEY = "<strokes>"

Strokes = list[np.ndarray]


def validate_strokes(strokes, key: str = _DEFAULT_KEY) -> Strokes:
  """Returns the strokes as float32 [n_i, 2] arrays or raises BadSample.

  Empty strokes (0 points) are dropped; a sketch with no points at all, a
  stroke that is not [n, 2], NaN/inf or points far outside the canvas raise.
  """
  if strokes is None:
    raise BadSample(key, "sketch is None")
  try:
    strokes = list(strokes)
  except TypeError:
    raise BadSample(key, f"strokes must be a list of [n, 2] arrays, got {type(strokes).__name__}") from None
  out = []
  for i, stroke in enumerate(strokes):
    try:
      arr = np.asarray(stroke, dtype=np.float32)
    except (TypeError, ValueError) as e:
      raise BadSample(key, f"stroke {i} is not numeric: {e}") from None
    if arr.size == 0:
      continue
    if arr.ndim != 2 or arr.shape[1] != 2:
      raise BadSample(key, f"stroke {i} has shape {arr.shape}, expected [n, 2] of (x, y)")
    if not np.all(np.isfinite(arr)):
      raise BadSample(key, f"stroke {i} contains NaN or inf")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -_CANVAS_SLACK or hi > CANVAS - 1 + _CANVAS_SLACK:
      raise BadSample(
          key, f"stroke {i} has coordinates in [{lo:.1f}, {hi:.1f}], far outside the {CANVAS} canvas")
    out.append(arr)
  if not out:
    raise BadSample(key, "sketch has no strokes / no points")
  return out


def num_points(strokes: Sequence[np.ndarray]) -> int:
  return int(sum(len(s) for s in strokes))


def prefix(strokes: Sequence[np.ndarray], *, fraction: float = 1.0,
           num_strokes: int | None = None) -> Strokes:
  """The partial sketch: first round(fraction * points) points, or first k strokes.

  At least one point is kept, so every level of a partial-sketch curve
  (e.g. 5%, 10%, ..., 100%) has ink.
  """
  if num_strokes is not None:
    if fraction != 1.0:
      raise ValueError("give either fraction or num_strokes, not both")
    if num_strokes < 1:
      raise ValueError(f"num_strokes must be >= 1, got {num_strokes}")
    return list(strokes[:num_strokes])
  if not 0.0 < fraction <= 1.0:
    raise ValueError(f"fraction must be in (0, 1], got {fraction}")
  keep = max(1, int(round(fraction * num_points(strokes))))
  out = []
  for s in strokes:
    if keep <= 0:
      break
    out.append(s[:keep])
    keep -= len(s)
  return out


def default_line_width(size: int) -> float:
  """Ink width in output pixels: ~3 px at 256, never thinner than 1 px."""
  return max(1.0, 3.0 * size / CANVAS)


def render_strokes(strokes, size: int, *, fraction: float = 1.0,
                   num_strokes: int | None = None, line_width: float | None = None,
                   key: str = _DEFAULT_KEY) -> np.ndarray:
  """Rasterises a (partial) sketch: uint8 [size, size], white 255, dark ink."""
  strokes = validate_strokes(strokes, key)
  strokes = prefix(strokes, fraction=fraction, num_strokes=num_strokes)
  ss = _SUPERSAMPLE if size <= 128 else 2  # large rasters need less supersampling to look smooth
  hi = size * ss
  width = (line_width if line_width is not None else default_line_width(size)) * ss
  width_px = max(1, int(round(width)))
  radius = width / 2.0
  scale = hi / CANVAS
  img = Image.new("L", (hi, hi), 255)
  draw = ImageDraw.Draw(img)
  for s in strokes:
    pts = (s.astype(np.float64) + 0.5) * scale
    flat = [tuple(p) for p in pts.tolist()]
    if len(flat) > 1:
      draw.line(flat, fill=0, width=width_px, joint="curve")
    # Round caps (and single-point dots): PIL lines end flat.
    for x, y in (flat[0], flat[-1]):
      draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=0)
  img = img.resize((size, size), Image.Resampling.BOX)
  return np.asarray(img, dtype=np.uint8)


# ----------------------------------------------------------------------------
# Format conversions.


def from_quickdraw(drawing, key: str = _DEFAULT_KEY, *, fit: bool = False) -> Strokes:
  """QuickDraw simplified format: list of [xs, ys] (each a list of numbers; a third list, ts, is ignored).

  fit: a drawing with points outside 0..255 (raw QuickDraw: screen pixels) is
  scaled onto the canvas by `normalize_to_canvas`; one already on it is kept.
  Raises BadSample naming `key` and the stroke.
  """
  if not isinstance(drawing, (list, tuple)):
    raise BadSample(key, f"a QuickDraw drawing is a list of [xs, ys] strokes, got {type(drawing).__name__}")
  strokes = []
  for i, stroke in enumerate(drawing):
    if not isinstance(stroke, (list, tuple)) or len(stroke) < 2:
      raise BadSample(key, f"QuickDraw stroke {i} must be [xs, ys] (optionally + ts), got {str(stroke)[:60]}")
    try:
      xs, ys = np.asarray(stroke[0], np.float32), np.asarray(stroke[1], np.float32)
    except (TypeError, ValueError) as e:
      raise BadSample(key, f"QuickDraw stroke {i} is not numeric ({e})") from None
    if xs.shape != ys.shape or xs.ndim != 1:
      raise BadSample(key, f"QuickDraw stroke {i}: xs {xs.shape} and ys {ys.shape} differ")
    strokes.append(np.stack([xs, ys], axis=1))
  if fit:
    points = np.concatenate(strokes) if strokes else np.zeros((0, 2), np.float32)
    if len(points) and np.all(np.isfinite(points)) and (points.min() < 0 or points.max() > CANVAS - 1):
      strokes = normalize_to_canvas(strokes)
  return validate_strokes(strokes, key)


def to_quickdraw(strokes: Sequence[np.ndarray], *, as_int: bool = True) -> list[list[list]]:
  """Inverse of `from_quickdraw`; rounds to ints like the simplified dataset."""
  out = []
  for s in strokes:
    s = np.asarray(s)
    xs, ys = s[:, 0], s[:, 1]
    if as_int:
      out.append([np.round(xs).astype(int).tolist(), np.round(ys).astype(int).tolist()])
    else:
      out.append([xs.astype(float).tolist(), ys.astype(float).tolist()])
  return out


def from_pen_states(points, key: str = _DEFAULT_KEY) -> Strokes:
  """[N, 3] absolute (x, y, pen); pen 1 ends a stroke (QMUL-V2 coordinate pickles).

  A trailing stroke without a final pen-up is kept.
  """
  arr = np.asarray(points, dtype=np.float32)
  if arr.ndim != 2 or arr.shape[1] != 3:
    raise BadSample(key, f"pen-state array has shape {arr.shape}, expected [N, 3]")
  ends = np.flatnonzero(arr[:, 2] > 0.5) + 1
  pieces = np.split(arr[:, :2], ends)
  return validate_strokes([p for p in pieces if len(p)], key)


def to_pen_states(strokes: Sequence[np.ndarray]) -> np.ndarray:
  """Inverse of `from_pen_states`: float32 [N, 3] with pen 1 on each stroke's last point."""
  rows = []
  for s in strokes:
    s = np.asarray(s, np.float32)
    pen = np.zeros((len(s), 1), np.float32)
    pen[-1] = 1.0
    rows.append(np.concatenate([s, pen], axis=1))
  return np.concatenate(rows, axis=0) if rows else np.zeros((0, 3), np.float32)


def normalize_to_canvas(strokes: Sequence[np.ndarray], margin: float = 16.0) -> Strokes:
  """Fits the bounding box into [margin, 255 - margin], keeping aspect, centred."""
  strokes = [np.asarray(s, np.float32) for s in strokes if len(s)]
  if not strokes:
    raise ValueError("normalize_to_canvas needs at least one point")
  allp = np.concatenate(strokes, axis=0)
  lo, hi = allp.min(axis=0), allp.max(axis=0)
  extent = float((hi - lo).max())
  avail = (CANVAS - 1) - 2 * margin
  if avail <= 0:
    raise ValueError(f"margin {margin} leaves no room on the {CANVAS} canvas")
  scale = avail / extent if extent > 0 else 1.0
  centre_in = (lo + hi) / 2.0
  centre_out = np.full(2, (CANVAS - 1) / 2.0, np.float32)
  return [((s - centre_in) * scale + centre_out).astype(np.float32) for s in strokes]
