"""The inference bundle every trained table row leaves in its workdir.

  ROW_DIR/bundle/bundle.json   what the model is and how to use it (below)
  ROW_DIR/bundle/params.npz    its parameters, '/'-joined names -> float32 arrays
  ROW_DIR/bundle/gallery.npz   the evaluated gallery: embeds [G, D], labels [G], index [G], keys [G]

bundle.json: {"format", "experiment", "task", "method", "seed", "step",
"model": a sgvu.models.registry spec, "image_size", "normalize" ('clip'),
"query": {"method", "kwargs", "levels"} (how a sketch is embedded; levels > 0:
the model also takes the completion level of a partial sketch), "gallery":
{"method", "kwargs"} (how a photo is embedded), "embed_dim", "data" (the data
config the gallery came from, with the reader options), "split", "categories"}.

Tools (search, serve, evaluate) load bundles and never import a task: the
model comes back from the registry, the gallery photos from `sgvu.data`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from sgvu import batching, preprocess
from sgvu.data import configured, pipeline
from sgvu.data.base import Source
from sgvu.models import registry

FORMAT = "sgvu-bundle/1"
BUNDLE_DIR = "bundle"
META_FILE, PARAMS_FILE, GALLERY_FILE = "bundle.json", "params.npz", "gallery.npz"


class BundleError(ValueError):
  """A missing or malformed bundle; the message names the file."""


@dataclasses.dataclass
class Gallery:
  embeds: np.ndarray  # [G, D] float32
  labels: np.ndarray  # [G] category index into `categories`
  index: np.ndarray  # [G] item index into the split's photos
  keys: np.ndarray  # [G] photo keys (file paths for real data)


def _flat(tree, prefix=()) -> dict[str, np.ndarray]:
  out = {}
  for k, v in tree.items():
    if isinstance(v, Mapping):
      out.update(_flat(v, prefix + (k,)))
    else:
      out["/".join(prefix + (k,))] = np.asarray(jax.device_get(v), np.float32)
  return out


def _nest(flat: Mapping[str, np.ndarray]) -> dict:
  out: dict = {}
  for path, v in flat.items():
    node = out
    *parents, leaf = path.split("/")
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = v
  return out


def split_gallery(embed_photo, source: Source, split: str, *, image_size: int, batch_size: int,
                  strict: bool = False) -> Gallery:
  """A split's photos through `embed_photo` (uint8 images -> embeddings): a bundle's gallery."""
  embeds, labels, index = batching.embed_split(embed_photo, source, split, "photo", image_size=image_size,
                                               batch_size=batch_size, strict=strict)
  photos = source.split(split).photos
  return Gallery(embeds, labels, index, np.asarray([photos[int(i)].key for i in index]))


def save(directory: str, *, model, params, meta: Mapping[str, Any], gallery: Gallery) -> str:
  """Writes a bundle (atomically: a half-written one never exists) and returns its directory."""
  if jax.process_index() != 0:
    return directory
  for key in ("experiment", "method", "image_size", "query", "gallery", "data", "split", "categories"):
    if key not in meta:
      raise ValueError(f"bundle meta lacks {key!r}")
  tmp = directory + ".tmp"
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  full = {"format": FORMAT, "model": registry.describe(model), "normalize": "clip",
          "embed_dim": int(gallery.embeds.shape[1]), **meta}
  with open(os.path.join(tmp, META_FILE), "w") as f:
    json.dump(full, f, indent=1, default=_json_default)
  np.savez(os.path.join(tmp, PARAMS_FILE), **_flat(params))
  np.savez(os.path.join(tmp, GALLERY_FILE), embeds=np.asarray(gallery.embeds, np.float32),
           labels=np.asarray(gallery.labels, np.int32), index=np.asarray(gallery.index, np.int64),
           keys=np.asarray(gallery.keys, dtype=str))
  shutil.rmtree(directory, ignore_errors=True)
  os.replace(tmp, directory)
  return directory


def _json_default(v):
  if isinstance(v, (np.generic, np.ndarray)):
    return v.tolist()
  if hasattr(v, "to_dict"):
    return v.to_dict()
  raise TypeError(f"not JSON-able: {type(v).__name__}")


class Bundle:
  """A loaded bundle: `embed_queries`, `embed_photos`, `gallery`, `source()` for the gallery's pictures."""

  def __init__(self, directory: str, meta: dict, params, gallery: Gallery):
    self.directory, self.meta, self.params, self.gallery = directory, meta, params, gallery
    try:
      self.model = registry.build(meta["model"])
    except (ValueError, KeyError, TypeError) as e:
      raise BundleError(f"{os.path.join(directory, META_FILE)}: bad model spec ({e})") from None
    self.image_size = int(meta["image_size"])
    self.levels = int(meta["query"].get("levels", 0))
    self.embed_dim = int(meta["embed_dim"])
    self.categories = list(meta["categories"])
    self._fns: dict[str, Any] = {}
    self._source: Source | None = None

  @property
  def name(self) -> str:
    return f"{self.meta['method']} (seed {self.meta.get('seed', 0)}, step {self.meta.get('step', 0)})"

  def _fn(self, role: str):
    if role not in self._fns:
      spec = self.meta[role]
      method = None if spec["method"] == "__call__" else getattr(type(self.model), spec["method"])
      kwargs = dict(spec.get("kwargs", {}))
      if role == "query" and self.levels:
        self._fns[role] = jax.jit(lambda p, im, lv: self.model.apply(
            {"params": p}, preprocess.normalize_images(im), lv, method=method, **kwargs))
      else:
        self._fns[role] = jax.jit(lambda p, im: self.model.apply(
            {"params": p}, preprocess.normalize_images(im), method=method, **kwargs))
    return self._fns[role]

  def embed_queries(self, images: np.ndarray, fractions: np.ndarray | None = None,
                    batch_size: int = 64) -> np.ndarray:
    """uint8 sketches [N, S, S, 3] -> [N, D]; fractions [N]: the share of each sketch drawn (default 1)."""
    images = np.asarray(images, np.uint8)
    if images.ndim != 4 or images.shape[1:] != (self.image_size, self.image_size, 3):
      raise ValueError(f"queries must be uint8 [N, {self.image_size}, {self.image_size}, 3], got {images.shape}")
    if not len(images):
      return np.zeros((0, self.embed_dim), np.float32)
    fractions = np.ones(len(images), np.float32) if fractions is None else np.asarray(fractions, np.float32)
    fn = self._fn("query")
    out = []
    for start in range(0, len(images), batch_size):
      chunk = images[start:start + batch_size]
      # Padded to a power of two: a session of queries compiles a few shapes, not one per count.
      size = min(batch_size, 1 << (len(chunk) - 1).bit_length())
      padded = batching.pad_rows(chunk, size)
      if self.levels:
        level = np.clip(np.round(fractions[start:start + batch_size] * self.levels).astype(np.int32) - 1, 0,
                        self.levels - 1)
        out.append(np.asarray(fn(self.params, padded, jnp.asarray(batching.pad_rows(level, size))))[:len(chunk)])
      else:
        out.append(np.asarray(fn(self.params, padded))[:len(chunk)])
    return np.concatenate(out)

  def embed_photos(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    fn = self._fn("gallery")
    return batching.map_batches(lambda im: fn(self.params, im), np.asarray(images, np.uint8), batch_size)

  def source(self) -> Source:
    """The dataset the gallery came from (procedural or the user's local copy), unrendered."""
    if self._source is None:
      data = dict(self.meta["data"])
      options = data.pop("source_options", {})
      self._source = configured.source_from_config(data, materialize=False, **options)
    return self._source

  def gallery_photo(self, row: int) -> np.ndarray:
    """uint8 [S, S, 3] picture of gallery row `row`."""
    split = self.source().split(self.meta["split"])
    return pipeline.load_photo(self.source(), split.photos[int(self.gallery.index[row])], self.image_size)


def load(directory: str) -> Bundle:
  """Loads ROW_DIR/bundle (or a bundle directory itself); raises BundleError naming what is missing."""
  if os.path.isdir(os.path.join(directory, BUNDLE_DIR)):
    directory = os.path.join(directory, BUNDLE_DIR)
  meta_path = os.path.join(directory, META_FILE)
  try:
    with open(meta_path) as f:
      meta = json.load(f)
  except FileNotFoundError:
    raise BundleError(f"{meta_path} not found: no exported model in {directory!r}") from None
  except ValueError as e:
    raise BundleError(f"{meta_path}: invalid JSON ({e})") from None
  if meta.get("format") != FORMAT:
    raise BundleError(f"{meta_path}: format {meta.get('format')!r}, this sgvu reads {FORMAT!r}")
  try:
    with np.load(os.path.join(directory, PARAMS_FILE)) as z:
      params = _nest({k: z[k] for k in z.files})
    with np.load(os.path.join(directory, GALLERY_FILE)) as z:
      gallery = Gallery(z["embeds"], z["labels"], z["index"], z["keys"])
  except (OSError, ValueError, KeyError) as e:
    raise BundleError(f"{directory}: unreadable {PARAMS_FILE} or {GALLERY_FILE} ({e})") from None
  return Bundle(directory, meta, jax.device_put(params), gallery)
