"""TFDS / ArrayRecord copies of the composed (sketch + text) datasets: CSTBIR, FS-COCO and the QMUL duet.

    path = build("cstbir", manual_dir="/data/CSTBIR", data_dir="/data/tfds")   # reader options as keywords
    src = open("cstbir", "/data/tfds")   # a ComposedSource: the directory reader's splits, pixels and skips

The layout and guarantees are sgvu.data.tfds_builders' (<data_dir>/sgvu_<name>/<config>/<version>, TFDS's
dataset_info.json / features.json, TFDS writes into `incomplete.*` and renames at the end, so a killed build
never reads as a dataset; no TensorFlow). Two TFDS splits, each file stored once however many splits use it:
  images    a record per gallery image that decodes: its original file bytes
  sketches  a record per query sketch that decodes: a raster's file bytes, or strokes (points, stroke_lengths)
metadata.json['sgvu'] is the index (opening reads no record): per split its categories, gallery (positions
in the image list), image labels and queries (key, sketch, text, target, label, box); the directory
reader's skip list; and each file that failed to decode at build time with the BadSample it raised, raised
again when it is loaded, so the pipelines count and skip it as they do reading the folder.
"""

from __future__ import annotations

import builtins  # this module defines open()
import collections
import concurrent.futures
import functools
import inspect
import os
from typing import Any, Callable, Mapping

import numpy as np
import tensorflow_datasets as tfds

from sgvu.data import images as images_lib
from sgvu.data import tfds_format as fmt
from sgvu.data.base import BadSample, DataError, PhotoItem, Sketch, SketchItem, Source, Split
from sgvu.data.composed import ComposedQuery, ComposedSource, ComposedSplit
from sgvu.data.tfds_builders import ReaderBuilder, check_local, prepare
from sgvu.data.tfds_source import Shards, check_strict, open_copy

Report = Callable[[str], None]

# registry name -> (sgvu.data.composed_real class, options the name fixes)
DATASETS: dict[str, tuple[str, dict[str, Any]]] = {
    "cstbir": ("CSTBIR", {}),
    "fscoco": ("FSCOCO", {}),
    "shoev2_duet": ("QMULDuet", {"variant": "ShoeV2"}),
    "chairv2_duet": ("QMULDuet", {"variant": "ChairV2"}),
}
FORMAT = 1  # of metadata['sgvu'] for composed copies
KINDS = ("images", "sketches")


def check_name(name: str) -> None:
  if name not in DATASETS:
    raise DataError(f"no TFDS copy for composed dataset {name!r}; valid: {list(DATASETS)}")


def content_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
  """The reader options that change what is stored (not `strict`, not those at the reader's default)."""
  check_name(name)
  from sgvu.data import composed_real  # pylint: disable=g-import-not-at-top
  cls_name, fixed = DATASETS[name]
  params = inspect.signature(getattr(composed_real, cls_name)).parameters
  return fmt.content_options_of(name, options, {k: p for k, p in params.items() if k != "root" and k not in fixed
                                                and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)})


def directory_reader(name: str, root: str, options: Mapping[str, Any]) -> ComposedSource:
  """The folder reader a copy is built from (as registry.get_composed_source reads it; imported directly, so
  the registry, which opens copies, and this module do not import each other)."""
  content_options(name, options)  # names a misspelt option, as the registry would
  from sgvu.data import composed_real  # pylint: disable=g-import-not-at-top
  cls_name, fixed = DATASETS[name]
  return getattr(composed_real, cls_name)(root, **fixed, **options)


def config_name(name: str, options: Mapping[str, Any]) -> str:
  """As tfds_format.config_name: 'default', 'verify-full', or a hash for values such as a texts path."""
  return fmt.config_name_of(content_options(name, options))


def dataset_dir(data_dir: str, name: str, options: Mapping[str, Any]) -> str:
  """<data_dir>/sgvu_<name>/<config>/<version>, joined with '/' so a gs:// data_dir stays one."""
  return fmt.version_dir(data_dir, name, config_name(name, options))


# ---------------------------------------------------------------------------- build


def _check(source: ComposedSource, kind: str, item) -> tuple[tuple[str, str] | None, str]:
  """(None or (key, reason) of the BadSample the directory reader raises loading it, 'image' | 'raster' |
  'strokes'); item: (split, index) of an image, or a query naming the sketch."""
  try:
    if kind == "images":
      source.load_image(*item)
      return None, "image"
    sketch = source.load_sketch(item)
    if sketch.strokes is None and sketch.raster is None:
      raise BadSample(item.sketch, "sketch has neither strokes nor raster")
    return None, "strokes" if sketch.strokes is not None else "raster"
  except BadSample as e:
    return (e.key, e.reason), ""


def _pairs(sp: ComposedSplit) -> Split:
  """An instance split as the retrieval Split its photo_source gives (photo = target, key = sketch)."""
  return Split(sp.name, sp.categories, tuple(PhotoItem(k, int(l)) for k, l in zip(sp.images, sp.image_labels)),
               tuple(SketchItem(q.sketch, q.label, q.target) for q in sp.queries))


class _Builder(ReaderBuilder, skip_registration=True):
  """One composed dataset; subclasses set DATASET (and `name`, sgvu_<DATASET>)."""

  CONTENT_OPTIONS = staticmethod(content_options)
  RELEASE_NOTES = {fmt.VERSION: "sgvu copy of the composed directory reader's index and files."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = "manual_dir is the folder sgvu's composed reader reads; see docs/datasets.md."

  def _info(self) -> tfds.core.DatasetInfo:
    # key: the directory reader's image key / query sketch key; record r is the r-th readable file, in index order.
    return self._sgvu_info(
        f"{self.DATASET} as read by sgvu's composed reader (sgvu.data.get_composed_source): gallery "
        "images and raster sketches as their file bytes, vector sketches as strokes; the index "
        "(splits, queries and their texts, skipped files) is in metadata['sgvu'].")

  def _split_generators(self, dl_manager):
    source = self._source
    if source is None:  # driven by TFDS directly (not build())
      source = directory_reader(self.DATASET, os.fspath(dl_manager.manual_dir), self._options)
    root = str(getattr(source, "root", "") or "")
    first = {"images": {}, "sketches": {}}  # key -> what loads it: (split, index) / a query; first appearance
    for split in source.split_names:
      sp = source.split(split)
      for i, key in enumerate(sp.images):
        first["images"].setdefault(key, (split, i))
      for q in sp.queries:
        first["sketches"].setdefault(q.sketch, q)
    files = {kind: {k: i for i, k in enumerate(first[kind])} for kind in KINDS}  # key -> position
    splits = {}
    for split in source.split_names:
      sp = source.split(split)
      qs = sp.queries
      splits[split] = {
          "categories": list(sp.categories), "images": [files["images"][k] for k in sp.images],
          "image_labels": [int(l) for l in sp.image_labels],
          "queries": {"keys": fmt.pack_keys([q.key for q in qs], root),
                      "sketches": [files["sketches"][q.sketch] for q in qs], "texts": [q.text for q in qs],
                      "targets": [int(q.target) for q in qs], "labels": [int(q.label) for q in qs],
                      "boxes": [None if q.box is None else [float(v) for v in q.box] for q in qs]}}
    bad, plans, entries, formats = [], {}, {}, set()
    with concurrent.futures.ThreadPoolExecutor(self._threads) as pool:
      for kind in KINDS:
        keys, loads = list(first[kind]), list(first[kind].values())
        check = functools.partial(_check, source, kind)
        records, plan = [], []
        for key, load, (fail, what) in zip(keys, loads, self._decode_all(pool, check, loads, label=kind)):
          if fail is None:
            if not os.path.isfile(key) and what != "strokes":  # bytes are stored: the key must be the file
              raise DataError(f"{self.DATASET}: {kind} key {key!r} is not a file; cannot copy this reader")
            records.append(len(plan))
            plan.append((key, load, what))
            if kind == "sketches":
              formats.add(what)
          else:
            records.append(-1)
            bad.append([kind, key, fail[0], fail[1]])
            self._report(f"  skipped {fail[0]}: {fail[1]}")
        entries[kind] = {"keys": fmt.pack_keys(keys, root), "records": records}
        plans[kind] = plan
    meta = {
        "format": FORMAT, "dataset": self.DATASET, "config": self.builder_config.name,
        "options": content_options(self.DATASET, self._options), "manual_dir": root, "key_prefix": root,
        "name": source.name, "kind": source.kind, "categories": list(source.categories),
        "split_names": list(source.split_names), "splits": splits, **entries,
        "attributes": {k: getattr(source, k) for k in ("verify", "variant") if hasattr(source, k)},
        **({"notes": dict(source.notes)} if hasattr(source, "notes") else {}), "sketch_formats": sorted(formats),
        "skipped_index": [list(x) for x in source.skipped], "skipped_load": bad,
    }
    meta["skipped"] = len(meta["skipped_index"]) + len(bad)
    ps = getattr(source, "photo_source", None)
    if ps is not None:  # the duet trains on these pairs: the copy rebuilds them from the queries, checked here
      for split in ps.split_names:
        if _pairs(source.split(split)) != ps.split(split):
          raise DataError(f"{self.DATASET}: photo_source split {split!r} is not the queries' pairs; cannot copy")
      meta["photo_source"] = {"name": ps.name, "categories": list(ps.categories),
                              "split_names": list(ps.split_names), "skipped": [list(x) for x in ps.skipped]}
    self.info.metadata["sgvu"] = meta
    # TFDS refuses an empty split (every sketch failed): leave it out; the index says -1 for all.
    return {kind: self._generate_examples(source, plan) for kind, plan in plans.items() if plan}

  def _generate_examples(self, source: ComposedSource, plan):
    empty_points, empty_lengths = np.zeros((0, 2), np.float32), np.zeros((0,), np.int32)
    for r, (key, first, what) in enumerate(plan):
      example = {"key": key, "image": b"", "points": empty_points, "stroke_lengths": empty_lengths}
      if what == "strokes":
        example["points"], example["stroke_lengths"] = fmt.join_strokes(source.load_sketch(first).strokes)
      else:
        try:
          with builtins.open(key, "rb") as f:
            example["image"] = f.read()
        except OSError as e:  # decoded a moment ago: the folder changed under the build
          raise DataError(f"{self.DATASET}: {key}: cannot read ({e}) during the build") from None
      yield r, example


BUILDERS: dict[str, type[_Builder]] = {
    d: type("Sgvu" + "".join(p.capitalize() for p in d.split("_")), (_Builder,),
            {"DATASET": d, "name": f"sgvu_{d}", "__module__": __name__}, skip_registration=True)
    for d in DATASETS}


def build(name: str, manual_dir: str, data_dir: str, *, overwrite: bool = False, threads: int = 4,
          report: Report | None = None, **reader_options: Any) -> str:
  """Builds (or reuses) the copy of composed dataset `name` read from `manual_dir`; returns its folder."""
  report = report or print
  check_name(name)
  content_options(name, reader_options)  # a misspelt option fails before anything is read
  check_local(name, data_dir)
  builder = BUILDERS[name](data_dir=data_dir, options=reader_options, file_format="array_record", threads=threads,
                           report=report)
  path = os.fspath(builder.data_path)
  if builder.data_path.exists() and builder.is_prepared() and not overwrite:  # TFDS renames in at the end
    report(f"reused the complete build at {path} (--overwrite rebuilds)")
    return path
  # Absolute, so the keys (file paths) do not depend on the directory the build ran in.
  builder._source = directory_reader(name, os.path.abspath(manual_dir), reader_options)  # pylint: disable=protected-access
  prepare(builder, manual_dir, overwrite, report, dataset_dir(data_dir, name, reader_options))
  return path


def metadata(path: str) -> dict[str, Any]:
  """metadata['sgvu'] of the copy at `path` (a folder build() returned)."""
  return dict(tfds.builder_from_directory(path).info.metadata.get("sgvu", {}))


def summary(meta: Mapping[str, Any]) -> str:
  """Per split: gallery images and queries readable / all; then every skipped file (for the CLI)."""
  lines = [f"dataset {meta['dataset']} (config {meta['config']}, {meta['kind']}): {len(meta['categories'])} "
           f"categories, sketches stored as {'/'.join(meta['sketch_formats']) or 'nothing'}"]
  for split, e in meta["splits"].items():
    img, sk = meta["images"]["records"], meta["sketches"]["records"]
    lines.append(f"  split {split}: categories {len(e['categories'])}, images "
                 f"{sum(img[i] >= 0 for i in e['images'])}/{len(e['images'])}, queries "
                 f"{sum(sk[i] >= 0 for i in e['queries']['sketches'])}/{len(e['queries']['sketches'])}")
  lines.append(f"skipped {meta['skipped']} file(s)")
  lines += [f"  skipped while indexing {k}: {r}" for k, r in meta["skipped_index"]]
  lines += [f"  skipped (does not decode) {k}: {r}" for _, _, k, r in meta["skipped_load"]]
  return "\n".join(lines)


# ---------------------------------------------------------------------------- read


class TFDSComposedSource(ComposedSource):
  """A built copy of one composed dataset; `open` makes it."""

  def __init__(self, dataset: str, data_dir: str, path: str, meta: dict[str, Any], builder=None):
    self.dataset, self.data_dir, self.path = dataset, data_dir, path  # dataset: the registry name
    self.name, self.kind = meta["name"], meta["kind"]
    self.root = None  # not a folder
    self.manual_dir, self.options = meta["manual_dir"], dict(meta["options"])
    self.categories, self.split_names = tuple(meta["categories"]), tuple(meta["split_names"])
    for k, v in meta["attributes"].items():
      setattr(self, k, v)
    if "notes" in meta:  # CSTBIR's counts of texts it had to fix
      self.notes = collections.Counter(meta["notes"])
    prefix = meta["key_prefix"]
    keys = {kind: fmt.unpack_keys(meta[kind]["keys"], prefix) for kind in KINDS}
    bad = {(kind, key): (raised, reason) for kind, key, raised, reason in meta["skipped_load"]}
    self._where = {kind: {k: (int(r), bad.get((kind, k))) for k, r in zip(keys[kind], meta[kind]["records"])}
                   for kind in KINDS}
    self._splits = {}
    for split, e in meta["splits"].items():
      q = e["queries"]
      queries = tuple(ComposedQuery(k, keys["sketches"][s], t, int(g), int(l), None if b is None else tuple(b))
                      for k, s, t, g, l, b in zip(fmt.unpack_keys(q["keys"], prefix), q["sketches"], q["texts"],
                                                  q["targets"], q["labels"], q["boxes"]))
      self._splits[split] = ComposedSplit(split, tuple(e["categories"]), tuple(keys["images"][i] for i in e["images"]),
                                          tuple(e["image_labels"]), queries)
    self._skipped = tuple((str(k), str(r)) for k, r in meta["skipped_index"])
    if meta.get("photo_source"):  # only where the reader has one (the duet trains on it)
      self.photo_source = _Pairs(self, meta["photo_source"])
    self._shards = Shards(path, builder)  # opened lazily and per process

  def _record(self, kind: str, key: str) -> dict[str, Any]:
    where = self._where[kind].get(key)
    if where is None:
      raise BadSample(key, f"not one of the {kind} of this TFDS copy ({self.path})")
    record, fail = where
    if fail is not None:
      raise BadSample(*fail)  # what the directory reader raised for it
    if record < 0:
      raise BadSample(key, "skipped when the TFDS copy was built")
    return self._shards.record(kind, record, key, what=kind, fix="rebuild it")

  def split(self, name: str) -> ComposedSplit:
    self._check_split(name)
    return self._splits[name]

  def load_image(self, split: str, index: int, size: int | None = None) -> np.ndarray:
    del size  # stored as the file: the pipeline pads and resizes
    keys = self.split(split).images
    if not 0 <= int(index) < len(keys):
      raise BadSample(f"{self.name}/{split}[{index}]", f"image index outside the gallery of {len(keys)}")
    key = keys[int(index)]
    return fmt.decode_rgb(self._record("images", key)["image"], key)

  def _sketch(self, key: str) -> Sketch:
    rec = self._record("sketches", key)
    if len(rec["image"]):
      return Sketch(raster=fmt.decode_grey(rec["image"], key))
    return Sketch(strokes=fmt.split_strokes(rec["points"], rec["stroke_lengths"]))

  def load_sketch(self, query: ComposedQuery) -> Sketch:
    return self._sketch(query.sketch)

  @property
  def skipped(self):
    return self._skipped


class _Pairs(Source):
  """The instance duet's sketch / photo pairs as a retrieval Source (QMULDuet.photo_source), same records."""

  def __init__(self, parent: TFDSComposedSource, meta: dict[str, Any]):
    self._parent, self.name, self.root = parent, meta["name"], None
    self.categories, self.split_names = tuple(meta["categories"]), tuple(meta["split_names"])
    self._splits = {s: _pairs(parent.split(s)) for s in self.split_names}
    self._skipped = tuple((str(k), str(r)) for k, r in meta["skipped"])

  def split(self, name: str) -> Split:
    return images_lib.lookup_split(self.name, self._splits, name)

  def load_photo(self, item: PhotoItem, size: int | None = None) -> np.ndarray:
    del size  # as QMUL.load_photo: the file's size
    return fmt.decode_rgb(self._parent._record("images", item.key)["image"], item.key)  # pylint: disable=protected-access

  def load_sketch(self, item: SketchItem) -> Sketch:
    return self._parent._sketch(item.key)  # pylint: disable=protected-access

  @property
  def skipped(self):
    return self._skipped


def open(name: str, data_dir: str, **reader_options: Any) -> TFDSComposedSource:  # pylint: disable=redefined-builtin
  """The copy of composed dataset `name` in `data_dir` built with these reader options (`strict` is
  read-time: True raises for the first file the reader skipped while indexing)."""
  check_name(name)
  content_options(name, reader_options)
  data_dir, path, builder, meta = open_copy(name, data_dir, config_name(name, reader_options),
                                            command=lambda d: fmt.BUILD_COMMAND.format(name=name, data_dir=d),
                                            expected_format=FORMAT)
  source = TFDSComposedSource(name, data_dir, path, meta, builder)
  check_strict(name, path, source.skipped, reader_options.get("strict"))
  return source
