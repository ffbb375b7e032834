"""TFDS / ArrayRecord copy of the PASCAL VOC 2012 pretext photos (sgvu.data.voc_images); no TensorFlow.

    path = build("/data/VOC2012", "/data/tfds")           # every split ImageSets/Main lists: train, val, trainval
    voc = open("/data/tfds", "train", max_images=1000)    # a VOCImages: the same ids, pixels and skips

One copy holds every split of voc_images.SPLITS whose list file exists. Its layout and guarantees are
sgvu.data.tfds_builders' (<data_dir>/sgvu_voc2012_images/default/<version>, TFDS's dataset_info.json /
features.json; TFDS writes into `incomplete.*` and renames at the end, so a killed build never reads as a
copy). One TFDS split, 'images': a record per listed image that decodes, its file's bytes, each file once
however many splits list it. metadata.json['sgvu'] is the index (opening reads no record): the listed ids
(each split's in the order VOCImages reads them, repeats dropped as it drops them), the splits whose list was
missing or empty and why, and each listed image that is missing or does not decode with the BadSample reason
images.load_rgb gave; loading it from the copy raises that BadSample again, so `load_all` skips and counts it
as it does reading the folder. `max_images` is read-time (the split's first N ids): one copy serves all.
"""

from __future__ import annotations

import builtins  # this module defines open()
import concurrent.futures
import os
from typing import Any, Callable, Mapping

import numpy as np
import tensorflow_datasets as tfds

from sgvu.data import images
from sgvu.data import tfds_format as fmt
from sgvu.data import voc_images
from sgvu.data.base import BadSample, DataError
from sgvu.data.tfds_builders import ReaderBuilder, check_local, prepare
from sgvu.data.tfds_source import Shards, open_copy

Report = Callable[[str], None]

NAME = "voc2012_images"
DATASETS = (NAME,)  # build_tfds.VOC_IMAGES_DATASETS says the same (tested)
FORMAT = 1  # of metadata['sgvu'] for this copy
CONFIG = "default"  # VOCImages has no option that changes what is stored


def check_name(name: str) -> None:
  if name not in DATASETS:
    raise DataError(f"no TFDS copy of VOC pretext images named {name!r}; valid: {list(DATASETS)}")


def content_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
  """{} (the copy has no options); DataError naming any option given."""
  check_name(name)
  return fmt.content_options_of(name, options, {})


def dataset_dir(data_dir: str, name: str = NAME, options: Mapping[str, Any] | None = None) -> str:
  """<data_dir>/sgvu_voc2012_images/default/<version>, joined with '/' so a gs:// data_dir stays one."""
  content_options(name, options or {})
  return fmt.version_dir(data_dir, name, CONFIG)


def build_command(data_dir: str) -> str:
  return fmt.BUILD_COMMAND.format(name=NAME, data_dir=data_dir).replace("=DIR", "=VOC2012_DIR")


# ---------------------------------------------------------------------------- build


def _readers(root: str) -> tuple[dict[str, voc_images.VOCImages], dict[str, str]]:
  """({split: VOCImages(root, split)}, {split: why it has none}) over voc_images.SPLITS; DataError when no
  split can be read (no such folder, no JPEGImages/, no list)."""
  readers, absent = {}, {}
  for split in voc_images.SPLITS:
    try:
      readers[split] = voc_images.VOCImages(root, split)
    except (FileNotFoundError, ValueError) as e:  # the folder reader's errors for a missing / empty list
      absent[split] = str(e)
  if not readers:
    raise DataError(f"{NAME}: no split of {list(voc_images.SPLITS)} can be read from {root!r}: "
                    + "; ".join(absent.values()) + f"\nexpected the VOC2012 folder laid out as\n{voc_images.LAYOUT}")
  return readers, absent


def _decode_error(path: str) -> str | None:
  """Why VOCImages.load fails for the file (the reason of images.load_rgb's BadSample), or None."""
  try:
    images.load_rgb(path)
    return None
  except BadSample as e:
    return e.reason


class _Index:
  """What build() read from manual_dir before TFDS starts: the folder (absolute) and its splits' readers."""

  def __init__(self, root: str):
    self.root = root
    self.readers, self.absent = _readers(root)


class _Builder(ReaderBuilder, skip_registration=True):
  """sgvu_voc2012_images: the VOC 2012 images VOCImages reads, every split in one copy."""

  DATASET = NAME
  name = f"sgvu_{NAME}"
  CONTENT_OPTIONS = staticmethod(content_options)
  RELEASE_NOTES = {fmt.VERSION: "sgvu copy of the VOC 2012 images sgvu.data.voc_images reads."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = ("manual_dir is the VOC2012 folder (JPEGImages/, ImageSets/Main/<split>.txt); "
                                  "see docs/datasets.md.")

  def _info(self) -> tfds.core.DatasetInfo:
    # key: the image's path under manual_dir (VOCImages.path); record r is the r-th readable listed image.
    return self._sgvu_info(
        "PASCAL VOC 2012 images as sgvu.data.voc_images.VOCImages reads them (unlabelled pretext photos), as their "
        "file bytes; the ids of each split and the files that do not decode are in metadata['sgvu'].")

  def _split_generators(self, dl_manager):
    index = self._source
    if index is None:  # driven by TFDS directly (not build())
      index = _Index(os.path.abspath(os.fspath(dl_manager.manual_dir)))
    root = index.root
    path_of = {}  # id -> VOCImages.path, the key the folder reader gives; each listed id once, in split order
    for reader in index.readers.values():
      for n, i in enumerate(reader.ids):
        path_of.setdefault(i, reader.path(n))
    ids, paths = list(path_of), list(path_of.values())
    position = {i: n for n, i in enumerate(ids)}
    with concurrent.futures.ThreadPoolExecutor(self._threads) as pool:
      reasons = self._decode_all(pool, _decode_error, paths, "images")
    records, plan, bad = [], [], []
    for i, path, reason in zip(ids, paths, reasons):
      if reason is None:
        records.append(len(plan))
        plan.append(path)
      else:
        records.append(-1)
        bad.append([i, reason])
        self._report(f"  skipped {path}: {reason}")
    if not plan:  # VOCImages.load_all raises for such a split; a copy of nothing is no use
      raise DataError(f"{NAME}: none of the {len(ids)} images listed under {root!r} can be read")
    for split, reason in index.absent.items():
      self._report(f"  no split {split}: {reason}")
    self.info.metadata["sgvu"] = {
        "format": FORMAT, "dataset": NAME, "config": self.builder_config.name, "options": {},
        "manual_dir": root, "ids": ids, "records": records,
        "splits": {s: [position[i] for i in reader.ids] for s, reader in index.readers.items()},
        "absent": dict(index.absent), "skipped_load": bad, "skipped": len(bad)}
    return {"images": self._generate_examples(plan)}

  def _generate_examples(self, plan):
    empty_points, empty_lengths = np.zeros((0, 2), np.float32), np.zeros((0,), np.int32)
    for r, path in enumerate(plan):
      try:
        with builtins.open(path, "rb") as f:
          data = f.read()
      except OSError as e:  # decoded a moment ago: the folder changed under the build
        raise DataError(f"{NAME}: {path}: cannot read ({e}) during the build") from None
      yield r, {"key": path, "image": data, "points": empty_points, "stroke_lengths": empty_lengths}


def build(manual_dir: str, data_dir: str, *, overwrite: bool = False, threads: int = 4,
          report: Report | None = None) -> str:
  """Builds (or reuses) the copy of the VOC2012 folder `manual_dir` (every split it lists) in `data_dir`;
  returns the copy's folder."""
  report = report or print
  check_local(NAME, data_dir)
  builder = _Builder(data_dir=data_dir, file_format="array_record", threads=threads, report=report)
  path = os.fspath(builder.data_path)
  if builder.data_path.exists() and builder.is_prepared() and not overwrite:  # TFDS renames in at the end
    report(f"reused the complete build at {path} (built from {metadata(path).get('manual_dir')!r}; "
           "--overwrite rebuilds)")
    return path
  # Absolute, so the keys (file paths) do not depend on the directory the build ran in; read before TFDS starts.
  builder._source = _Index(os.path.abspath(manual_dir))  # pylint: disable=protected-access
  prepare(builder, manual_dir, overwrite, report, dataset_dir(data_dir))
  return path


def metadata(path: str) -> dict[str, Any]:
  """metadata['sgvu'] of the copy at `path` (the folder build() returned)."""
  return dict(tfds.builder_from_directory(path).info.metadata.get("sgvu", {}))


def summary(meta: Mapping[str, Any]) -> str:
  """Per split: readable / listed images; the splits not there; every skipped file (for the CLI)."""
  records = meta["records"]
  lines = [f"dataset {meta['dataset']} (config {meta['config']}): {len(meta['ids'])} listed images, "
           f"{sum(r >= 0 for r in records)} stored"]
  lines += [f"  split {s}: images {sum(records[p] >= 0 for p in pos)}/{len(pos)}" for s, pos in meta["splits"].items()]
  lines += [f"  no split {s}: {reason}" for s, reason in meta["absent"].items()]
  lines.append(f"skipped {meta['skipped']} file(s)")
  lines += [f"  skipped {i}: {r}" for i, r in meta["skipped_load"]]  # missing or does not decode
  return "\n".join(lines)


# ---------------------------------------------------------------------------- read


class VOCImagesCopy(voc_images.VOCImages):
  """VOCImages over a copy (open() makes it): the folder reader's ids, path(), load() pixels and load_all() skips.

  root is the copy's folder (named in load_all's errors); manual_dir the VOC2012 folder it was built from, under
  which path(i) names the image, as the folder reader does.
  """

  def __init__(self, data_dir: str, path: str, meta: Mapping[str, Any], split: str, max_images: int | None,
               builder=None):
    # pylint: disable-next=super-init-not-called  # the parent reads a folder; the copy's index is metadata
    self.data_dir, self.root, self.split = data_dir, path, split
    self.manual_dir = meta["manual_dir"]
    self.image_dir = os.path.join(self.manual_dir, "JPEGImages")
    if split not in meta["splits"]:
      why = meta["absent"].get(split, f"not one of {list(voc_images.SPLITS)}")
      raise DataError(f"{NAME}: the copy at {path} has no split {split!r} ({why}); it holds "
                      f"{list(meta['splits'])}")
    all_ids = meta["ids"]
    ids = [all_ids[p] for p in meta["splits"][split]]
    self.ids = ids[:max_images] if max_images is not None else ids
    bad = {i: r for i, r in meta["skipped_load"]}
    self._where = {i: (int(r), bad.get(i, "")) for i, r in zip(all_ids, meta["records"])}
    self._shards = Shards(path, builder)  # opened lazily and per process

  def load(self, index: int, size: int) -> np.ndarray:
    """uint8 [size, size, 3] RGB, as VOCImages.load; raises its BadSample (the file's path, the reason)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
      raise ValueError(f"voc_images: size must be a positive int, got {size!r}")
    key = self.path(index)
    record, reason = self._where[self.ids[index]]
    if record < 0:
      raise BadSample(key, reason or "skipped when the TFDS copy was built")
    img = fmt.decode_rgb(self._shards.record("images", record, key, what="images")["image"], key)
    return images.resize(voc_images._centre_square(img), size)  # pylint: disable=protected-access


def open(data_dir: str, split: str = "train", max_images: int | None = None) -> VOCImagesCopy:  # pylint: disable=redefined-builtin
  """The VOC 2012 images of `split` from the copy in `data_dir` (local or gs://), as
  VOCImages(<the folder it was built from>, split, max_images) reads them."""
  if max_images is not None and (isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1):
    raise ValueError(f"voc_images: max_images must be a positive int or None, got {max_images!r}")
  data_dir, path, builder, meta = open_copy(NAME, data_dir, CONFIG, command=build_command, expected_format=FORMAT,
                                            pick="it has one config, 'default'")
  return VOCImagesCopy(data_dir, path, meta, split, max_images, builder)
