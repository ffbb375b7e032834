"""TFDS builders that copy a local dataset into ArrayRecord shards (no TensorFlow needed).

    build("sketchy", manual_dir="/data/Sketchy", data_dir="gs://bucket/tfds")

TFDS's manual_dir is the folder the directory reader reads: the builder opens it with
`sgvu.data.get_source` (so the layout, classes, splits, pairing and index-time skips are the
reader's), decodes every photo and sketch once the way the reader does (a file that fails is
skipped: counted, printed, recorded in metadata.json, kept in the index as unreadable), and writes
the original file bytes (photos, raster sketches) or the reader's strokes (vector sketches); the
format is described in sgvu.data.tfds_format. TFDS writes into `incomplete.*` and renames the
version folder at the end, so an interrupted build never reads as a dataset.

Why the file bytes and not uint8 arrays: decoding them gives exactly the directory reader's pixels,
and JPEGs stay ~10x smaller than their pixels; the pipeline decodes either way.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import os
import sys
import tempfile
import time
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import tensorflow_datasets as tfds

from sgvu.data import tfds_format as fmt
from sgvu.data.base import BadSample, DataError, Source

Report = Callable[[str], None]


@dataclasses.dataclass(eq=False)
class SgvuConfig(tfds.core.BuilderConfig):
  options: dict[str, Any] = dataclasses.field(default_factory=dict)  # the reader's content options


def _check(source: Source, kind: str, item) -> tuple[str | None, str]:
  """(reason it fails or None, 'photo' | 'raster' | 'strokes'): the decode show_data does."""
  try:
    if kind == "photos":
      img = np.asarray(source.load_photo(item))
      if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise BadSample(item.key, f"photo decoded to {img.dtype} {img.shape}")
      return None, "photo"
    sketch = source.load_sketch(item)
    if sketch.strokes is not None:
      return None, "strokes"
    if sketch.raster is not None:
      return None, "raster"
    raise BadSample(item.key, "sketch has neither strokes nor raster")
  except BadSample as e:
    return e.reason, ""


class ReaderBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """What sgvu's builders share: subclasses set DATASET, and CONTENT_OPTIONS (their family's
  content_options(dataset, options)) names the config from the reader options; build() may hand in the
  opened reader as `source`."""

  DATASET = ""
  CONTENT_OPTIONS = staticmethod(fmt.content_options)
  VERSION = tfds.core.Version(fmt.VERSION)
  BUILDER_CONFIGS = [SgvuConfig(name="default", description="the reader's default options")]

  def __init__(self, *, options: Mapping[str, Any] | None = None, source: Any = None,
               threads: int = 4, report: Report | None = None, **kwargs: Any):
    options = dict(options or {})
    content = self.CONTENT_OPTIONS(self.DATASET, options)
    name = fmt.config_name_of(content)
    config = self.BUILDER_CONFIGS[0] if name == "default" else \
        SgvuConfig(name=name, options=content, description=f"reader options {content}")
    self._options = options  # strict included: it is the reader's
    self._source, self._threads = source, max(1, threads)
    self._report = report or (lambda s: None)
    super().__init__(config=config, **kwargs)

  def _sgvu_info(self, description: str, homepage: str = "docs/datasets.md", **features) -> tfds.core.DatasetInfo:
    """TFDS's info for records of the reader's key, `features`, a file's bytes (image; empty where none is
    stored) and strokes (points, stroke_lengths); unshuffled (record r is the r-th written, as the index in
    metadata['sgvu'] says)."""
    return tfds.core.DatasetInfo(
        builder=self,
        description=description,
        features=tfds.features.FeaturesDict({
            "key": tfds.features.Text(),
            **features,
            "image": tfds.features.Tensor(shape=(), dtype=np.object_),  # encoded JPEG / PNG bytes
            "points": tfds.features.Tensor(shape=(None, 2), dtype=np.float32),  # the strokes, joined
            "stroke_lengths": tfds.features.Tensor(shape=(None,), dtype=np.int32),
        }),
        homepage=homepage,
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(),
    )

  def _decode_all(self, pool, check: Callable[[Any], Any], items, label: str) -> list:
    """[check(item) for item in items] on the pool, reporting progress as '[label] decoded n/N (rate/s)'."""
    out, start, last = [], time.time(), 0.0
    chunk = 256  # bounded: pool.map would queue every item at once
    for i in range(0, len(items), chunk):
      out += list(pool.map(check, items[i:i + chunk]))
      now = time.time()
      if now - last > 5 or len(out) == len(items):
        last = now
        rate = len(out) / max(now - start, 1e-9)
        self._report(f"[{label}] decoded {len(out)}/{len(items)} ({rate:.0f}/s)")
    return out


class _Builder(ReaderBuilder, skip_registration=True):
  """One sgvu dataset; subclasses set DATASET. Configs are made from the reader options."""

  RELEASE_NOTES = {fmt.VERSION: "sgvu copy of the directory reader's index and files."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = ("manual_dir is the dataset folder in the layout sgvu's directory reader "
                                  "reads; see docs/datasets.md.")

  def _info(self) -> tfds.core.DatasetInfo:
    # key: the directory reader's key (a file path); label: index into metadata['sgvu']['categories'];
    # photo (sketches): the paired photo's index in the split, or -1. Record r of a split is its r-th readable
    # item, in reader order.
    return self._sgvu_info(
        (f"{self.DATASET} as read by sgvu's directory reader (sgvu.data.get_source), "
         "photos and raster sketches as their original file bytes, vector sketches as "
         "strokes; the index (splits, keys, pairing, skipped files) is in metadata['sgvu']."),
        label=tfds.features.Scalar(np.int64), photo=tfds.features.Scalar(np.int64))

  # ---------------------------------------------------------------- pass 1: index + decode every file

  def _split_generators(self, dl_manager) -> dict[str, Iterator]:
    source = self._source
    if source is None:  # driven by TFDS directly (not build()): open the manual_dir here
      source = fmt.directory_reader(self.DATASET, os.fspath(dl_manager.manual_dir), self._options)
    root = str(getattr(source, "root", "") or "")
    bad: dict[str, str] = {}  # key -> reason, for files that fail to decode
    meta: dict[str, Any] = {
        "format": fmt.FORMAT, "dataset": self.DATASET, "config": self.builder_config.name,
        "options": fmt.content_options(self.DATASET, self._options), "manual_dir": root,
        "key_prefix": root, "categories": list(source.categories), "split_names": list(source.split_names),
        "attributes": {"extended": bool(source.extended)} if hasattr(source, "extended") else {},
        "splits": {}, "sketch_formats": [],
    }
    plans, formats = {}, set()
    with concurrent.futures.ThreadPoolExecutor(self._threads) as pool:
      for split in source.split_names:
        sp = source.split(split)
        entry: dict[str, Any] = {"categories": list(sp.categories)}
        for kind in fmt.KINDS:
          items = sp.photos if kind == "photos" else sp.sketches
          checks = self._decode_all(pool, functools.partial(_check, source, kind), items, f"{split} {kind}")
          records, plan = [], []
          for item, (reason, what) in zip(items, checks):
            if reason is None:
              records.append(len(plan))
              plan.append((item, what))
              if kind == "sketches":
                formats.add(what)
            else:
              records.append(-1)
              if item.key not in bad:
                bad[item.key] = reason
                self._report(f"  skipped {item.key}: {reason}")
          entry[kind] = {"keys": fmt.pack_keys([i.key for i in items], root),
                         "labels": [int(i.label) for i in items], "records": records}
          if kind == "sketches":
            entry[kind]["photos"] = [-1 if i.photo is None else int(i.photo) for i in items]
          plans[fmt.split_name(split, kind)] = plan
        meta["splits"][split] = entry
    meta["sketch_formats"] = sorted(formats)
    meta["skipped_index"] = [list(x) for x in source.skipped]
    meta["skipped_load"] = [[k, r] for k, r in bad.items()]
    meta["skipped"] = len(meta["skipped_index"]) + len(bad)
    self.info.metadata["sgvu"] = meta
    # TFDS refuses an empty split (QuickDraw without photos, a split whose files all fail): leave it out.
    return {name: self._generate_examples(source, plan) for name, plan in plans.items() if plan}

  # ---------------------------------------------------------------- pass 2: write the readable ones

  def _generate_examples(self, source: Source, plan) -> Iterator[tuple[int, dict[str, Any]]]:
    empty_points, empty_lengths = np.zeros((0, 2), np.float32), np.zeros((0,), np.int32)
    for r, (item, what) in enumerate(plan):
      example = {"key": item.key, "label": int(item.label),
                 "photo": -1 if getattr(item, "photo", None) is None else int(item.photo),
                 "image": b"", "points": empty_points, "stroke_lengths": empty_lengths}
      if what == "strokes":
        example["points"], example["stroke_lengths"] = fmt.join_strokes(source.load_sketch(item).strokes)
      else:
        try:
          with open(item.key, "rb") as f:
            example["image"] = f.read()
        except OSError as e:  # decoded a moment ago: the copy changed under the build
          raise DataError(f"{self.DATASET}: {item.key}: cannot read ({e}) during the build") from None
      yield r, example


def _subclass(dataset: str) -> type[_Builder]:
  name = "Sgvu" + dataset.capitalize()  # TFDS names it sgvu_<dataset>
  return type(name, (_Builder,), {"DATASET": dataset, "__module__": __name__}, skip_registration=True)


BUILDERS: dict[str, type[_Builder]] = {d: _subclass(d) for d in fmt.DATASETS}


@dataclasses.dataclass
class BuildResult:
  path: str  # <data_dir>/sgvu_<name>/<config>/<version>
  reused: bool
  metadata: dict[str, Any]  # metadata['sgvu']


def build(dataset: str, manual_dir: str, data_dir: str, options: Mapping[str, Any] | None = None, *,
          overwrite: bool = False, threads: int = 4, report: Report | None = None) -> BuildResult:
  """Builds (or reuses) the TFDS copy of `dataset` read from `manual_dir` into `data_dir`."""
  report = report or print
  options = dict(options or {})
  fmt.check_name(dataset)
  fmt.content_options(dataset, options)  # a misspelt option fails before anything is read
  check_local(dataset, data_dir)
  cls = BUILDERS[dataset]
  builder = cls(data_dir=data_dir, options=options, file_format="array_record", threads=threads, report=report)
  if builder.data_path.exists() and builder.is_prepared() and not overwrite:  # TFDS renames in at the end
    meta = dict(tfds.builder_from_directory(builder.data_path).info.metadata.get("sgvu", {}))
    report(f"reused the complete build at {builder.data_path} (built from {meta.get('manual_dir')!r}; "
           "--overwrite rebuilds)")
    return BuildResult(os.fspath(builder.data_path), True, meta)
  # Absolute, so the keys (file paths) do not depend on the directory the build ran in.
  source = fmt.directory_reader(dataset, os.path.abspath(manual_dir), options)
  builder._source = source  # pylint: disable=protected-access  # indexed once, here
  prepare(builder, manual_dir, overwrite, report, fmt.dataset_dir(data_dir, dataset, options))
  return BuildResult(os.fspath(builder.data_path), False, dict(builder.info.metadata["sgvu"]))


def check_local(name: str, data_dir: str, doc: str = "; docs/datasets.md") -> None:
  """Raises DataError for a gs:// data_dir: array_record 0.8's writer is local-only (its reader does read
  gs://), so a copy is built locally and copied up."""
  if str(data_dir).startswith("gs://"):
    raise DataError(f"{name}: cannot write ArrayRecord shards to {data_dir!r} directly; build into a local "
                    f"data_dir and copy it (gcloud storage cp -r OUT/sgvu_NAME gs://...){doc}")


def prepare(builder: tfds.core.DatasetBuilder, manual_dir: str, overwrite: bool, report: Report,
            version_path: str) -> None:
  """TFDS's download_and_prepare of `builder` (nothing is downloaded; TFDS's progress lines go to stderr,
  keeping stdout for results); then notes the interrupted builds left next to `version_path`."""
  mode = tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS if overwrite else \
      tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS
  with tempfile.TemporaryDirectory(prefix="sgvu-tfds-") as downloads, contextlib.redirect_stdout(sys.stderr):
    builder.download_and_prepare(download_dir=downloads, download_config=tfds.download.DownloadConfig(
        manual_dir=os.path.abspath(manual_dir), download_mode=mode, try_download_gcs=False))
  stale = fmt.incomplete_builds(version_path)
  if stale:
    report(f"note: interrupted earlier builds left {len(stale)} folder(s) (safe to delete): {stale}")
