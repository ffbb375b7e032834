"""grain input pipelines: sketch-photo triplets, photo-caption pairs, ordered eval batches.

Training loaders are `MapDataset.source(...).shuffle(seed).repeat()`, sharded
by process, mapped with a per-element RNG (so a restored iterator yields exactly
the same batches), decoded in grain worker processes (`mp_prefetch`), then
filtered and batched in the main process. A sample that fails to load becomes
an in-band "skipped" marker in the worker; the main process counts and logs it
(`skipped_counts()`), or raises `DataError` when `strict=True`. The returned
iterator is a `grain.DatasetIterator`: `get_state()` / `set_state()` and
`grain.checkpoint.CheckpointSave` work on it.
"""

from __future__ import annotations

import collections
import concurrent.futures
import multiprocessing
import time
from typing import Any, Callable, Iterator, Sequence

import grain
import numpy as np
from absl import logging

from sgvu.data import images, sketch_files
from sgvu.data.base import BadSample, DataError, PhotoItem, SketchItem, Source, Split

# Completion levels for partial-sketch training: 5%, 10%, ..., 100%.
FRACTIONS = tuple(round(0.05 * k, 2) for k in range(1, 21))
PAIRINGS = ("category", "instance")
_SKIP = "_skipped"  # in-band marker key of a sample that could not be loaded
MAX_CONSECUTIVE_SKIPS = 1000


# ----------------------------------------------------------------------------
# Per-sample decoding (runs in worker processes: numpy + PIL only).


def render_sketch(source: Source, item: SketchItem, size: int, fraction: float = 1.0) -> np.ndarray:
  """uint8 [size, size, 3]: strokes rendered at `fraction`, or a raster padded and resized."""
  if fraction == 1.0:
    cached = _rendered(source, "sketch", item.key, size)
    if cached is not None:
      return cached
  sketch = source.load_sketch(item)
  if sketch.raster is not None and sketch.strokes is None and fraction != 1.0:
    raise DataError(f"{source.name}: raster sketches ({item.key}) cannot be rendered partially")
  return sketch_files.render(sketch, size, fraction=fraction, key=item.key)


def load_photo(source: Source, item: PhotoItem, size: int) -> np.ndarray:
  """uint8 [size, size, 3]: decoded, padded to square with white, resized (bicubic)."""
  cached = _rendered(source, "photo", item.key, size)
  if cached is not None:
    return cached
  img = np.asarray(source.load_photo(item, size=size))
  if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
    raise BadSample(item.key, f"photo must be uint8 [H, W, 3], got {img.dtype} {img.shape}")
  return images.to_square(img, size)


# ----------------------------------------------------------------------------
# Materialisation: render a finite source once, then every epoch is indexing.

_RENDERED_ATTR = "_sgvu_rendered"


def _rendered(source: Source, kind: str, key: str, size: int) -> np.ndarray | None:
  table = getattr(source, _RENDERED_ATTR, None)
  if table is None or table["size"] != size:
    return None
  return table[kind].get(key)


def _render_chunk(args) -> list[tuple[str, str, np.ndarray | None, str]]:
  source, size, jobs = args
  out = []
  for kind, item in jobs:
    try:
      img = load_photo(source, item, size) if kind == "photo" else render_sketch(source, item, size)
      out.append((kind, item.key, img, ""))
    except BadSample as e:
      out.append((kind, item.key, None, e.reason))
  return out


def materialize(source: Source, size: int, splits: Sequence[str] = ("train", "test"), *,
                kinds: Sequence[str] = ("photo", "sketch"), num_workers: int = 2, chunk: int = 256) -> Source:
  """Renders every photo and complete sketch of `splits` at `size` into memory, once.

  For procedural or small datasets (SynthSketch, fixtures) whose rendering
  would otherwise be repeated every epoch. Partial sketches (fraction < 1)
  and other sizes still render on demand. Items that fail are logged and left
  to fail again (and be skipped) when loaded. Returns `source`, modified.
  """
  jobs = []
  for name in splits:
    sp = source.split(name)
    jobs += [("photo", p) for p in sp.photos if "photo" in kinds]
    jobs += [("sketch", s) for s in sp.sketches if "sketch" in kinds]
  chunks = [(source, size, jobs[i:i + chunk]) for i in range(0, len(jobs), chunk)]
  table = {"size": size, "photo": {}, "sketch": {}}
  t0, done, failed = time.perf_counter(), 0, 0
  if num_workers > 0 and len(chunks) > 1:
    # spawn, not fork: the parent may already run JAX threads.
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(num_workers, mp_context=ctx) as pool:
      results = pool.map(_render_chunk, chunks)
      for part in results:
        done, failed = _collect(part, table, done, failed, len(jobs), t0, source.name)
  else:
    for c in chunks:
      done, failed = _collect(_render_chunk(c), table, done, failed, len(jobs), t0, source.name)
  setattr(source, _RENDERED_ATTR, table)
  logging.info("%s: materialised %d photos + %d sketches at %dpx in %.1fs (%d failed)", source.name,
               len(table["photo"]), len(table["sketch"]), size, time.perf_counter() - t0, failed)
  return source


def _collect(part, table, done, failed, total, t0, name):
  for kind, key, img, reason in part:
    if img is None:
      failed += 1
      logging.warning("%s: %s fails to render: %s", name, key, reason)
    else:
      table[kind][key] = img
  done += len(part)
  rate = done / max(time.perf_counter() - t0, 1e-9)
  logging.info("%s: rendering %d/%d (%.0f/s, ETA %.0fs)", name, done, total, rate, (total - done) / rate)
  return done, failed


def skip_marker(e: BadSample) -> dict[str, Any]:
  return {_SKIP: e.key, "reason": e.reason}


class _PairElement:
  """sketch position -> {sketch, photo, neg_photo, label, neg_label, photo_index[, fraction]}."""

  def __init__(self, source: Source, split: Split, image_size: int, pairing: str,
               sketch_fraction: float | str | None):
    self.source, self.split, self.size = source, split, image_size
    self.pairing, self.sketch_fraction = pairing, sketch_fraction
    by_label = collections.defaultdict(list)
    for i, p in enumerate(split.photos):
      by_label[p.label].append(i)
    self.by_label = {k: np.asarray(v, np.int64) for k, v in by_label.items()}
    self.labels = np.asarray(sorted(self.by_label), np.int64)

  def _negative(self, label: int, positive: int, rng: np.random.Generator) -> int:
    if self.pairing == "instance":
      same = self.by_label[label]
      if len(same) > 1:  # another instance of the same category
        j = int(rng.integers(len(same) - 1))
        return int(same[j] if same[j] != positive else same[-1])
      others = np.flatnonzero(np.arange(len(self.split.photos)) != positive)
      return int(others[rng.integers(len(others))])
    other = self.labels[self.labels != label]
    neg_label = int(other[rng.integers(len(other))])
    pool = self.by_label[neg_label]
    return int(pool[rng.integers(len(pool))])

  def __call__(self, sketch_index: int, rng: np.random.Generator) -> dict[str, Any]:
    item = self.split.sketches[int(sketch_index)]
    if self.pairing == "instance":
      positive = int(item.photo)
    else:
      pool = self.by_label[item.label]
      positive = int(pool[rng.integers(len(pool))])
    negative = self._negative(item.label, positive, rng)
    if self.sketch_fraction == "random":
      fraction = FRACTIONS[int(rng.integers(len(FRACTIONS)))]
    else:
      fraction = 1.0 if self.sketch_fraction is None else float(self.sketch_fraction)
    try:
      out = {
          "sketch": render_sketch(self.source, item, self.size, fraction),
          "photo": load_photo(self.source, self.split.photos[positive], self.size),
          "neg_photo": load_photo(self.source, self.split.photos[negative], self.size),
          "label": np.int32(item.label),
          "neg_label": np.int32(self.split.photos[negative].label),
          "photo_index": np.int32(positive),
          "sketch_index": np.int32(sketch_index),
      }
    except BadSample as e:
      return skip_marker(e)
    if self.sketch_fraction is not None:
      out["fraction"] = np.float32(fraction)
    return out


class _CaptionElement:
  """photo position -> {photo, caption, label}."""

  def __init__(self, source: Source, split: Split, image_size: int, caption_keep: float = 1.0):
    self.source, self.split, self.size, self.keep = source, split, image_size, caption_keep

  def __call__(self, photo_index: int, rng: np.random.Generator) -> dict[str, Any]:
    item = self.split.photos[int(photo_index)]
    try:
      caption = self.source.caption(item) if self.keep >= 1.0 else self.source.caption(item, rng=rng,
                                                                                        keep=self.keep)
      if not caption:
        raise BadSample(item.key, "photo has no caption")
      return {"photo": load_photo(self.source, item, self.size), "caption": str(caption),
              "label": np.int32(item.label)}
    except BadSample as e:
      return skip_marker(e)


# ----------------------------------------------------------------------------
# Skip accounting (main process) and the checkpointable iterator.


class SkipCounter:
  """Filter predicate after the workers: counts and logs skipped samples by file."""

  def __init__(self, dataset: str, strict: bool):
    self.dataset, self.strict = dataset, strict
    self.counts: collections.Counter[str] = collections.Counter()
    self.reasons: dict[str, str] = {}
    self._consecutive = 0

  def __call__(self, element: dict[str, Any]) -> bool:
    if _SKIP not in element:
      self._consecutive = 0
      return True
    key, reason = element[_SKIP], element["reason"]
    if self.strict:
      raise DataError(f"{self.dataset}: {key}: {reason} (strict=True)")
    if key not in self.counts:
      logging.warning("%s: skipping %s: %s", self.dataset, key, reason)
    self.counts[key] += 1
    self.reasons[key] = reason
    self._consecutive += 1
    if self._consecutive >= MAX_CONSECUTIVE_SKIPS:
      raise DataError(f"{self.dataset}: {self._consecutive} samples in a row failed to load "
                      f"(last: {key}: {reason}); is the dataset copy broken?")
    return False


class PipelineIterator(grain.DatasetIterator):
  """The loader's iterator: batches of numpy arrays, checkpointable, with skip counts."""

  def __init__(self, parent: grain.DatasetIterator, counter: SkipCounter):
    super().__init__(parent)
    self._counter = counter

  def __next__(self) -> dict[str, np.ndarray]:
    return next(self._parent)

  def get_state(self) -> dict[str, Any]:
    return self._parent.get_state()

  def set_state(self, state: dict[str, Any]) -> None:
    self._parent.set_state(state)

  def skipped_counts(self) -> dict[str, int]:
    """{file or key: times skipped} of the samples dropped so far by this process."""
    return dict(self._counter.counts)

  def log_skipped(self) -> None:
    total = sum(self._counter.counts.values())
    logging.info("%s: %d samples skipped (%d distinct files)", self._counter.dataset, total,
                 len(self._counter.counts))


def _process_shard(process_index: int | None, process_count: int | None) -> tuple[int, int]:
  if process_index is None or process_count is None:
    import jax  # pylint: disable=g-import-not-at-top  # only the main process needs it
    process_index, process_count = jax.process_index(), jax.process_count()
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index {process_index} not in [0, {process_count})")
  return process_index, process_count


def build_loader(dataset: str, indices: Sequence[int], element_fn: Callable, *, batch_size: int,
           seed: int, num_workers: int, num_threads: int, num_epochs: int | None,
           strict: bool, process_index: int | None, process_count: int | None,
           finalize: Callable | None = None) -> PipelineIterator:
  pi, pc = _process_shard(process_index, process_count)
  if batch_size % pc:
    raise ValueError(f"batch_size {batch_size} is not divisible by process_count {pc}")
  local_batch = batch_size // pc
  if local_batch < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  if not indices:
    raise DataError(f"{dataset}: nothing to iterate over (empty split after filtering)")
  ds = grain.MapDataset.source(list(indices)).shuffle(seed=seed).repeat(num_epochs)
  ds = ds[pi::pc]
  # Seeded by (seed, process, element index): a restored iterator repeats its batches.
  ds = ds.random_map(element_fn, seed=(seed * 1_000_003 + pi) % 2**32)
  it_ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=num_threads,
                                               prefetch_buffer_size=max(4 * local_batch, 16)))
  if num_workers > 0:
    it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers,
                                                           per_worker_buffer_size=2))
  counter = SkipCounter(dataset, strict)
  it_ds = it_ds.filter(counter).batch(local_batch, drop_remainder=True)
  if finalize is not None:
    it_ds = it_ds.map(finalize)
  return PipelineIterator(iter(it_ds), counter)


def pair_loader(source: Source, split: str = "train", *, batch_size: int, image_size: int,
                pairing: str = "category", seed: int = 0, num_workers: int = 0,
                num_threads: int = 2, strict: bool = False,
                sketch_fraction: float | str | None = None, num_epochs: int | None = None,
                process_index: int | None = None,
                process_count: int | None = None) -> PipelineIterator:
  """(sketch, positive photo, negative photo) batches for triplet / classification training.

  Yields {sketch, photo, neg_photo: uint8 [B,S,S,3]; label, neg_label, photo_index,
  sketch_index: int32 [B] (indices into the split's photos / sketches); fraction:
  float32 [B] when sketch_fraction is set}.

  'category': positive = random photo of the sketch's category, negative = random
  photo of another category. 'instance': positive = the sketch's own photo,
  negative = another photo of the same category. Per-process batch =
  batch_size // process_count; the last incomplete batch of a finite run is dropped.
  """
  if pairing not in PAIRINGS:
    raise ValueError(f"unknown pairing {pairing!r}; valid: {list(PAIRINGS)}")
  if not (sketch_fraction is None or sketch_fraction == "random" or
          (isinstance(sketch_fraction, float) and 0.0 < sketch_fraction <= 1.0)):
    raise ValueError(f"sketch_fraction must be None, 'random' or a float in (0, 1], "
                     f"got {sketch_fraction!r}")
  sp = source.split(split)
  photo_labels = {p.label for p in sp.photos}
  if pairing == "instance":
    keep = [i for i, s in enumerate(sp.sketches) if s.photo is not None]
    if len(sp.photos) < 2:
      raise DataError(f"{source.name}/{split}: instance pairing needs >= 2 photos, "
                      f"has {len(sp.photos)}")
    what = "no paired photo"
  else:
    if len(photo_labels) < 2:
      raise DataError(f"{source.name}/{split}: category pairing needs photos of >= 2 "
                      f"categories, has {len(photo_labels)}")
    keep = [i for i, s in enumerate(sp.sketches) if s.label in photo_labels]
    what = "no photo of their category"
  if len(keep) < len(sp.sketches):
    logging.warning("%s/%s: %d of %d sketches have %s; they are left out", source.name,
                    split, len(sp.sketches) - len(keep), len(sp.sketches), what)
  if not keep:
    raise DataError(f"{source.name}/{split}: no sketch can be paired ({what})")
  if sketch_fraction is not None and sketch_fraction != 1.0:
    first = source.load_sketch(sp.sketches[keep[0]])
    if first.strokes is None:
      raise DataError(f"{source.name}: sketch_fraction={sketch_fraction!r} needs vector "
                      "sketches; this dataset stores rasters")
  element = _PairElement(source, sp, image_size, pairing, sketch_fraction)
  return build_loader(source.name, keep, element, batch_size=batch_size, seed=seed,
                num_workers=num_workers, num_threads=num_threads, num_epochs=num_epochs,
                strict=strict, process_index=process_index, process_count=process_count)


class _Tokenize:
  def __init__(self, tokenize: Callable[[list[str]], np.ndarray]):
    self.tokenize = tokenize

  def __call__(self, batch: dict[str, Any]) -> dict[str, np.ndarray]:
    captions = [str(c) for c in batch.pop("caption")]
    batch["tokens"] = np.asarray(self.tokenize(captions), dtype=np.int32)
    return batch


def photo_caption_loader(source: Source, split: str = "train", *, batch_size: int,
                         image_size: int, tokenize: Callable[[list[str]], np.ndarray],
                         seed: int = 0, num_workers: int = 0, num_threads: int = 2,
                         strict: bool = False, num_epochs: int | None = None,
                         process_index: int | None = None, process_count: int | None = None,
                         caption_keep: float = 1.0) -> PipelineIterator:
  """{photo uint8 [B,S,S,3], tokens int32 [B,L], label int32 [B]} for CLIP pretraining.

  caption_keep < 1: each attribute phrase of a caption is kept with that probability (seeded per
  element; sources without attributes give their full caption)."""
  sp = source.split(split)
  if not sp.photos:
    raise DataError(f"{source.name}/{split}: no photos")
  if source.caption(sp.photos[0]) is None:
    raise DataError(f"{source.name} has no captions; photo_caption_loader needs a source "
                    "with captions (e.g. synth)")
  element = _CaptionElement(source, sp, image_size, caption_keep)
  return build_loader(source.name, range(len(sp.photos)), element, batch_size=batch_size, seed=seed,
                num_workers=num_workers, num_threads=num_threads, num_epochs=num_epochs,
                strict=strict, process_index=process_index, process_count=process_count,
                finalize=_Tokenize(tokenize))


def eval_batches(source: Source, split: str, kind: str = "photo", *, image_size: int,
                 batch_size: int, fraction: float = 1.0, strict: bool = False,
                 skipped: list[tuple[str, str]] | None = None
                 ) -> Iterator[dict[str, np.ndarray]]:
  """The whole split in order: {images uint8 [b,S,S,3], labels int32 [b], index int32 [b]}.

  Items that fail to load are left out (their `index` is absent), logged and
  appended to `skipped` if given; `strict=True` raises DataError instead.
  """
  if kind not in ("photo", "sketch"):
    raise ValueError(f"unknown kind {kind!r}; valid: ['photo', 'sketch']")
  if batch_size < 1:
    raise ValueError(f"batch_size must be >= 1, got {batch_size}")
  sp = source.split(split)
  items = sp.photos if kind == "photo" else sp.sketches
  buf_img, buf_lab, buf_idx = [], [], []
  for i, item in enumerate(items):
    try:
      if kind == "photo":
        img = load_photo(source, item, image_size)
      else:
        img = render_sketch(source, item, image_size, fraction)
    except BadSample as e:
      if strict:
        raise DataError(f"{source.name}: {e.key}: {e.reason} (strict=True)") from None
      logging.warning("%s: skipping %s: %s", source.name, e.key, e.reason)
      if skipped is not None:
        skipped.append((e.key, e.reason))
      continue
    buf_img.append(img)
    buf_lab.append(item.label)
    buf_idx.append(i)
    if len(buf_img) == batch_size:
      yield _eval_batch(buf_img, buf_lab, buf_idx)
      buf_img, buf_lab, buf_idx = [], [], []
  if buf_img:
    yield _eval_batch(buf_img, buf_lab, buf_idx)


def _eval_batch(imgs, labels, index) -> dict[str, np.ndarray]:
  return {"images": np.stack(imgs), "labels": np.asarray(labels, np.int32),
          "index": np.asarray(index, np.int32)}
