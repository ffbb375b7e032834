"""What a TFDS / ArrayRecord copy of a sketch dataset looks like on disk (shared by builder and reader).

  <data_dir>/sgvu_<name>/<config>/<version>/   TFDS's layout, written by sgvu.data.tfds_builders
    sgvu_<name>-<split>_photos.array_record-*     one record per photo that decoded at build time
    sgvu_<name>-<split>_sketches.array_record-*   one record per sketch likewise
    dataset_info.json, features.json             TFDS's own
    metadata.json                                 {"sgvu": the index, options and skip list}

A record: key, label, photo (paired photo index or -1), image (the original file's bytes: a
photo's JPEG/PNG or a raster sketch's PNG; empty for vector sketches), points float32 [N, 2] and
stroke_lengths int32 [S] (vector sketches: the reader's strokes, concatenated).

The index (every item of every split, in the directory reader's order, with its record number or
-1 and the reason it was skipped) lives in metadata.json, so opening a copy reads no record and
the splits, keys and pairing are exactly the directory reader's. <config> is 'default' or the
reader options that change the content ('max_per_class-1000'); `strict` is not one of them.
numpy + PIL + etils only (no TensorFlow).
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import os
import re
import warnings
from typing import Any, Mapping

import numpy as np
from PIL import Image

from sgvu.data import images
from sgvu.data.base import BadSample, DataError

# The datasets with a TFDS copy (sgvu.data.registry.get_tfds_source reads them).
DATASETS = ("sketchy", "tuberlin", "quickdraw", "shoev2", "chairv2")

VERSION = "1.0.0"
FORMAT = 1  # of the "sgvu" metadata entry
KINDS = ("photos", "sketches")
READ_ONLY_OPTIONS = ("strict",)  # reader options that do not change what is stored
BUILD_COMMAND = "python -m sgvu.tools.build_tfds --dataset={name} --manual_dir=DIR --data_dir={data_dir}"


def tfds_name(dataset: str) -> str:
  """sgvu name -> TFDS dataset name ('sketchy' -> 'sgvu_sketchy'; prefixed to stay clear of TFDS's catalog)."""
  check_name(dataset)
  return f"sgvu_{dataset}"


def check_name(dataset: str) -> None:
  if dataset not in DATASETS:
    raise DataError(f"no TFDS copy for dataset {dataset!r}; valid: {list(DATASETS)}")


def split_name(split: str, kind: str) -> str:
  """('train', 'photos') -> 'train_photos', the TFDS split holding them."""
  return f"{split}_{kind}"


def _reader_class(dataset: str) -> type:
  # pylint: disable=g-import-not-at-top
  if dataset == "sketchy":
    from sgvu.data.sketchy import Sketchy
    return Sketchy
  if dataset == "tuberlin":
    from sgvu.data.tuberlin import TUBerlin
    return TUBerlin
  if dataset == "quickdraw":
    from sgvu.data.quickdraw import QuickDraw
    return QuickDraw
  from sgvu.data.qmul import QMUL
  return QMUL


def directory_reader(dataset: str, root: str, options: Mapping[str, Any]):
  """The folder reader a copy is built from, as registry.get_source opens it (imported directly: the registry
  opens copies, so the TFDS modules must not import it back)."""
  content_options(dataset, options)  # a misspelt option is named, as the registry would
  variant = {"shoev2": {"variant": "ShoeV2"}, "chairv2": {"variant": "ChairV2"}}.get(dataset, {})
  return _reader_class(dataset)(root, **variant, **options)


def canonical(value: Any) -> Any:
  """JSON-able form (tuples become lists), so ('a',) and ['a'] name the same copy."""
  return json.loads(json.dumps(value, sort_keys=True))


def content_options_of(name: str, options: Mapping[str, Any], params: Mapping[str, inspect.Parameter], *,
                       read_only: tuple[str, ...] = READ_ONLY_OPTIONS, doc: str = "docs/datasets.md",
                       ) -> dict[str, Any]:
  """`options` less those in `read_only` and those equal to their parameter's default, canonical and sorted.

  params: the options `name`'s reader takes, with their defaults. Raises DataError naming `name` (and `doc`)
  for an option not among them.
  """
  unknown = sorted(set(options) - set(params))
  if unknown:
    raise DataError(f"{name}: unknown option(s) {unknown}; valid: {sorted(params)} ({doc})")
  out = {}
  for k in sorted(options):
    if k in read_only:
      continue
    v = canonical(options[k])
    if v != canonical(params[k].default):
      out[k] = v
  return out


def config_name_of(content: Mapping[str, Any]) -> str:
  """'default', or content options as a TFDS config name: 'extended-False.max_per_class-1000'."""
  parts = []
  for k, v in content.items():
    text = str(v)
    if not (isinstance(v, (bool, int, str)) and re.fullmatch(r"[\w+\-]{1,40}", text)):
      text = hashlib.sha256(json.dumps(v, sort_keys=True).encode()).hexdigest()[:10]  # lists: a hash
    parts.append(f"{k}-{text}")
  return ".".join(parts) or "default"


def version_dir(data_dir: str, name: str, config: str) -> str:
  """<data_dir>/sgvu_<name>/<config>/<version> as a string: joined with '/', never touched, so a
  gs:// data_dir stays a gs:// path for etils / TFDS to open."""
  return "/".join([str(data_dir).rstrip("/"), f"sgvu_{name}", config, VERSION])


def incomplete_builds(version_path: str) -> list[str]:
  """The `incomplete.*_<version>` folders an interrupted TFDS build leaves next to the version folder."""
  from etils import epath  # pylint: disable=g-import-not-at-top
  parent = epath.Path(version_path).parent
  try:
    return sorted(os.fspath(p) for p in parent.iterdir()
                  if p.name.startswith("incomplete.") and p.name.endswith("_" + VERSION))
  except (FileNotFoundError, NotADirectoryError):
    return []


def built_configs(data_dir: str, name: str) -> list[str]:
  """The config folders under <data_dir>/sgvu_<name> (a hint for error messages: [] when it cannot be listed)."""
  try:
    from etils import epath  # pylint: disable=g-import-not-at-top
    return sorted(p.name for p in (epath.Path(data_dir) / f"sgvu_{name}").iterdir()
                  if not p.name.startswith((".", "incomplete.")))
  except Exception:  # pylint: disable=broad-except  # only a hint
    return []


def content_options(dataset: str, options: Mapping[str, Any]) -> dict[str, Any]:
  """The reader options that change the stored content, without the ones equal to the reader's default.

  Raises DataError naming the dataset for an option its reader does not take.
  """
  check_name(dataset)
  params = inspect.signature(_reader_class(dataset)).parameters
  return content_options_of(dataset, options, {k: p for k, p in params.items()
                                               if p.kind == p.KEYWORD_ONLY and k != "variant"})


def config_name(dataset: str, options: Mapping[str, Any]) -> str:
  """'default', or the content options as a TFDS config name: 'extended-False.max_per_class-1000'."""
  return config_name_of(content_options(dataset, options))


def dataset_dir(data_dir: str, dataset: str, options: Mapping[str, Any]) -> str:
  """<data_dir>/sgvu_<name>/<config>/<version> (version_dir) of `dataset` read with `options`."""
  return version_dir(data_dir, dataset, config_name(dataset, options))


def stale_builds(data_dir: str, dataset: str, options: Mapping[str, Any]) -> list[str]:
  """incomplete_builds of `dataset`'s copy with `options`."""
  return incomplete_builds(dataset_dir(data_dir, dataset, options))


# ----------------------------------------------------------------------------
# Keys: stored once with the build's common prefix (the manual_dir) cut off, restored exactly.


def pack_keys(keys: list[str], prefix: str) -> list[str]:
  return [k[len(prefix):] if prefix and k.startswith(prefix) else "\0" + k for k in keys]


def unpack_keys(packed: list[str], prefix: str) -> list[str]:
  return [k[1:] if k.startswith("\0") else prefix + k for k in packed]


# ----------------------------------------------------------------------------
# Decoding a record: the same steps as images.load_rgb / load_grey on the file, from its bytes.


def _open_bytes(data: bytes, key: str) -> Image.Image:
  if not data:
    raise BadSample(key, "record has no image bytes")
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("error", Image.DecompressionBombWarning)
      img = Image.open(io.BytesIO(data))
      img.load()
    return img
  except Exception as e:  # PIL raises many types, as in images._open
    raise BadSample(key, f"cannot decode image ({type(e).__name__}: {e})") from None


def decode_rgb(data: bytes, key: str) -> np.ndarray:
  """uint8 [H, W, 3], pixel for pixel what images.load_rgb gives for the file the bytes came from."""
  img = images._flatten_alpha(_open_bytes(data, key))  # pylint: disable=protected-access
  arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
  if arr.ndim != 3 or min(arr.shape[:2]) < 1:
    raise BadSample(key, f"decoded to an empty image {arr.shape}")
  return arr


def decode_grey(data: bytes, key: str) -> np.ndarray:
  """uint8 [H, W] as images.load_grey, checked for ink as the folder readers' load_sketch."""
  img = images._flatten_alpha(_open_bytes(data, key))  # pylint: disable=protected-access
  arr = np.asarray(img.convert("L"), dtype=np.uint8)
  if arr.ndim != 2 or min(arr.shape) < 1:
    raise BadSample(key, f"decoded to an empty image {arr.shape}")
  return images.check_ink(arr, key)


def join_strokes(strokes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
  """Strokes -> (points float32 [N, 2], lengths int32 [S])."""
  lengths = np.asarray([len(s) for s in strokes], np.int32)
  points = np.concatenate([np.asarray(s, np.float32) for s in strokes]) if strokes else np.zeros((0, 2), np.float32)
  return points.reshape(-1, 2), lengths


def split_strokes(points: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
  """Inverse of join_strokes."""
  points = np.asarray(points, np.float32).reshape(-1, 2)
  return [np.array(p) for p in np.split(points, np.cumsum(lengths)[:-1])] if len(lengths) else []
