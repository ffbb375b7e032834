"""TFDS / ArrayRecord copies of the localization datasets (COCO, VOC + QuickDraw query sketches); no TensorFlow.

    path = build("coco", "/data/coco", "/data/tfds", sketch_root="/data/quickdraw")
    src = open("coco", "/data/tfds", seed=1, num_query_sketches=3)    # a LocalizationSource

<data_dir>/sgvu_<name>/<config>/<version>/ (TFDS's layout, as sgvu.data.tfds_builders) holds one record per
indexed image (its file's bytes; split '<image set>_images') and per indexed QuickDraw line (strokes, or why it
fails; split 'sketches'). metadata.json holds what the reader's `_index` returned for each image set (keys, ids,
boxes, labels, ignore as exact base64 arrays), the skips and `dropped` counts it made, the QuickDraw pools and
the QuickDraw index's skips. The opened copy is the directory reader's class replaying these into its own
`split()`, so splits, queries, seeded sketch draws, `skipped` (in order, as splits are indexed; strict=True
raises the same DataError) and `dropped` are the reader's; an image that does not decode raises the reader's
BadSample from `load_image`. <config> names the options that change what is stored (max_images, difficult,
max_sketches_per_class, recognized_only, sketch_fractions); READ_TIME_OPTIONS apply when opening.
"""

from __future__ import annotations

import base64
import collections
import concurrent.futures
import functools
import inspect
import io
import os
import shlex
from typing import Any, Callable, Mapping

import numpy as np
import tensorflow_datasets as tfds

from sgvu.data import images, localization as loc
from sgvu.data import tfds_format as fmt
from sgvu.data.base import BadSample, DataError, Sketch, SketchItem
from sgvu.data.coco_localization import SKETCH_PARTS, COCOLocalization, unseen_categories
from sgvu.data.tfds_builders import ReaderBuilder, SgvuConfig, check_local, prepare
from sgvu.data.tfds_source import Shards, open_copy
from sgvu.data.voc_localization import DIFFICULT, VOC_CATEGORIES, VOCLocalization

DATASETS = ("coco", "voc")  # registry.LOCALIZATION_DATASETS' names (synth is generated: no copy)
READERS = {"coco": COCOLocalization, "voc": VOCLocalization}
# Options used when opening, not stored: where the files were, the query rule, rendering, strictness.
READ_TIME_OPTIONS = ("sketch_root", "strict", "seed", "num_query_sketches", "sketch_size", "queries",
                     "unseen_group", "unseen")
INDEX_ATTRIBUTES = {"coco": ("coco_category_ids",), "voc": ()}  # dicts the reader's _index fills in
Report = Callable[[str], None]


def check_name(name: str) -> None:
  if name not in DATASETS:
    raise DataError(f"no TFDS copy for localization dataset {name!r}; valid: {list(DATASETS)}")


def _params(name: str) -> dict[str, inspect.Parameter]:
  return {k: p for k, p in inspect.signature(READERS[name]).parameters.items() if p.kind == p.KEYWORD_ONLY}


def content_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
  """The options that change the stored content, without those equal to the reader's default."""
  check_name(name)
  return fmt.content_options_of(name, options, _params(name), read_only=READ_TIME_OPTIONS, doc="docs/localization.md")


def directory_reader(name: str, root: str, options: Mapping[str, Any]):
  """The folder reader a copy is built from (as registry.get_localization_source reads it; imported directly,
  so the registry, which opens copies, and this module do not import each other)."""
  check_name(name)
  try:
    inspect.signature(READERS[name]).bind(root, **options)
  except TypeError as e:
    raise DataError(f"{name}: bad option ({e}); see docs/datasets.md") from None
  return READERS[name](root, **options)


def config_name(name: str, options: Mapping[str, Any]) -> str:
  """As tfds_format.config_name (which knows only the retrieval readers): 'default' or 'max_images-500'."""
  return fmt.config_name_of(content_options(name, options))


def dataset_dir(data_dir: str, name: str, options: Mapping[str, Any]) -> str:
  return fmt.version_dir(data_dir, name, config_name(name, options))


def build_command(name: str, data_dir: str, options: Mapping[str, Any] | None = None) -> str:
  extra = "".join(f" --option {shlex.quote(f'{k}={v if isinstance(v, str) else repr(v)}')}"
                  for k, v in content_options(name, options or {}).items())
  return (f"python -m sgvu.tools.build_tfds --dataset={name} --manual_dir=DIR --option sketch_root=QUICKDRAW_DIR"
          f"{extra} --data_dir={data_dir}")


def _pack(a, dtype: str) -> str:
  return base64.b64encode(np.ascontiguousarray(a, dtype).tobytes()).decode("ascii")


def _unpack(s: str, dtype: str) -> np.ndarray:
  return np.frombuffer(base64.b64decode(s), dtype).copy()


# ---------------------------------------------------------------------------- building


def _index(source, threads: int, report: Report) -> tuple[dict[str, Any], dict[str, list], list]:
  """(metadata['sgvu'] less config, image set -> [(record, reason)], [(sketch key, label)]) of a fresh reader."""
  if source._records:  # pylint: disable=protected-access
    raise DataError(f"{source.name}: build from a fresh reader (splits already indexed)")
  root, sketch_root = os.fspath(source.root), os.fspath(source.sketches.root)
  meta: dict[str, Any] = {
      "format": fmt.FORMAT, "dataset": source.name, "manual_dir": root, "sketch_root": sketch_root,
      "categories": list(source.categories), "image_sets": dict(source.image_sets),
      "attributes": {k: getattr(source, k) for k in ("folder",) if hasattr(source, k)},
      "init_skips": [list(x) for x in source.skipped], "sets": {}, "sketches": [], "skipped_load": []}
  plans = {}
  for image_set in dict.fromkeys(source.image_sets.values()):
    # The reader's own _index; its skips, dropped counts (keys named by image set) and filled-in dicts are
    # captured to be replayed. pylint: disable=protected-access
    first, before = len(source._skips.items), set(source._dropped)
    fills = {a: getattr(source, a) for a in INDEX_ATTRIBUTES[source.name]}
    for attr in fills:
      setattr(source, attr, {})
    records = source._index(image_set)
    entry = {"keys": fmt.pack_keys([r.key for r in records], root), "image_ids": [r.image_id for r in records],
             "counts": _pack([len(r.labels) for r in records], "<i4"),
             "boxes": _pack(np.concatenate([r.boxes.reshape(-1, 4) for r in records] or [np.zeros((0, 4))]), "<f4"),
             "labels": _pack(np.concatenate([r.labels for r in records] or [[]]), "<i4"),
             "ignore": _pack(np.concatenate([r.ignore for r in records] or [[]]), "u1"),
             "skips": [list(x) for x in source._skips.items[first:]],
             "dropped": [[k, int(n)] for k, n in source._dropped.items() if k not in before],
             "attributes": {a: dict(getattr(source, a)) for a in fills}}
    for attr, old in fills.items():
      setattr(source, attr, {**old, **getattr(source, attr)})
    source._records[image_set] = records  # so source.split() below does not index it again
    meta["sets"][image_set] = entry
    reasons = []
    with concurrent.futures.ThreadPoolExecutor(max(1, threads)) as pool:
      for i in range(0, len(records), 256):  # bounded: pool.map would queue every image at once
        reasons += pool.map(functools.partial(_decode_error, source), records[i:i + 256])
        report(f"[{image_set}] decoded {len(reasons)}/{len(records)}")
    plans[image_set] = list(zip(records, reasons))
    for rec, reason in plans[image_set]:
      if reason is not None:
        meta["skipped_load"].append([rec.key, reason])
        report(f"  skipped (does not decode) {rec.key}: {reason}")
  sketches, qd = [], source.sketches
  for label, path in sorted(qd.files.items()):
    keys = [f"{path}:{n}" for n in qd._lines[path][0].tolist()]  # pylint: disable=protected-access
    parts = [qd.pool(p, label) for p in SKETCH_PARTS]
    if sum(parts, []) != keys:  # the pools are consecutive cuts of the indexed lines; store them so
      raise DataError(f"{source.name}: QuickDraw pools of {path} are not cuts of its index; update tfds_localization")
    meta["sketches"].append({"label": label, "path": fmt.pack_keys([path], sketch_root)[0], "base": len(sketches),
                             "linenos": _pack(qd._lines[path][0], "<i8"),  # pylint: disable=protected-access
                             "parts": [len(p) for p in parts]})
    sketches += [(k, label) for k in keys]
  for name in source.split_names:  # the skips of the build's options (empty sketch parts come with splits)
    source.split(name)
  meta["skipped_index"] = [list(x) for x in source.skipped]
  for k, r in meta["skipped_index"]:
    report(f"  skipped {k}: {r}")
  meta["skipped"] = len(meta["skipped_index"]) + len(meta["skipped_load"])
  return meta, plans, sketches


def _decode_error(source, record) -> str | None:
  try:
    source.load_image(record)  # the reader's own decode
    return None
  except BadSample as e:
    return e.reason


class _Builder(ReaderBuilder, skip_registration=True):
  """One localization dataset; subclasses set DATASET. Configs are made from the content options."""

  CONTENT_OPTIONS = staticmethod(content_options)
  RELEASE_NOTES = {fmt.VERSION: "sgvu copy of the localization reader's index, image files and query sketches."}
  BUILDER_CONFIGS = [SgvuConfig(name="default", description="the reader's default content options")]
  MANUAL_DOWNLOAD_INSTRUCTIONS = "manual_dir is the dataset folder sgvu's reader reads; see docs/localization.md."

  def _info(self) -> tfds.core.DatasetInfo:
    # key: the reader's key, an image file path or '<ndjson path>:<line>'; image: the image file's bytes; points,
    # stroke_lengths: a query sketch's strokes; error: a sketch line the reader cannot load, its BadSample reason.
    # Record r is the r-th image of the image set / line of the pools.
    return self._sgvu_info(
        f"{self.DATASET} localization as read by sgvu's reader; the index is in metadata['sgvu'].",
        homepage="docs/localization.md", error=tfds.features.Text())

  def _split_generators(self, dl_manager):
    source = self._source
    if source is None:  # driven by TFDS directly, not build()
      source = directory_reader(self.DATASET, os.fspath(dl_manager.manual_dir), self._options)
    meta, plans, sketches = _index(source, self._threads, self._report)
    meta.update(config=self.builder_config.name, options=content_options(self.DATASET, self._options))
    self.info.metadata["sgvu"] = meta
    out = {f"{s}_images": self._generate_examples(self._images(plan))
           for s, plan in plans.items() if plan}  # TFDS refuses empty splits
    if sketches:
      out["sketches"] = self._generate_examples(self._sketches(source, sketches))
    return out

  def _generate_examples(self, examples):  # TFDS's hook; _images / _sketches make them
    yield from examples

  def _example(self, key: str, **fields) -> dict[str, Any]:
    return {"key": key, "image": b"", "points": np.zeros((0, 2), np.float32),
            "stroke_lengths": np.zeros((0,), np.int32), "error": "", **fields}

  def _images(self, plan):
    for r, (rec, reason) in enumerate(plan):
      data = b""
      if reason is None:  # an undecodable image keeps its record, empty; metadata has the reason
        try:
          with io.open(rec.key, "rb") as f:
            data = f.read()
        except OSError as e:
          raise DataError(f"{self.DATASET}: {rec.key}: cannot read ({e}) during the build") from None
      yield r, self._example(rec.key, image=data)

  def _sketches(self, source, plan):
    for r, (key, label) in enumerate(plan):
      try:  # a line that fails keeps its record: loading it raises the reader's BadSample
        points, lengths = fmt.join_strokes(source.sketches.load_sketch(SketchItem(key, label)).strokes)
        example = self._example(key, points=points, stroke_lengths=lengths)
      except BadSample as e:
        example = self._example(key, error=e.reason)
      yield r, example


BUILDERS = {d: type("Sgvu" + d.capitalize(), (_Builder,), {"DATASET": d, "__module__": __name__},
                    skip_registration=True) for d in DATASETS}


def build(name: str, manual_dir: str, data_dir: str, *, overwrite: bool = False, threads: int = 4,
          report: Report | None = None, **reader_options: Any) -> str:
  """Builds (or reuses) the copy of localization dataset `name` read from `manual_dir` (sketch_root= the
  QuickDraw folder); returns its folder. TFDS writes into `incomplete.*` and renames at the end."""
  report = report or print
  check_name(name)
  content_options(name, reader_options)  # a misspelt option fails before anything is read
  check_local(name, data_dir, doc="")
  options = dict(reader_options)
  if options.get("sketch_root"):  # absolute, so the keys do not depend on where the build ran
    options["sketch_root"] = os.path.abspath(options["sketch_root"])
  builder = BUILDERS[name](data_dir=data_dir, options=options, file_format="array_record", threads=threads,
                           report=report)
  if builder.data_path.exists() and builder.is_prepared() and not overwrite:
    report(f"reused the complete build at {builder.data_path} (overwrite=True rebuilds)")
    return os.fspath(builder.data_path)
  builder._source = directory_reader(name, os.path.abspath(manual_dir), options)  # pylint: disable=protected-access
  prepare(builder, manual_dir, overwrite, report, dataset_dir(data_dir, name, options))
  return os.fspath(builder.data_path)


def metadata(path: str) -> dict[str, Any]:
  return dict(tfds.builder_from_directory(path).info.metadata["sgvu"])


def summary(meta: Mapping[str, Any]) -> str:
  """Images and boxes per image set, query sketches, every skip: for build_tfds to print."""
  lines = [f"dataset {meta['dataset']} (config {meta['config']}): {len(meta['categories'])} categories"]
  lines += [f"  {part} = {s}: {len(meta['sets'][s]['image_ids'])} images, "
            f"{len(_unpack(meta['sets'][s]['labels'], '<i4'))} boxes" for part, s in meta["image_sets"].items()]
  lines.append(f"  query sketches: {sum(sum(e['parts']) for e in meta['sketches'])} QuickDraw lines")
  lines.append(f"skipped {meta['skipped']} item(s)")
  lines += [f"  skipped while indexing {k}: {r}" for k, r in meta["skipped_index"]]
  lines += [f"  skipped (does not decode) {k}: {r}" for k, r in meta["skipped_load"]]
  return "\n".join(lines)


# ---------------------------------------------------------------------------- reading


class StoredQueries:
  """The QuickDraw query pools of a copy: what coco_localization.QuickDrawQueries gives, from the shards."""

  name = "quickdraw"

  def __init__(self, entries, categories, sketch_root: str, shards: Shards):
    self.root, self.categories, self._shards = sketch_root, tuple(categories), shards
    self.files: dict[int, str] = {}
    self._lines, self._cuts, self._base, self._label_of, self._pools = {}, {}, {}, {}, {}
    for e in entries:
      label, path = int(e["label"]), fmt.unpack_keys([e["path"]], sketch_root)[0]
      self.files[label], self._label_of[path] = path, label
      self._lines[label], self._base[label] = _unpack(e["linenos"], "<i8"), int(e["base"])
      cuts = np.cumsum([0] + list(e["parts"])).tolist()
      self._cuts[label] = {p: (cuts[i], cuts[i + 1]) for i, p in enumerate(SKETCH_PARTS)}

  def __getstate__(self):
    return {**self.__dict__, "_pools": {}}  # rebuilt on use

  def pool(self, part: str, label: int) -> list[str]:
    if label not in self.files:
      return []
    if (part, label) not in self._pools:
      lo, hi = self._cuts[label][part]
      self._pools[part, label] = [f"{self.files[label]}:{n}" for n in self._lines[label][lo:hi].tolist()]
    return self._pools[part, label]

  def load_sketch(self, item: SketchItem) -> Sketch:
    path, _, lineno = item.key.rpartition(":")
    label = self._label_of.get(path)
    if label is None:
      raise BadSample(item.key, "not a sketch of this QuickDraw index")
    lines = self._lines[label]
    i = int(np.searchsorted(lines, int(lineno)))
    if i >= len(lines) or lines[i] != int(lineno):
      raise BadSample(item.key, "line is not in the index")
    rec = self._shards.record("sketches", self._base[label] + i, item.key)
    error = rec["error"].decode() if isinstance(rec["error"], bytes) else str(rec["error"])
    if error:
      raise BadSample(item.key, error)
    return Sketch(strokes=fmt.split_strokes(rec["points"], rec["stroke_lengths"]))


class _Copy:
  """Mixed into the directory reader: its split / query / skip logic over the stored index (module doc)."""

  def _open_copy(self, path: str, meta: Mapping[str, Any], o: Mapping[str, Any], builder) -> None:
    self.path, self.manual_dir, self.root = path, meta["manual_dir"], meta["manual_dir"]
    for k, v in meta["attributes"].items():  # VOC's folder
      setattr(self, k, v)
    self.image_sets = dict(meta["image_sets"])
    self.load_skipped = tuple((k, r) for k, r in meta["skipped_load"])  # images that do not decode
    self._shards = Shards(path, builder)
    self._sets = meta["sets"]
    bad = dict(self.load_skipped)
    self._where = {}  # image key -> (TFDS split, record, reason it does not decode)
    for image_set, e in self._sets.items():
      for r, k in enumerate(fmt.unpack_keys(e["keys"], self.manual_dir)):
        self._where[k] = (f"{image_set}_images", r, bad.get(k, ""))
    # QuickDrawQueried._setup, with the stored pools for QuickDrawQueries.
    loc.check_options(self.name, o["num_query_sketches"], o["queries"], o["sketch_size"])
    self.seed, self.num_query_sketches = int(o["seed"]), o["num_query_sketches"]
    self.sketch_size, self.queries = o["sketch_size"], o["queries"]
    self._skips = images.IndexSkips(self.name, o["strict"])
    self._dropped = collections.Counter()
    self._records, self._splits, self._empty_reported = {}, {}, set()
    self.sketches = StoredQueries(meta["sketches"], self.categories, meta["sketch_root"], self._shards)
    for k, r in meta["init_skips"]:  # the QuickDraw index's skips; strict=True raises here, as the reader
      self._skips.add(k, r)

  def _index(self, image_set: str) -> list[loc.ImageRecord]:
    e = self._sets[image_set]
    for k, r in e["skips"]:
      self._skips.add(k, r)
    for k, n in e["dropped"]:
      self._dropped[k] += n
    for attr, value in e["attributes"].items():
      getattr(self, attr).update(value)
    counts = _unpack(e["counts"], "<i4")
    at = np.cumsum(counts)[:-1]
    boxes = np.split(_unpack(e["boxes"], "<f4").reshape(-1, 4), at)
    labels, ignore = np.split(_unpack(e["labels"], "<i4"), at), np.split(_unpack(e["ignore"], "u1").astype(bool), at)
    keys = fmt.unpack_keys(e["keys"], self.manual_dir)
    return [loc.ImageRecord(key=k, image_id=i, boxes=b, labels=l, ignore=g)
            for k, i, b, l, g in zip(keys, e["image_ids"], boxes, labels, ignore)]

  def load_image(self, record: loc.ImageRecord) -> np.ndarray:
    where = self._where.get(record.key)
    if where is None:
      raise BadSample(record.key, f"not an image of this TFDS copy ({self.path})")
    split, r, reason = where
    if reason:
      raise BadSample(record.key, reason)
    return fmt.decode_rgb(self._shards.record(split, r, record.key)["image"], record.key)


class COCOCopy(_Copy, COCOLocalization):
  """COCOLocalization read from a copy (open() makes it)."""

  def __init__(self, path: str, meta: Mapping[str, Any], builder=None, **options: Any):
    o = {**{k: p.default for k, p in _params("coco").items()}, **options}
    self.max_images, self.categories = o["max_images"], tuple(meta["categories"])
    self.unseen = unseen_categories(o["unseen_group"], self.categories)
    self.seen = tuple(c for c in self.categories if c not in self.unseen)
    self.coco_category_ids = {}
    self._open_copy(path, meta, o, builder)


class VOCCopy(_Copy, VOCLocalization):
  """VOCLocalization read from a copy (open() makes it)."""

  def __init__(self, path: str, meta: Mapping[str, Any], builder=None, **options: Any):
    o = {**{k: p.default for k, p in _params("voc").items()}, **options}
    if o["difficult"] not in DIFFICULT:
      raise DataError(f"voc: unknown difficult={o['difficult']!r}; valid: {list(DIFFICULT)}")
    bad = [u for u in o["unseen"] if u not in VOC_CATEGORIES]
    if bad:
      raise DataError(f"voc: unseen {bad} are not among the categories {VOC_CATEGORIES}")
    self.difficult, self.categories = o["difficult"], tuple(meta["categories"])
    self.unseen = tuple(c for c in self.categories if c in o["unseen"])
    self.seen = tuple(c for c in self.categories if c not in o["unseen"])
    self._open_copy(path, meta, o, builder)


COPIES = {"coco": COCOCopy, "voc": VOCCopy}


# pylint: disable-next=redefined-builtin
def open(name: str, data_dir: str, **reader_options: Any) -> loc.LocalizationSource:
  """The copy of localization dataset `name` in `data_dir`, as get_localization_source(name, root, **reader_options)
  reads the folder it was built from (sketch_root is not needed; strict=True raises for the first recorded skip)."""
  check_name(name)
  content_options(name, reader_options)
  _, path, builder, meta = open_copy(name, data_dir, config_name(name, reader_options),
                                     command=lambda d: build_command(name, d, reader_options),
                                     pick=f"content options pick one: {sorted(_params(name))}")
  return COPIES[name](path, meta, builder, **reader_options)
