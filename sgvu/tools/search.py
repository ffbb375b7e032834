"""Sketch in, photos out: searches the test gallery of a trained ZS-SBIR workdir.

  python -m sgvu.tools.search --workdir W --sketch my.png --top 10 --out hits.png

W is the workdir of `python -m sgvu.main --config=experiments/zs_sbir*.py`:
W/config.json says the dataset and model, W/<method>/checkpoints holds the
trained parameters (`--method`, default the config's `grid_method`; a method
that trains nothing, like 'frozen', uses the pretrained CLIP). The gallery is
the test split's photos (the unseen classes); its embeddings are cached in
W/<method>/gallery.npz, keyed by the checkpoint step.

A sketch is a picture (PNG/JPEG: white paper, dark strokes), a QuickDraw
.ndjson file (`--line N` picks the line, default the first) or a .json file
holding a QuickDraw record ({"drawing": [[xs, ys], ...]}) or just the list of
[xs, ys] strokes. Several sketches give one row each. The grid frames a hit
green/red only with --category (is it that class?); otherwise all green.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Sequence

from absl import logging
import jax
import ml_collections
import numpy as np

from sgvu import checkpoint as ckpt_lib
from sgvu import clip_io, metrics, train, viz
from sgvu.data import DataError, Sketch, images, pipeline, strokes as strokes_lib
from sgvu.tasks import clip_pretrain, common, zs_sbir

GALLERY_FILE = "gallery.npz"
PRETRAINED_STEP = 0  # cache key of methods that train nothing
STROKE_SUFFIXES = (".ndjson", ".json")


class SearchError(Exception):
  """A bad workdir, method, checkpoint or sketch file; the message names it."""


# ------------------------------------------------------------------ workdir
def load_config(workdir: str) -> ml_collections.ConfigDict:
  path = os.path.join(workdir, "config.json")
  try:
    with open(path) as f:
      config = ml_collections.ConfigDict(json.load(f))
  except FileNotFoundError:
    raise SearchError(f"{path} not found: is {workdir!r} the workdir of a `python -m sgvu.main` run?") from None
  except ValueError as e:
    raise SearchError(f"{path}: invalid JSON ({e})") from None
  if config.get("task") != "zs_sbir":
    raise SearchError(f"{path}: task={config.get('task')!r}; search needs a 'zs_sbir' workdir")
  return config


def resolve_method(config: ml_collections.ConfigDict, name: str | None) -> tuple[str, zs_sbir.Method]:
  name = name or config.grid_method
  if name not in config.methods:
    raise SearchError(f"--method {name!r} was not run in this workdir (config.methods: {list(config.methods)})")
  if config.level not in zs_sbir.METHODS:
    raise SearchError(f"config.level={config.level!r}; valid: {sorted(zs_sbir.METHODS)}")
  table = zs_sbir.METHODS[config.level]
  if name not in table:
    raise SearchError(f"method {name!r} is not a known ZS-SBIR method; valid: {sorted(table)}")
  return name, table[name]


def clip_spec(config: ml_collections.ConfigDict) -> str:
  """model.clip_init, or the cached SynthSketch CLIP the run used (never trains a new one)."""
  if config.model.clip_init:
    return config.model.clip_init
  directory = clip_pretrain.cache_directory(config.pretrain)
  if not os.path.exists(os.path.join(directory, clip_pretrain.DONE_FILE)):
    raise SearchError(f"the pretrained SynthSketch CLIP of this workdir is not in the cache ({directory}); "
                      "set SGVU_CACHE (or config.pretrain.cache_dir) as it was for training")
  return os.path.join(directory, "clip")


def make_task(config, method: zs_sbir.Method) -> zs_sbir.ZSSBIRTask:
  clip_cfg, clip_params = clip_io.load_clip(clip_spec(config))
  data = ml_collections.ConfigDict(config.data.to_dict())
  data.materialize = False  # only the test photos are needed, and only once
  source = common.make_source(data, **({"protocol": "zero_shot"} if data.dataset == "synth" else {}))
  # The text side only enters the training loss: placeholders keep the task's signature.
  num_seen = len(source.split("train").categories)
  class_text = np.zeros((num_seen, clip_cfg.embed_dim), np.float32)
  return zs_sbir.ZSSBIRTask(config, method, clip_cfg, clip_params, source, class_text, logit_scale=1.0)


def restore_params(task: zs_sbir.ZSSBIRTask, config, method: zs_sbir.Method, method_dir: str) -> tuple[Any, int]:
  """(host params, checkpoint step) of the method's latest checkpoint."""
  if not method.trains:
    return train.unflatten(task.pretrained()), PRETRAINED_STEP
  directory = os.path.join(method_dir, "checkpoints")
  if not os.path.isdir(directory):
    raise SearchError(f"{directory}: no checkpoints (has this method been trained in this workdir?)")
  setup = train.build(task, zs_sbir.method_train_config(config, method))
  checkpointer = ckpt_lib.Checkpointer(method_dir, every=0)
  try:
    step = checkpointer.latest_step()
    if step is None:
      raise SearchError(f"{directory}: no finished checkpoint")
    abstract = ckpt_lib.abstract_with_shardings(setup.abstract_state, setup.state_shardings)
    try:
      state = checkpointer.restore(step, abstract, None)
    except Exception as e:  # orbax raises many types for a tree that does not fit
      raise SearchError(f"{directory}/{step}: does not fit the model of config.json ({e})") from e
  finally:
    checkpointer.close()
  params = train.merge_params(state.params, state.frozen)
  return jax.tree.map(np.asarray, params), step


# ------------------------------------------------------------------ gallery
def _photo_keys(task, index: np.ndarray) -> np.ndarray:
  photos = task.source.split("test").photos
  return np.asarray([photos[i].key for i in index], dtype=str)


def gallery_embeddings(task, encode, step: int, method_dir: str, batch_size: int
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(embeds [G, E], labels [G], photo index [G]) of the test photos; cached per checkpoint step."""
  path = os.path.join(method_dir, GALLERY_FILE)
  if os.path.exists(path):
    try:
      with np.load(path) as z:
        cached = {k: z[k] for k in ("embeds", "labels", "index", "keys", "step", "num_photos")}
      # A new checkpoint or a changed copy of the dataset invalidates the cache.
      same_photos = (int(cached["num_photos"]) == len(task.source.split("test").photos) and
                     np.array_equal(cached["keys"], _photo_keys(task, cached["index"])))
      if int(cached["step"]) == step and same_photos:
        logging.info("gallery: reusing %s (step %d, %d photos)", path, step, len(cached["index"]))
        return cached["embeds"], cached["labels"], cached["index"]
      logging.info("gallery: %s is stale (step %d, now %d; same photos: %s); embedding again", path,
                   int(cached["step"]), step, same_photos)
    except (OSError, ValueError, KeyError, IndexError) as e:
      logging.warning("gallery: ignoring unreadable cache %s (%s)", path, e)
  embeds, labels, index = common.embed_split(encode, task.source, "test", "photo", image_size=task.image_size,
                                             batch_size=batch_size, strict=task.config.data.strict,
                                             desc="gallery")
  os.makedirs(method_dir, exist_ok=True)
  tmp = path + ".tmp.npz"
  np.savez(tmp, embeds=embeds, labels=labels, index=index, keys=_photo_keys(task, index), step=step,
           num_photos=len(task.source.split("test").photos))
  os.replace(tmp, path)  # never a half-written cache
  return embeds, labels, index


# ------------------------------------------------------------------ queries
def _strokes_from_drawing(drawing, key: str) -> list[np.ndarray]:
  """QuickDraw [[xs, ys(, ts)], ...] -> strokes on the 256 canvas (raw, unscaled drawings are fitted)."""
  if not isinstance(drawing, list) or not drawing:
    raise SearchError(f"{key}: 'drawing' must be a non-empty list of [xs, ys] strokes")
  out = []
  for i, stroke in enumerate(drawing):
    if not isinstance(stroke, list) or len(stroke) < 2:
      raise SearchError(f"{key}: stroke {i} must be [xs, ys], got {str(stroke)[:60]}")
    try:
      xs, ys = np.asarray(stroke[0], np.float32), np.asarray(stroke[1], np.float32)
    except (TypeError, ValueError) as e:
      raise SearchError(f"{key}: stroke {i} is not numeric ({e})") from None
    if xs.ndim != 1 or xs.shape != ys.shape:
      raise SearchError(f"{key}: stroke {i}: xs {xs.shape} and ys {ys.shape} differ")
    out.append(np.stack([xs, ys], axis=1))
  points = np.concatenate(out)
  if not np.all(np.isfinite(points)):
    raise SearchError(f"{key}: coordinates contain NaN or inf")
  if len(points) and (points.min() < 0 or points.max() > strokes_lib.CANVAS - 1):
    out = strokes_lib.normalize_to_canvas(out)  # raw QuickDraw: screen pixels, not 0..255
  try:
    return strokes_lib.validate_strokes(out, key)
  except DataError as e:
    raise SearchError(str(e)) from None


def _read_stroke_file(path: str, line: int) -> tuple[Any, str]:
  try:
    with open(path, encoding="utf-8") as f:
      lines = f.readlines()
  except UnicodeDecodeError as e:
    raise SearchError(f"{path}: not a UTF-8 text file ({e.reason})") from None
  if path.lower().endswith(".ndjson"):
    rows = [(n, l) for n, l in enumerate(lines, 1) if l.strip()]
    if not 0 <= line < len(rows):
      raise SearchError(f"{path}: --line {line} but the file has {len(rows)} non-empty lines (0-based)")
    number, text = rows[line]
    key = f"{path}:{number}"
  else:
    text, key = "".join(lines), path
  try:
    record = json.loads(text)
  except ValueError as e:
    raise SearchError(f"{key}: invalid JSON ({e})") from None
  if isinstance(record, dict):
    if "drawing" not in record:
      raise SearchError(f"{key}: no 'drawing' key (keys: {sorted(record)[:8]}); expected a QuickDraw record")
    record = record["drawing"]
  return record, key


def read_sketch(path: str, line: int = 0) -> Sketch:
  """The sketch file as strokes (.ndjson / .json) or a grey raster (pictures); raises naming the file."""
  if not os.path.isfile(path):
    raise SearchError(f"{path}: sketch file not found")
  if path.lower().endswith(STROKE_SUFFIXES):
    drawing, key = _read_stroke_file(path, line)
    return Sketch(strokes=_strokes_from_drawing(drawing, key))
  try:
    return Sketch(raster=images.check_ink(images.load_grey(path), path))
  except DataError as e:
    raise SearchError(str(e)) from None


def render_query(sketch: Sketch, size: int) -> np.ndarray:
  """uint8 [size, size, 3]: rendered or resized as the training pipeline does."""
  if sketch.strokes is not None:
    grey = strokes_lib.render_strokes(sketch.strokes, size)
  else:
    grey = images.sketch_to_square(sketch.raster, size)
  return images.grey_to_rgb(grey)


def load_query(path: str, size: int, line: int = 0) -> np.ndarray:
  return render_query(read_sketch(path, line), size)


# ------------------------------------------------------------------ search
class Searcher:
  """A workdir's trained model and its test gallery, ready for sketch queries.

  The gallery is embedded (or read from W/<method>/gallery.npz) on first use.
  """

  def __init__(self, workdir: str, method: str | None = None, batch_size: int | None = None):
    self.config = load_config(workdir)
    self.method, m = resolve_method(self.config, method)
    self.method_dir = os.path.join(workdir, self.method)
    self.batch_size = batch_size or int(self.config.eval_batch_size)
    self.task = make_task(self.config, m)
    self.image_size = self.task.image_size
    self.split = self.task.source.split("test")
    params, self.step = restore_params(self.task, self.config, m, self.method_dir)
    self.params = jax.device_put(params)
    self._encode = {kind: jax.jit(lambda p, im, kind=kind: self.task.encode(p, im, kind))
                    for kind in ("sketch", "photo")}
    self._gallery = None

  @property
  def gallery(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(embeds [G, E], labels [G], index into the test split's photos [G])."""
    if self._gallery is None:
      self._gallery = gallery_embeddings(self.task, lambda im: self._encode["photo"](self.params, im), self.step,
                                         self.method_dir, self.batch_size)
    return self._gallery

  def check_category(self, category: str | None) -> None:
    if category is not None and category not in self.split.categories:
      raise SearchError(f"--category {category!r} is not a class of the gallery; valid: {list(self.split.categories)}")

  def embed_sketches(self, queries: np.ndarray) -> np.ndarray:
    """uint8 [N, S, S, 3] (from `render_query`) -> [N, E]."""
    queries = np.asarray(queries, np.uint8)
    if not len(queries):
      return np.zeros((0, self.task.clip_cfg.embed_dim), np.float32)
    out = []
    for start in range(0, len(queries), self.batch_size):
      chunk = queries[start:start + self.batch_size]
      # Padded to a power of two: a session of queries compiles a few shapes, not one per count.
      size = min(self.batch_size, 1 << (len(chunk) - 1).bit_length())
      padded = np.concatenate([chunk, np.zeros((size - len(chunk),) + chunk.shape[1:], np.uint8)])
      out.append(np.asarray(self._encode["sketch"](self.params, padded))[:len(chunk)])
    return np.concatenate(out)

  def search(self, queries: np.ndarray, top: int = 10) -> list[list[dict]]:
    """Ranked hits per query: [{'rank', 'score' (cosine), 'category', 'photo' (key / file), 'gallery_row'}]."""
    if top < 1:
      raise SearchError(f"--top must be >= 1, got {top}")
    embeds, labels, index = self.gallery
    idx, scores = metrics.topk(self.embed_sketches(queries), embeds, top)
    cats = self.task.source.categories
    return [[{"rank": r + 1, "score": float(s), "category": cats[int(labels[j])],
              "photo": self.split.photos[int(index[j])].key, "gallery_row": int(j)}
             for r, (j, s) in enumerate(zip(row, row_scores))] for row, row_scores in zip(idx, scores)]

  def draw(self, queries: np.ndarray, results: list[list[dict]], out: str, category: str | None = None) -> None:
    """The retrieval grid; frames green/red by `category` when given, else all green."""
    self.check_category(category)
    index = self.gallery[2]
    hits = [[pipeline.load_photo(self.task.source, self.split.photos[int(index[h["gallery_row"]])], self.image_size)
             for h in row] for row in results]
    correct = [[category is None or h["category"] == category for h in row] for row in results]
    title = (f"{self.config.name}: {self.method} (step {self.step}), top-{len(results[0])} of "
             f"{len(index)} unseen-class photos")
    viz.retrieval_grid(list(queries), hits, correct, out, title=title)


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m sgvu.tools.search", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", required=True, help="workdir of a zs_sbir run (holds config.json)")
  parser.add_argument("--sketch", required=True, nargs="+", help="PNG/JPEG, QuickDraw .ndjson or .json strokes")
  parser.add_argument("--top", type=int, default=10)
  parser.add_argument("--out", default=None, help="retrieval grid PNG (optional)")
  parser.add_argument("--method", default=None, help="a row of config.methods (default: config.grid_method)")
  parser.add_argument("--category", default=None, help="frame hits of this class green, the rest red")
  parser.add_argument("--line", type=int, default=0, help="which non-empty line of an .ndjson file (0-based)")
  parser.add_argument("--batch_size", type=int, default=None, help="gallery batch (default eval_batch_size)")
  args = parser.parse_args(argv)
  try:
    if args.top < 1:
      raise SearchError(f"--top must be >= 1, got {args.top}")
    sketches = [read_sketch(p, args.line) for p in args.sketch]  # bad files fail before any loading
    searcher = Searcher(args.workdir, args.method, args.batch_size)
    searcher.check_category(args.category)
    queries = np.stack([render_query(s, searcher.image_size) for s in sketches])
    results = searcher.search(queries, args.top)
    if args.out:
      searcher.draw(queries, results, args.out, args.category)
  except (SearchError, DataError, FileNotFoundError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  for path, hits in zip(args.sketch, results):
    print(f"{path}:")
    for h in hits:
      print(f"  {h['rank']:3d}  {h['score']:+.4f}  {h['category']:<20s} {h['photo']}")
  if args.out:
    print(f"wrote {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
