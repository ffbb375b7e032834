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
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core.dataset_info import DatasetInfoFileError

from sgvu.data import images
from sgvu.data import tfds_format as fmt
from sgvu.data.base import BadSample, DataError, PhotoItem, Sketch, SketchItem, Source, Split


class TFDSSource(Source):
  """A built copy of one dataset; `open` makes it."""

  def __init__(self, dataset: str, data_dir: str, path: str, meta: dict[str, Any]):
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
    self._lock = threading.Lock()
    self._builder = None
    self._sources: dict[str, Any] = {}

  # Opened lazily and per process: grain workers get the index, not open file handles.
  def __getstate__(self):
    state = self.__dict__.copy()
    state.update(_lock=None, _builder=None, _sources={})
    return state

  def __setstate__(self, state):
    self.__dict__.update(state)
    self._lock = threading.Lock()

  def _data(self, tfds_split: str):
    with self._lock:
      if tfds_split not in self._sources:
        if self._builder is None:
          self._builder = tfds.builder_from_directory(self.path)
        self._sources[tfds_split] = self._builder.as_data_source(split=tfds_split)
      return self._sources[tfds_split]

  def _record(self, kind: str, key: str) -> dict[str, Any]:
    where = self._where[kind].get(key)
    if where is None:
      raise BadSample(key, f"not one of the {kind} of this TFDS copy ({self.path})")
    tfds_split, record, reason = where
    if record < 0:
      raise BadSample(key, reason or "skipped when the TFDS copy was built")
    rec = self._data(tfds_split)[record]
    stored = rec["key"].decode() if isinstance(rec["key"], bytes) else str(rec["key"])
    if stored != key:  # the index and the shards disagree: never a silently wrong sample
      raise DataError(f"{self.path}: record {record} of split {tfds_split} holds {stored!r}, the index "
                      f"says {key!r}; rebuild the copy")
    return rec

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


def _missing(dataset: str, data_dir: str, options: dict[str, Any], path: str, error: Exception) -> DataError:
  lines = [f"{dataset}: no complete TFDS copy at {path} (data_dir {data_dir!r}, config "
           f"{fmt.config_name(dataset, options)!r}): {type(error).__name__}: {error}"]
  try:
    stale = fmt.stale_builds(data_dir, dataset, options)
  except Exception:  # pylint: disable=broad-except  # only a hint
    stale = []
  if stale:
    lines.append(f"An interrupted build left {stale}; it is not a dataset. Delete it and rebuild.")
  try:
    from etils import epath  # pylint: disable=g-import-not-at-top
    built = sorted(p.name for p in (epath.Path(data_dir) / fmt.tfds_name(dataset)).iterdir()
                   if not p.name.startswith("."))
  except Exception:  # pylint: disable=broad-except
    built = []
  if built:
    lines.append(f"Configs built there: {built} (reader options pick one; docs/datasets.md).")
  lines.append("Build it with: " + fmt.BUILD_COMMAND.format(name=dataset, data_dir=data_dir))
  return DataError("\n".join(lines))


def open(dataset: str, data_dir: str, **options: Any) -> TFDSSource:  # pylint: disable=redefined-builtin
  """The TFDS copy of `dataset` in `data_dir` built with these reader options (`strict` is read-time:
  True raises for the first file the reader skipped while indexing)."""
  fmt.check_name(dataset)
  fmt.content_options(dataset, options)  # unknown options name the dataset
  if not data_dir:
    raise DataError(f"{dataset}: a TFDS copy needs a data_dir (got {data_dir!r}); build one with: "
                    + fmt.BUILD_COMMAND.format(name=dataset, data_dir="OUT"))
  data_dir = str(data_dir)
  path = fmt.dataset_dir(data_dir, dataset, options)
  try:
    builder = tfds.builder_from_directory(path)
  except (DatasetInfoFileError, FileNotFoundError, NotADirectoryError, ValueError) as e:
    raise _missing(dataset, data_dir, options, path, e) from None
  meta = builder.info.metadata.get("sgvu") if builder.info.metadata else None
  if not meta or meta.get("format") != fmt.FORMAT or meta.get("dataset") != dataset:
    raise DataError(f"{path}: not an sgvu TFDS copy of {dataset!r} (format {fmt.FORMAT}); rebuild it with: "
                    + fmt.BUILD_COMMAND.format(name=dataset, data_dir=data_dir))
  source = TFDSSource(dataset, data_dir, path, dict(meta))
  if options.get("strict") and source.skipped:
    key, reason = source.skipped[0]
    raise DataError(f"{dataset}: {key}: {reason} (strict=True; recorded when {path} was built)")
  source._builder = builder  # pylint: disable=protected-access  # opened already
  return source
