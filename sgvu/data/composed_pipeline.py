"""Arrays and training batches of composed (sketch + text) retrieval sources (`sgvu.data.composed`).

`materialize_split` renders a split's query sketches and gallery images once (in worker processes) into
numpy arrays; `query_loader` yields training batches from them through the same grain loader as every
other pipeline (seeded, checkpointable, bad samples counted and skipped). Texts stay strings until the
task's `finalize` tokenizes a whole batch: each row formats the text its own way (placeholder, object words
removed, the object named).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import time
from typing import Any, Callable, Sequence

import numpy as np
from absl import logging

from sgvu.data import composed, pipeline
from sgvu.data.base import BadSample, DataError


@dataclasses.dataclass
class SplitArrays:
  """One split rendered at one size. Queries or images that failed to load are left out (and counted)."""
  name: str
  sketches: np.ndarray  # uint8 [Q, S, S, 3]
  texts: list[str]  # [Q] with composed.PLACEHOLDER
  labels: np.ndarray  # int32 [Q] category of the sketched object
  targets: np.ndarray  # int32 [Q] row of the target in `images`
  boxes: np.ndarray  # float32 [Q, 4] sketched object's box (fractions), zeros when unknown
  has_box: np.ndarray  # bool [Q]
  images: np.ndarray  # uint8 [G, S, S, 3]
  image_labels: np.ndarray  # int32 [G] (-1: scenes)
  query_index: np.ndarray  # int32 [Q] index into split.queries
  image_index: np.ndarray  # int32 [G] index into split.images
  skipped: list[tuple[str, str]]

  def __len__(self) -> int:
    return len(self.targets)


def _render(args) -> list[tuple[str, int, np.ndarray | None, str]]:
  source, split, size, jobs = args
  out = []
  for kind, i in jobs:
    try:
      if kind == "image":
        out.append((kind, i, composed.load_image_square(source, split, i, size), ""))
      else:
        query = source.split(split).queries[i]
        out.append((kind, i, composed.render_query_sketch(source, query, size), ""))
    except BadSample as e:
      out.append((kind, i, None, f"{e.key}: {e.reason}"))
  return out


def _render_all(source, split: str, size: int, jobs, num_workers: int, chunk: int = 128):
  chunks = [(source, split, size, jobs[i:i + chunk]) for i in range(0, len(jobs), chunk)]
  if num_workers > 0 and len(chunks) > 1:
    ctx = multiprocessing.get_context("spawn")  # the parent may already run JAX threads
    with concurrent.futures.ProcessPoolExecutor(num_workers, mp_context=ctx) as pool:
      parts = list(pool.map(_render, chunks))
  else:
    parts = [_render(c) for c in chunks]
  return [r for part in parts for r in part]


def materialize_split(source, split: str, size: int, *, num_workers: int = 2, strict: bool = False,
                      max_queries: int | None = None) -> SplitArrays:
  """Every query sketch and gallery image of `split` at size x size, in memory.

  A query whose sketch fails, or whose target image failed, is left out; an image that fails is left
  out of the gallery. Each is logged and listed in `skipped`; `strict=True` raises DataError instead.
  """
  sp = source.split(split)
  queries = range(len(sp.queries) if max_queries is None else min(max_queries, len(sp.queries)))
  jobs = [("image", i) for i in range(len(sp.images))] + [("sketch", i) for i in queries]
  t0 = time.perf_counter()
  rendered = _render_all(source, split, size, jobs, num_workers)
  images, sketches, skipped = {}, {}, []
  for kind, i, array, reason in rendered:
    if array is None:
      if strict:
        raise DataError(f"{source.name}/{split}: {reason} (strict=True)")
      logging.warning("%s/%s: skipping %s", source.name, split, reason)
      skipped.append((kind, reason))
    else:
      (images if kind == "image" else sketches)[i] = array
  image_index = np.asarray(sorted(images), np.int32)
  row_of_image = {int(i): n for n, i in enumerate(image_index)}
  keep = [i for i in queries if i in sketches and sp.queries[i].target in row_of_image]
  for i in queries:
    if i in sketches and sp.queries[i].target not in row_of_image:
      skipped.append(("query", f"{sp.queries[i].key}: its target image failed to load"))
  if not keep or not len(image_index):
    raise DataError(f"{source.name}/{split}: no query left to evaluate ({len(skipped)} skipped)")
  q = [sp.queries[i] for i in keep]
  boxes = np.asarray([x.box if x.box is not None else (0.0, 0.0, 0.0, 0.0) for x in q], np.float32)
  out = SplitArrays(
      name=split, sketches=np.stack([sketches[i] for i in keep]), texts=[x.text for x in q],
      labels=np.asarray([x.label for x in q], np.int32),
      targets=np.asarray([row_of_image[x.target] for x in q], np.int32), boxes=boxes,
      has_box=np.asarray([x.box is not None for x in q]), images=np.stack([images[int(i)] for i in image_index]),
      image_labels=np.asarray([sp.image_labels[int(i)] for i in image_index], np.int32),
      query_index=np.asarray(keep, np.int32), image_index=image_index, skipped=skipped)
  logging.info("%s/%s: %d queries over %d images at %dpx in %.1fs (%d skipped)", source.name, split, len(out),
               len(image_index), size, time.perf_counter() - t0, len(skipped))
  return out


def ink_mask(sketch_images, size: int, threshold: int = 128) -> np.ndarray:
  """uint8 [B, S, S, 3] sketches (dark ink on white) -> float32 [B, size, size] in {0, 1}.

  A pixel is ink where its channel mean < threshold. Resized by "any ink in the covered area":
  output cell i covers source rows [floor(i S / size), ceil((i + 1) S / size)), so thin strokes
  survive downsampling (max-pooling for an integer factor; nearest for upsampling).
  """
  images = np.asarray(sketch_images)
  if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
    raise ValueError(f"ink_mask: expected [B, S, S, 3] images, got {images.shape}")
  ink = (images.astype(np.float32).mean(axis=-1) < threshold).astype(np.int32)
  s = ink.shape[1]
  if s == size:
    return ink.astype(np.float32)
  table = np.pad(ink.cumsum(1).cumsum(2), ((0, 0), (1, 0), (1, 0)))  # summed-area table
  i = np.arange(size)
  lo, hi = (i * s) // size, -((-(i + 1) * s) // size)
  count = (table[:, hi][:, :, hi] - table[:, lo][:, :, hi]
           - table[:, hi][:, :, lo] + table[:, lo][:, :, lo])
  return (count > 0).astype(np.float32)


class _QueryElement:
  """query row -> one training example (arrays + the query's text, tokenized per batch by `finalize`)."""

  def __init__(self, arrays: SplitArrays, mask_size: int, features: dict[str, np.ndarray] | None = None):
    self.arrays, self.mask_size, self.features = arrays, mask_size, features

  def __call__(self, row: int, rng: np.random.Generator) -> dict[str, Any]:
    del rng
    a, row = self.arrays, int(row)
    target = int(a.targets[row])
    out = {"text": a.texts[row], "label": a.labels[row], "box": a.boxes[row], "has_box": a.has_box[row],
           "image_index": np.int32(target), "sketch_mask": ink_mask(a.sketches[row][None], self.mask_size)[0]}
    if self.features is None:
      return {**out, "sketch": a.sketches[row], "image": a.images[target]}
    # Frozen encoders' outputs instead of pixels: 'image_*' rows follow the images, 'sketch_*' the queries.
    return {**out, **{k: v[target] if k.startswith("image_") else v[row] for k, v in self.features.items()}}


class Finalize:
  """Batch -> arrays: `text` (strings) replaced by what `tokenize(texts, labels)` returns (a dict)."""

  def __init__(self, tokenize: Callable[[Sequence[str], np.ndarray], dict[str, np.ndarray]]):
    self.tokenize = tokenize

  def __call__(self, batch: dict[str, Any]) -> dict[str, np.ndarray]:
    texts = [str(t) for t in batch.pop("text")]
    batch.update(self.tokenize(texts, np.asarray(batch["label"])))
    return batch


def query_loader(arrays: SplitArrays, *, dataset: str, batch_size: int, seed: int, mask_size: int,
                 tokenize: Callable[[Sequence[str], np.ndarray], dict[str, np.ndarray]],
                 features: dict[str, np.ndarray] | None = None, num_epochs: int | None = None,
                 process_index: int | None = None, process_count: int | None = None) -> pipeline.PipelineIterator:
  """Shuffled training batches {sketch, image uint8 [B,S,S,3]; label, image_index int32 [B]; box float32
  [B,4]; has_box bool [B]; sketch_mask float32 [B,M,M]; + tokenize's arrays}. Two queries of one image in a
  batch are both positives of it (the loss takes `image_index`), so duplicates never become negatives.

  features: precomputed outputs of frozen encoders ({'image_<name>': [G, ...] per image, 'sketch_<name>':
  [Q, ...] per query}); given, batches carry those rows instead of the sketch and image pixels."""
  return pipeline.build_loader(dataset, range(len(arrays)), _QueryElement(arrays, mask_size, features),
                               batch_size=batch_size, seed=seed, num_workers=0, num_threads=1,
                               num_epochs=num_epochs, strict=False, process_index=process_index,
                               process_count=process_count, finalize=Finalize(tokenize))
