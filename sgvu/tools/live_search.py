"""The engine behind `python -m sgvu.tools.serve`: strokes in, ranked gallery photos out, per stroke.

It holds one exported model (sgvu.export bundle) and its embedded gallery;
`parse_request` turns a JSON payload of the search API into a `Query` or
raises `RequestError` (an HTTP status and a message naming the bad key or
value), and `search` answers it. Nothing here knows HTTP beyond the status
codes: sgvu/tools/serve.py puts it behind Flask.

Coordinates: with `canvas: [width, height]` the drawing surface is mapped onto
the sketch canvas (256 x 256, aspect kept, centred), so a partial sketch sits
where it will sit when complete, as in training. Without it the strokes are
read like a QuickDraw record: kept when they lie on 0..255, else their bounding
box is fitted to the canvas.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import math
import threading
from typing import Any

import numpy as np
from PIL import Image

from sgvu import export, viz
from sgvu.data import BadSample, images, strokes as strokes_lib

MAX_TOP = 100
MAX_STROKES = 1000
MAX_POINTS = 50_000
MAX_TEXT = 500
MAX_RANK_STEPS = 32  # stroke counts scored for the target's rank history (evenly spread, the last always)
THUMBNAIL_SIZE = 128
_QUERY_BATCHES = (1, 2, 4, 8, 16, 32)  # the padded batch sizes a session compiles (export pads to powers of 2)


class RequestError(ValueError):
  """A bad search request; `status` is the HTTP status to answer with, the message names the problem."""

  def __init__(self, message: str, status: int = 400):
    super().__init__(message)
    self.status = status


@dataclasses.dataclass
class Query:
  strokes: list[np.ndarray]  # on the 256 x 256 sketch canvas
  top: int = 10
  text: str = ""
  target: int | None = None  # gallery row whose rank after each stroke is reported
  expected_strokes: int | None = None  # models with per-level heads: completion = strokes / expected


# ------------------------------------------------------------------ request parsing
def _number(v: Any, where: str) -> float:
  # bool is an int in Python and NaN/Infinity pass json.loads: both are rejected here, by name.
  if isinstance(v, bool) or not isinstance(v, (int, float)):
    raise RequestError(f"{where} must be a number, got {json_repr(v)}")
  if not math.isfinite(v):
    raise RequestError(f"{where} must be finite, got {v}")
  return float(v)


def _int(payload: dict, key: str, default: int | None, lo: int, hi: int) -> int | None:
  v = payload.get(key, default)
  if v is None:
    return None
  if isinstance(v, bool) or not isinstance(v, int):
    raise RequestError(f"'{key}' must be an integer in {lo}..{hi}, got {json_repr(v)}")
  if not lo <= v <= hi:
    raise RequestError(f"'{key}' must be in {lo}..{hi}, got {v}")
  return v


def json_repr(v: Any, limit: int = 40) -> str:
  text = repr(v)
  return text if len(text) <= limit else text[:limit] + "..."


def parse_strokes(raw: Any) -> list[np.ndarray]:
  """QuickDraw strokes [[[x...], [y...]], ...] -> float [n_i, 2] arrays (raw coordinates), or RequestError."""
  if not isinstance(raw, list):
    raise RequestError(f"'strokes' must be a list of [[x...], [y...]] strokes, got {json_repr(raw)}")
  if not raw:
    raise RequestError("'strokes' is empty: draw at least one stroke")
  if len(raw) > MAX_STROKES:
    raise RequestError(f"'strokes' has {len(raw)} strokes, at most {MAX_STROKES} are accepted", 413)
  out, total = [], 0
  for i, stroke in enumerate(raw):
    if not isinstance(stroke, list) or len(stroke) not in (2, 3) or not all(isinstance(c, list) for c in stroke):
      raise RequestError(f"stroke {i} must be [[x...], [y...]] (optionally + [t...]), got {json_repr(stroke)}")
    xs, ys = stroke[0], stroke[1]
    if len(xs) != len(ys):
      raise RequestError(f"stroke {i} has {len(xs)} x values but {len(ys)} y values")
    if not xs:
      raise RequestError(f"stroke {i} is empty (no points)")
    total += len(xs)
    if total > MAX_POINTS:
      raise RequestError(f"the sketch has over {MAX_POINTS} points", 413)
    out.append(np.asarray([[_number(x, f"stroke {i} x[{j}]"), _number(y, f"stroke {i} y[{j}]")]
                           for j, (x, y) in enumerate(zip(xs, ys))], np.float64))
  return out


def to_sketch_canvas(strokes: list[np.ndarray], canvas: Any = None) -> list[np.ndarray]:
  """Raw strokes -> the 256 x 256 sketch canvas (see the module doc); raises RequestError."""
  size = strokes_lib.CANVAS - 1
  if canvas is not None:
    if not isinstance(canvas, list) or len(canvas) != 2:
      raise RequestError(f"'canvas' must be [width, height], got {json_repr(canvas)}")
    w, h = (_number(c, f"canvas[{i}]") for i, c in enumerate(canvas))
    if w <= 0 or h <= 0:
      raise RequestError(f"'canvas' must be positive, got {[w, h]}")
    scale = size / max(w, h)
    offset = np.asarray([(size - w * scale) / 2, (size - h * scale) / 2])
    strokes = [s * scale + offset for s in strokes]
  else:
    points = np.concatenate(strokes)
    if points.min() < 0 or points.max() > size:
      strokes = strokes_lib.normalize_to_canvas([s.astype(np.float32) for s in strokes])
  try:
    return strokes_lib.validate_strokes([np.asarray(s, np.float32) for s in strokes], key="request")
  except BadSample as e:
    raise RequestError(f"{e} (is 'canvas' the size of the drawing surface?)") from None


def top_rows(scores: np.ndarray, k: int) -> np.ndarray:
  """Indices of the k largest scores, best first, equal scores in gallery order (a 10k sort is ~1 ms)."""
  return np.argsort(-scores, kind="stable")[:k]


# ------------------------------------------------------------------ the engine
class LiveSearch:
  """One bundle and its gallery, answering queries; thread-safe (Flask/waitress serve several at once)."""

  def __init__(self, bundle: export.Bundle, *, workdir: str = "", method: str = ""):
    self.bundle = bundle
    self.workdir, self.method = workdir, method or str(bundle.meta.get("method", "?"))
    if self.takes_text:
      # Composed sketch+text bundles (issue #12) will say how their text is embedded; until then refuse
      # rather than rank by the sketch alone while the page shows a text box.
      raise export.BundleError(f"{bundle.directory}: its queries take text, which this sgvu cannot embed yet")
    self.keys = [str(k) for k in bundle.gallery.keys]
    self._row_of = {k: i for i, k in enumerate(self.keys)}
    gallery = np.asarray(bundle.gallery.embeds, np.float32)
    self._gallery_unit = gallery / np.maximum(np.linalg.norm(gallery, axis=1, keepdims=True), 1e-12)
    self._thumbnails: collections.OrderedDict[int, bytes] = collections.OrderedDict()
    self._lock = threading.Lock()

  @property
  def takes_text(self) -> bool:
    return bool(self.bundle.meta["query"].get("text", False))

  def info(self) -> dict:
    meta = self.bundle.meta
    return {"workdir": self.workdir, "method": self.method, "bundle": self.bundle.name,
            "experiment": meta.get("experiment", "?"), "split": meta.get("split", ""),
            "gallery_size": len(self.keys), "image_size": self.bundle.image_size, "levels": self.bundle.levels,
            "takes_text": self.takes_text, "max_top": min(MAX_TOP, len(self.keys))}

  def warm_up(self) -> None:
    """Compiles every query batch shape once, so the first strokes of a session are not slow."""
    blank = np.full((1, self.bundle.image_size, self.bundle.image_size, 3), 255, np.uint8)
    for n in _QUERY_BATCHES:
      self.bundle.embed_queries(np.repeat(blank, n, axis=0))
    if self.keys:
      self.thumbnail_png(0)  # opens the gallery's source (SynthSketch builds its world here)

  def parse_request(self, payload: Any) -> Query:
    if not isinstance(payload, dict):
      raise RequestError(f"the body must be a JSON object, got {type(payload).__name__}")
    unknown = sorted(set(payload) - {"strokes", "top", "text", "target", "canvas", "expected_strokes"})
    if unknown:
      raise RequestError(f"unknown key(s) {unknown}; known: strokes, top, text, target, canvas, expected_strokes")
    if "strokes" not in payload:
      raise RequestError("missing 'strokes' ([[[x...], [y...]], ...], QuickDraw format)")
    strokes = to_sketch_canvas(parse_strokes(payload["strokes"]), payload.get("canvas"))
    text = payload.get("text", "")
    if text is None:
      text = ""
    if not isinstance(text, str):
      raise RequestError(f"'text' must be a string, got {json_repr(text)}")
    if len(text) > MAX_TEXT:
      raise RequestError(f"'text' has {len(text)} characters, at most {MAX_TEXT}")
    if text.strip() and not self.takes_text:
      raise RequestError(f"method {self.method!r} retrieves by sketch only; it takes no 'text'")
    target = payload.get("target")
    if target is not None:
      if not isinstance(target, str) or target not in self._row_of:
        raise RequestError(f"'target' {json_repr(target)} is not a key of the gallery "
                           f"({len(self.keys)} photos, e.g. {self.keys[:3]})")
      target = self._row_of[target]
    top = min(_int(payload, "top", 10, 1, MAX_TOP), len(self.keys))  # a small gallery is returned whole
    return Query(strokes, top=top, text=text.strip(),
                 target=target, expected_strokes=_int(payload, "expected_strokes", None, 1, MAX_STROKES))

  def _completion(self, query: Query, num_strokes: int) -> float:
    if query.expected_strokes is None:
      return 1.0  # without a guess of the final count, a partial sketch is scored as complete
    return min(1.0, num_strokes / query.expected_strokes)

  def _embed(self, query: Query, counts: list[int]) -> np.ndarray:
    size = self.bundle.image_size
    partial = np.stack([images.grey_to_rgb(strokes_lib.render_strokes(query.strokes, size, num_strokes=c))
                        for c in counts])
    fractions = np.asarray([self._completion(query, c) for c in counts], np.float32)
    return self.bundle.embed_queries(partial, fractions)

  def search(self, query: Query) -> dict:
    """{"strokes", "results": [{rank, score, key, category, image}], "target"?: {key, rank, ranks, strokes}}."""
    n = len(query.strokes)
    counts = viz.stroke_counts(n, MAX_RANK_STEPS) if query.target is not None else [n]
    scores = self.scores(self._embed(query, counts))
    best = top_rows(scores[-1], query.top)
    g = self.bundle.gallery
    out = {"strokes": n, "gallery_size": len(self.keys),
           "results": [{"rank": r + 1, "score": float(scores[-1, j]), "key": self.keys[j],
                        "category": self.bundle.categories[int(g.labels[j])], "image": f"/gallery/{int(j)}.png"}
                       for r, j in enumerate(best)]}
    if query.target is not None:
      row = query.target
      ranks = [int(r) for r in 1 + (scores > scores[:, row:row + 1]).sum(axis=1)]  # ties in the target's favour
      out["target"] = {"key": self.keys[query.target], "image": f"/gallery/{query.target}.png",
                       "strokes": counts, "ranks": ranks, "rank": ranks[-1]}
    return out

  def scores(self, embeds: np.ndarray) -> np.ndarray:
    """Cosine similarity [Q, G] of query embeddings to the gallery (numpy: no compile per k or Q)."""
    q = np.asarray(embeds, np.float32)
    return (q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)) @ self._gallery_unit.T

  def row(self, value: str) -> int:
    try:
      row = int(value)
    except ValueError:
      raise RequestError(f"gallery id {value!r} is not an integer", 404) from None
    if not 0 <= row < len(self.keys):
      raise RequestError(f"gallery id {row} is out of range (0..{len(self.keys) - 1})", 404)
    return row

  def thumbnail_png(self, row: int) -> bytes:
    """PNG bytes of gallery photo `row` at THUMBNAIL_SIZE (rendered or read once, kept in an LRU of 4096)."""
    with self._lock:
      if row in self._thumbnails:
        self._thumbnails.move_to_end(row)
        return self._thumbnails[row]
    bundle = self.bundle
    split = bundle.source().split(bundle.meta["split"])
    from sgvu.data import pipeline  # pylint: disable=g-import-not-at-top
    photo = pipeline.load_photo(bundle.source(), split.photos[int(bundle.gallery.index[row])],
                                max(THUMBNAIL_SIZE, bundle.image_size))
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="PNG")
    data = buffer.getvalue()
    with self._lock:
      self._thumbnails[row] = data
      while len(self._thumbnails) > 4096:
        self._thumbnails.popitem(last=False)
    return data
