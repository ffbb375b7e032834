"""A `Source` over a TFDS / ArrayRecord copy (built by sgvu.tools.build_tfds); no TensorFlow needed.

    src = open("sketchy", "gs://bucket/tfds")       # or a local folder; reader options as for get_source
    train = src.split("train")                       # the directory reader's Split: same keys, labels, pairing

Opening reads only TFDS's dataset_info and metadata.json (the index); pixels are read on demand
from TFDS's random-access data source (`builder.as_data_source`, ArrayRecord), so the grain
pipelines (sgvu.data.pipeline) index it as they index a folder, sharded by process. A file that
failed to decode at build time stays in the index and raises the same `BadSample(key, reason)` the
directory reader raised, so pipelines skip and count it the same way. The data_dir string is handed
to TFDS / etils unchanged (gs:// works where etils can open it).
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core.dataset_info import DatasetInfoFileError

from sgvu.data import images
from sgvu.data import tfds_format as fmt
from sgvu.data.base import BadSample, DataError, PhotoItem, Sketch, SketchItem, Source, Split


class Shards:
  """TFDS's random-access readers of one copy's splits, opened on first use in each process (it pickles as
  its path: grain / materialize workers get the index, not open file handles)."""

  def __init__(self, path: str, builder=None):
    self.path, self._builder, self._sources, self._lock = path, builder, {}, threading.Lock()

  def __getstate__(self):
    return {"path": self.path}

  def __setstate__(self, state):
    self.__init__(state["path"])

  def data(self, split: str):
    """TFDS's data source of `split` (ArrayRecord, random access)."""
    with self._lock:
      if split not in self._sources:
        if self._builder is None:
          self._builder = tfds.builder_from_directory(self.path)
        self._sources[split] = self._builder.as_data_source(split=split)
      return self._sources[split]

  def record(self, split: str, r: int, key: str, what: str | None = None, fix: str = "rebuild the copy"):
    """Record r of `split`, checked to hold `key` (named as `what` in the error: 'split <split>' unless given)."""
    rec = self.data(split)[r]
    stored = rec["key"].decode() if isinstance(rec["key"], bytes) else str(rec["key"])
    if stored != key:  # the index and the shards disagree: never a silently wrong sample
      raise DataError(f"{self.path}: record {r} of {what or 'split ' + split} holds {stored!r}, the index "
                      f"says {key!r}; {fix}")
    return rec


class TFDSSource(Source):
  """A built copy of one dataset; `open` makes it."""

  def __init__(self, dataset: str, data_dir: str, path: str, meta: dict[str, Any], builder=None):
    self.name = dataset
    self.data_dir, self.path = data_dir, path
    self.root = None  # not a folder copy
    self.manual_dir = meta["manual_dir"]  # what it was built from (the keys are paths there)
    self.options = dict(meta["options"])
    self.categories = tuple(meta["categories"])
    self.split_names = tuple(meta["split_names"])
    for k, v in meta.get("attributes", {}).items():  # e.g. sketchy's `extended`
      setattr(self, k, v)
    self._skipped = tuple((str(k), str(r)) for k, r in meta["skipped_index"])
    bad = {str(k): str(r) for k, r in meta["skipped_load"]}
    self._splits: dict[str, Split] = {}
    self._where: dict[str, dict[str, tuple[str, int, str]]] = {k: {} for k in fmt.KINDS}
    prefix = meta["key_prefix"]
    for split, entry in meta["splits"].items():
      items = {}
      for kind in fmt.KINDS:
        e = entry[kind]
        keys = fmt.unpack_keys(e["keys"], prefix)
        if kind == "photos":
          items[kind] = tuple(PhotoItem(k, int(l)) for k, l in zip(keys, e["labels"]))
        else:
          items[kind] = tuple(SketchItem(k, int(l), None if p < 0 else int(p))
                              for k, l, p in zip(keys, e["labels"], e["photos"]))
        where = self._where[kind]
        for k, r in zip(keys, e["records"]):
          where.setdefault(k, (fmt.split_name(split, kind), int(r), bad.get(k, "")))
      self._splits[split] = Split(split, tuple(entry["categories"]), items["photos"], items["sketches"])
    self._shards = Shards(path, builder)

  def _record(self, kind: str, key: str) -> dict[str, Any]:
    where = self._where[kind].get(key)
    if where is None:
      raise BadSample(key, f"not one of the {kind} of this TFDS copy ({self.path})")
    tfds_split, record, reason = where
    if record < 0:
      raise BadSample(key, reason or "skipped when the TFDS copy was built")
    return self._shards.record(tfds_split, record, key)

  def split(self, name: str) -> Split:
    return images.lookup_split(self.name, self._splits, name)

  def load_photo(self, item: PhotoItem, size: int | None = None) -> np.ndarray:
    del size  # stored as the file: the pipeline pads and resizes
    return fmt.decode_rgb(self._record("photos", item.key)["image"], item.key)

  def load_sketch(self, item: SketchItem) -> Sketch:
    rec = self._record("sketches", item.key)
    if len(rec["image"]):
      return Sketch(raster=fmt.decode_grey(rec["image"], item.key))
    return Sketch(strokes=fmt.split_strokes(rec["points"], rec["stroke_lengths"]))

  @property
  def skipped(self):
    return self._skipped


def missing_copy_error(name: str, data_dir: str, path: str, config: str, error: Exception, *, pick: str,
                       command: str) -> DataError:
  """The DataError for no complete copy at `path` (TFDS could not open it: `error`), with the interrupted
  builds left there, the configs that are built (`pick` says what chooses one) and the build `command`."""
  lines = [f"{name}: no complete TFDS copy at {path} (data_dir {data_dir!r}, config "
           f"{config!r}): {type(error).__name__}: {error}"]
  try:
    stale = fmt.incomplete_builds(path)
  except Exception:  # pylint: disable=broad-except  # only a hint
    stale = []
  if stale:
    lines.append(f"An interrupted build left {stale}; it is not a dataset. Delete it and rebuild.")
  built = fmt.built_configs(data_dir, name)
  if built:
    lines.append(f"Configs built there: {built} ({pick}).")
  lines.append("Build it with: " + command)
  return DataError("\n".join(lines))


def open_copy(name: str, data_dir: str, config: str, *, command: Callable[[str], str],
              expected_format: int = fmt.FORMAT, pick: str = "reader options pick one; docs/datasets.md",
              ) -> tuple[str, str, Any, dict[str, Any]]:
  """(data_dir as a string, path, TFDS builder, metadata['sgvu']) of the complete copy of `name` in `data_dir`
  with this config; DataError (quoting command(data_dir), the build command) where there is none, or where
  it is not an sgvu copy of `name` in format `expected_format`."""
  if not data_dir:
    raise DataError(f"{name}: a TFDS copy needs a data_dir (got {data_dir!r}); build one with: " + command("OUT"))
  data_dir = str(data_dir)
  path = fmt.version_dir(data_dir, name, config)
  try:
    builder = tfds.builder_from_directory(path)
  except (DatasetInfoFileError, FileNotFoundError, NotADirectoryError, ValueError) as e:
    raise missing_copy_error(name, data_dir, path, config, e, pick=pick, command=command(data_dir)) from None
  meta = builder.info.metadata.get("sgvu") if builder.info.metadata else None
  if not meta or meta.get("format") != expected_format or meta.get("dataset") != name:
    raise DataError(f"{path}: not an sgvu TFDS copy of {name!r} (format {expected_format}); rebuild it with: "
                    + command(data_dir))
  return data_dir, path, builder, dict(meta)


def check_strict(name: str, path: str, skipped, strict: bool) -> None:
  """strict=True: DataError for the first file the reader skipped while indexing (recorded at build time)."""
  if strict and skipped:
    key, reason = skipped[0]
    raise DataError(f"{name}: {key}: {reason} (strict=True; recorded when {path} was built)")


def open(dataset: str, data_dir: str, **options: Any) -> TFDSSource:  # pylint: disable=redefined-builtin
  """The TFDS copy of `dataset` in `data_dir` built with these reader options (`strict` is read-time:
  True raises for the first file the reader skipped while indexing)."""
  fmt.check_name(dataset)
  fmt.content_options(dataset, options)  # unknown options name the dataset
  data_dir, path, builder, meta = open_copy(
      dataset, data_dir, fmt.config_name(dataset, options),
      command=lambda d: fmt.BUILD_COMMAND.format(name=dataset, data_dir=d))
  source = TFDSSource(dataset, data_dir, path, meta, builder)
  check_strict(dataset, path, source.skipped, options.get("strict"))
  return source
