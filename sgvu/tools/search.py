"""Sketch in, photos out: searches the test gallery of a trained workdir.

  python -m sgvu.tools.search --workdir W --sketch my.png --top 10 --out hits.png
  python -m sgvu.tools.search --workdir W --sketch my.ndjson --progressive --out progressive.png

W is the workdir of `python -m sgvu.main` (W/config.json says the task):
- zs_sbir (category-level): W/<method>/checkpoints holds the trained
  parameters (`--method`, default the config's `grid_method`; a method that
  trains nothing, like 'frozen', uses the pretrained CLIP). The gallery is
  the test split's photos (the unseen classes).
- on_the_fly / fg_sbir (instance-level): the stage-1 FG-SBIR model W/B1 and,
  for a head or policy row of on_the_fly (`--method`, e.g. 'ppo', 'B3';
  default 'ppo' where it was trained, else 'B1'), that row's head on B1's
  sketch features. The gallery is the test photos through the stage-1 photo
  branch. `--target PHOTO_KEY` frames the true photo green.
The gallery's embeddings are cached in W/<model>/gallery.npz, keyed by the
checkpoint step.

A sketch is a picture (PNG/JPEG: white paper, dark strokes), a QuickDraw
.ndjson file (`--line N` picks the line, default the first) or a .json file
holding a QuickDraw record ({"drawing": [[xs, ys], ...]}) or just the list of
[xs, ys] strokes. Several sketches give one row each. The grid frames a hit
green/red with --category (is it that class?) or --target (is it that
photo?); otherwise grey.

--progressive (stroke files only: a picture has no stroke order) queries
with the sketch after 1, 2, ..., N strokes (at most --rows counts, evenly
spread) and draws one row per count: how the top-k (default 5) changes as
the strokes arrive.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sgvu import checkpoint as ckpt_lib
from sgvu import clip_io, metrics, train, viz
from sgvu.data import DataError, Sketch, images, pipeline, strokes as strokes_lib
from sgvu.tasks import clip_pretrain, common, fg_sbir, on_the_fly, zs_sbir

GALLERY_FILE = "gallery.npz"
PRETRAINED_STEP = 0  # cache key of methods that train nothing
STROKE_SUFFIXES = (".ndjson", ".json")
TASKS = ("zs_sbir", "on_the_fly", "fg_sbir")
INSTANCE_TASKS = ("on_the_fly", "fg_sbir")


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
  if config.get("task") not in TASKS:
    raise SearchError(f"{path}: task={config.get('task')!r}; search needs the workdir of one of {list(TASKS)}")
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
  directory = clip_pretrain.cache_directory(config.clip_train)
  if not os.path.exists(os.path.join(directory, clip_pretrain.DONE_FILE)):
    raise SearchError(f"the pretrained SynthSketch CLIP of this workdir is not in the cache ({directory}); "
                      "set SGVU_CACHE (or config.clip_train.cache_dir) as it was for training")
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


def restore_checkpoint(task, train_config: ml_collections.ConfigDict, method_dir: str) -> tuple[Any, int]:
  """(host params, step) of the latest checkpoint in method_dir of a task trained with train_config."""
  directory = os.path.join(method_dir, "checkpoints")
  if not os.path.isdir(directory):
    raise SearchError(f"{directory}: no checkpoints (has this method been trained in this workdir?)")
  setup = train.build(task, train_config)
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


def restore_params(task: zs_sbir.ZSSBIRTask, config, method: zs_sbir.Method, method_dir: str) -> tuple[Any, int]:
  """(host params, checkpoint step) of the method's latest checkpoint."""
  if not method.trains:
    return train.unflatten(task.pretrained()), PRETRAINED_STEP
  return restore_checkpoint(task, zs_sbir.method_train_config(config, method), method_dir)


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
class _Searcher:
  """A trained model and its test gallery, ready for sketch queries (the shared half).

  Subclasses set config, method, step, task (with .source, .image_size),
  split, image_size, batch_size, embed_dim, `gallery` and `_embed_batch`.
  """
  gallery_name = "test photos"

  @property
  def model_name(self) -> str:
    return f"{self.method} (step {self.step})"

  def _embed_batch(self, images: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    raise NotImplementedError

  def check_category(self, category: str | None) -> None:
    if category is not None and category not in self.split.categories:
      raise SearchError(f"--category {category!r} is not a class of the gallery; valid: {list(self.split.categories)}")

  def target_row(self, key: str) -> int:
    """The gallery row of photo `key` (--target)."""
    index = self.gallery[2]
    keys = [self.split.photos[int(i)].key for i in index]
    if key not in keys:
      raise SearchError(f"--target {key!r} is not a photo of the gallery; valid: {len(keys)} keys such as "
                        f"{keys[:8]}")
    return keys.index(key)

  def embed_sketches(self, queries: np.ndarray, fractions: np.ndarray | None = None) -> np.ndarray:
    """uint8 [N, S, S, 3] (from `render_query`) -> [N, E]; fractions [N]: share of each sketch's points drawn."""
    queries = np.asarray(queries, np.uint8)
    if not len(queries):
      return np.zeros((0, self.embed_dim), np.float32)
    fractions = np.ones(len(queries), np.float32) if fractions is None else np.asarray(fractions, np.float32)
    out = []
    for start in range(0, len(queries), self.batch_size):
      chunk, frac = queries[start:start + self.batch_size], fractions[start:start + self.batch_size]
      # Padded to a power of two: a session of queries compiles a few shapes, not one per count.
      size = min(self.batch_size, 1 << (len(chunk) - 1).bit_length())
      padded = self._embed_batch(common.pad_rows(chunk, size), common.pad_rows(frac, size, value=1.0))
      out.append(np.asarray(padded)[:len(chunk)])
    return np.concatenate(out)

  def search(self, queries: np.ndarray, top: int = 10, fractions: np.ndarray | None = None) -> list[list[dict]]:
    """Ranked hits per query: [{'rank', 'score' (cosine), 'category', 'photo' (key / file), 'gallery_row'}]."""
    if top < 1:
      raise SearchError(f"--top must be >= 1, got {top}")
    embeds, labels, index = self.gallery
    idx, scores = metrics.topk(self.embed_sketches(queries, fractions), embeds, top)
    cats = self.task.source.categories
    return [[{"rank": r + 1, "score": float(s), "category": cats[int(labels[j])],
              "photo": self.split.photos[int(index[j])].key, "gallery_row": int(j)}
             for r, (j, s) in enumerate(zip(row, row_scores))] for row, row_scores in zip(idx, scores)]

  def draw(self, queries: np.ndarray, results: list[list[dict]], out: str, category: str | None = None, *,
           target: str | None = None, labels: Sequence[str] | None = None, title: str = "") -> None:
    """The retrieval grid: frames green/red by `category` or by the `target` photo when given, else grey."""
    self.check_category(category)
    target = None if target is None else self.target_row(target)
    index = self.gallery[2]
    hits = [[pipeline.load_photo(self.task.source, self.split.photos[int(index[h["gallery_row"]])], self.image_size)
             for h in row] for row in results]
    correct = [[h["gallery_row"] == target if target is not None else
                h["category"] == category if category is not None else None for h in row] for row in results]
    title = title or f"top-{len(results[0])}"
    title = f"{self.config.name}: {self.model_name}, {title} of {len(index)} {self.gallery_name}"
    viz.retrieval_grid(list(queries), hits, correct, out, title=title, labels=labels)


class Searcher(_Searcher):
  """A zs_sbir workdir's trained model and its test gallery.

  The gallery is embedded (or read from W/<method>/gallery.npz) on first use.
  """
  gallery_name = "unseen-class photos"

  def __init__(self, workdir: str, method: str | None = None, batch_size: int | None = None):
    self.config = load_config(workdir)
    if self.config.task != "zs_sbir":
      raise SearchError(f"{workdir}: task {self.config.task!r}, not 'zs_sbir' (use open_searcher)")
    self.method, m = resolve_method(self.config, method)
    self.method_dir = os.path.join(workdir, self.method)
    self.batch_size = batch_size or int(self.config.eval_batch_size)
    self.task = make_task(self.config, m)
    self.image_size = self.task.image_size
    self.embed_dim = self.task.clip_cfg.embed_dim
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

  def _embed_batch(self, images, fractions):
    del fractions  # one model for every completion
    return self._encode["sketch"](self.params, images)


def resolve_instance_method(config: ml_collections.ConfigDict, workdir: str, name: str | None
                            ) -> tuple[str, str, on_the_fly.Method | None]:
  """(method, its stage-1 fg_sbir model, the on-the-fly head/policy row or None) of an instance-level workdir."""
  if config.task == "fg_sbir":
    valid = list(config.methods)
    default = "B1" if "B1" in valid else valid[0]
  else:  # on_the_fly: B1 (stage 1) always ran; the rows on top of it
    valid = ["B1"] + [m for m in config.methods if m != "B1"]
    trained = os.path.isdir(os.path.join(workdir, on_the_fly.slug("ppo"), "checkpoints"))
    default = "ppo" if "ppo" in valid and trained else "B1"
  name = name or default
  if name not in valid:
    raise SearchError(f"--method {name!r} was not run in this workdir; valid: {valid}")
  if config.task == "fg_sbir":
    if name not in fg_sbir.METHODS:
      raise SearchError(f"method {name!r} is not a known FG-SBIR method; valid: {sorted(fg_sbir.METHODS)}")
    return name, name, None
  if name not in on_the_fly.METHODS:
    raise SearchError(f"method {name!r} is not a known on-the-fly method; valid: {sorted(on_the_fly.METHODS)}")
  method = on_the_fly.METHODS[name]
  return (name, method.base, None) if method.kind == "base" else (name, "B1", method)


class InstanceSearcher(_Searcher):
  """An on_the_fly / fg_sbir workdir: its stage-1 model, optionally a head or policy row on its sketch features.

  The gallery is the test photos through the stage-1 photo branch (what the
  rows were trained and evaluated against), cached in W/<stage 1>/gallery.npz.
  """

  def __init__(self, workdir: str, method: str | None = None, batch_size: int | None = None):
    self.config = config = load_config(workdir)
    if config.task not in INSTANCE_TASKS:
      raise SearchError(f"{workdir}: task {config.task!r}, not one of {list(INSTANCE_TASKS)} (use open_searcher)")
    self.method, base, self.row = resolve_instance_method(config, workdir, method)
    self.base = base  # the stage-1 model: B1 (or B2 / frozen), whose photo branch embeds the gallery
    self.base_dir = os.path.join(workdir, on_the_fly.slug(base) if config.task == "on_the_fly" else base)
    self.batch_size = batch_size or int(config.eval_batch_size)
    backbone = _instance_backbone(config, base)
    data = ml_collections.ConfigDict(config.data.to_dict())
    data.materialize = False  # only the test photos are needed, and only once
    source = fg_sbir.make_source(ml_collections.ConfigDict({"data": data}), backbone.image_size)
    self.task = fg_sbir.FGSBIRTask(config, fg_sbir.METHODS[base], backbone, source)
    self.image_size = self.task.image_size
    self.split = source.split("test")
    if self.task.method.trains:
      params, self.step = restore_checkpoint(self.task, fg_sbir.method_train_config(config), self.base_dir)
    else:
      params, self.step = train.unflatten(backbone.img_params), PRETRAINED_STEP
    self.params = jax.device_put(params)
    self.embed_dim = config.fg.embed_dim if self.task.model.use_head else backbone.clip_cfg.embed_dim
    self._gallery = None
    if self.row is not None:
      self._init_row(workdir)

  def _init_row(self, workdir: str) -> None:
    """The head / policy of row self.method, trained on the frozen stage-1 features of W/features.npz."""
    path = os.path.join(workdir, "features.npz")
    if not os.path.exists(path):
      raise SearchError(f"{path} not found: the on-the-fly run stopped before its frozen features were written")
    with np.load(path) as z:  # the row's task only needs their shapes and the training gallery
      train_data, test_data = on_the_fly.LevelData.load(z, "train"), on_the_fly.LevelData.load(z, "test")
    cls = on_the_fly.HeadTask if self.row.kind == "head" else on_the_fly.PolicyTask
    self.row_task = cls(self.config, self.row, train_data, test_data, None)
    row_dir = os.path.join(workdir, on_the_fly.slug(self.method))
    params, self.row_step = restore_checkpoint(self.row_task, on_the_fly.method_train_config(self.config, self.row),
                                               row_dir)
    self.row_params = jax.device_put(params)
    self.levels = int(self.config.levels)
    self._row_embed = jax.jit(self.row_task.embed_levels)

  @property
  def model_name(self) -> str:
    stage_one = f"{self.base} (step {self.step})"
    return stage_one if self.row is None else f"{self.method} (step {self.row_step}) on {stage_one}"

  @property
  def gallery(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(embeds [G, E], labels [G], index into the test split's photos [G])."""
    if self._gallery is None:
      encode = self.task.jitted_encoder("photo")
      self._gallery = gallery_embeddings(self.task, lambda im: encode(self.params, im), self.step, self.base_dir,
                                         self.batch_size)
    return self._gallery

  def _embed_batch(self, images, fractions):
    if self.row is None:
      return self.task.jitted_encoder("sketch")(self.params, images)
    features = self.task.jitted_encoder("sketch", features=True)(self.params, images)  # [n, F]
    # A row maps a level's features to an embedding; B4 has a head per level: the nearest completion level's.
    embeds = self._row_embed(self.row_params, jnp.repeat(features[:, None], self.levels, axis=1))  # [n, T, D]
    level = np.clip(np.round(fractions * self.levels).astype(np.int32) - 1, 0, self.levels - 1)
    return np.asarray(embeds)[np.arange(len(level)), level]


def _instance_backbone(config: ml_collections.ConfigDict, base: str) -> fg_sbir.Backbone:
  """fg_sbir.load_backbone without ever pretraining a CLIP: the cached one the run used, or model.clip_init."""
  if not fg_sbir.needs_clip(config, [base]):
    return fg_sbir.Backbone(config.data.image_size)
  clip_cfg, params = clip_io.load_clip(clip_spec(config))
  return fg_sbir.Backbone(clip_cfg.vision.image_size, clip_cfg, train.flatten({"img": params["img"]}))


def open_searcher(workdir: str, method: str | None = None, batch_size: int | None = None) -> _Searcher:
  """The searcher of the workdir's task (zs_sbir: category-level; on_the_fly / fg_sbir: instance-level)."""
  cls = InstanceSearcher if load_config(workdir).task in INSTANCE_TASKS else Searcher
  return cls(workdir, method, batch_size)


def progressive_search(searcher: _Searcher, sketches: Sequence[Sketch], top: int, rows: int
                       ) -> list[tuple[list[int], np.ndarray, list[list[dict]]]]:
  """Per sketch: (stroke counts, partial renderings [R, S, S, 3], ranked hits per count)."""
  parts = [viz.progressive_queries(s.strokes, searcher.image_size, rows) for s in sketches]
  # One search over every partial sketch: one batch shape to compile, not one per sketch.
  results = searcher.search(np.concatenate([p[1] for p in parts]), top, np.concatenate([p[2] for p in parts]))
  out, start = [], 0
  for counts, partial, _ in parts:
    out.append((counts, partial, results[start:start + len(counts)]))
    start += len(counts)
  return out


def _print_hits(hits: list[dict], indent: str) -> None:
  for h in hits:
    print(f"{indent}{h['rank']:3d}  {h['score']:+.4f}  {h['category']:<20s} {h['photo']}")


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m sgvu.tools.search", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", required=True, help=f"workdir of a {'/'.join(TASKS)} run (holds config.json)")
  parser.add_argument("--sketch", required=True, nargs="+", help="PNG/JPEG, QuickDraw .ndjson or .json strokes")
  parser.add_argument("--top", type=int, default=None, help="hits per query (default 10; 5 with --progressive)")
  parser.add_argument("--out", default=None, help="retrieval grid PNG (optional; required with --progressive)")
  parser.add_argument("--method", default=None,
                      help="zs_sbir: a row of config.methods (default config.grid_method); on_the_fly: B1 or a "
                           "trained row (default 'ppo' where trained); fg_sbir: a row (default B1)")
  frame = parser.add_mutually_exclusive_group()
  frame.add_argument("--category", default=None, help="frame hits of this class green, the rest red")
  frame.add_argument("--target", default=None, help="frame this photo (its key) green, the rest red")
  parser.add_argument("--progressive", action="store_true",
                      help="draw how the top-k changes as the strokes arrive (stroke files only)")
  parser.add_argument("--rows", type=int, default=6, help="--progressive: at most this many stroke counts")
  parser.add_argument("--line", type=int, default=0, help="which non-empty line of an .ndjson file (0-based)")
  parser.add_argument("--batch_size", type=int, default=None, help="gallery batch (default eval_batch_size)")
  args = parser.parse_args(argv)
  top = args.top if args.top is not None else 5 if args.progressive else 10
  try:
    if top < 1:
      raise SearchError(f"--top must be >= 1, got {top}")
    if args.progressive and not args.out:
      raise SearchError("--progressive draws a figure: give --out FILE.png")
    if args.rows < 1:
      raise SearchError(f"--rows must be >= 1, got {args.rows}")
    sketches = [read_sketch(p, args.line) for p in args.sketch]  # bad files fail before any loading
    if args.progressive:
      for path, s in zip(args.sketch, sketches):
        if s.strokes is None:
          raise SearchError(f"{path}: a picture has no stroke order; --progressive needs a stroke file "
                            f"({' or '.join(STROKE_SUFFIXES)}, QuickDraw format)")
    searcher = open_searcher(args.workdir, args.method, args.batch_size)
    searcher.check_category(args.category)
    if args.target is not None:
      searcher.target_row(args.target)
    if args.progressive:
      found = progressive_search(searcher, sketches, top, args.rows)
      several = len(found) > 1
      queries = np.concatenate([partial for _, partial, _ in found])
      results = [hits for _, _, rows in found for hits in rows]
      labels = [f"{'#%d ' % (i + 1) if several else ''}{c}/{counts[-1]}"
                for i, (counts, _, _) in enumerate(found) for c in counts]
      searcher.draw(queries, results, args.out, args.category, target=args.target, labels=labels,
                    title=f"top-{top} as the strokes arrive")
    else:
      queries = np.stack([render_query(s, searcher.image_size) for s in sketches])
      results = searcher.search(queries, top)
      if args.out:
        searcher.draw(queries, results, args.out, args.category, target=args.target)
  except (SearchError, DataError, FileNotFoundError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  if args.progressive:
    for path, (counts, _, rows) in zip(args.sketch, found):
      print(f"{path} ({counts[-1]} strokes):")
      for c, hits in zip(counts, rows):
        print(f"  after {c}/{counts[-1]} strokes:")
        _print_hits(hits, "    ")
  else:
    for path, hits in zip(args.sketch, results):
      print(f"{path}:")
      _print_hits(hits, "  ")
  if args.out:
    print(f"wrote {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
