"""Batches of localization queries with static shapes: letterboxed images, query sketches, padded boxes.

Every image is resized so its short side is `short_side` unless its long side would pass `max_side`
(then the long side is `max_side`), as Faster R-CNN does (the papers: 600 / 1000), and pasted at the
top-left of a `max_side` x `max_side` canvas, so one jit compile serves every image. Boxes are scaled
alike; `scale` maps predictions back to the file's pixels.

A batch: images uint8 [B, max_side, max_side, 3], sketches uint8 [B, k, S, S, 3], gt_boxes float32
[B, M, 4] (canvas pixels, x1 y1 x2 y2), gt_valid bool [B, M] (every object, 'difficult' ones left
out: the class-agnostic RPN targets), gt_query bool [B, M] (the boxes to find), plus for evaluation
item int32 [B] (query index in the split), image_hw int32 [B, 2] (the file's size), scale float32 [B].

Training draws a new sketch of the query each time a query comes round (the release samples one
sketch per image per iteration); evaluation always uses draw 0, so every method sees the same queries.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
from PIL import Image

from sgvu.data import pipeline
from sgvu.data.base import BadSample, DataError
from sgvu.data.localization import LocalizationSample, LocalizationSource, LocalizationSplit

_DRAWS = 1 << 20  # distinct sketch draws per query in training


def letterbox(image: np.ndarray, boxes: np.ndarray, short_side: int, max_side: int,
              key: str = "image") -> tuple[np.ndarray, np.ndarray, float]:
  """(canvas uint8 [max_side, max_side, 3], boxes scaled, scale) of an image uint8 [H, W, 3]."""
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
    raise BadSample(key, f"image must be uint8 [H, W, 3], got {image.dtype} {image.shape}")
  h, w = image.shape[:2]
  scale = min(short_side / min(h, w), max_side / max(h, w))
  nh, nw = min(max_side, max(1, round(h * scale))), min(max_side, max(1, round(w * scale)))
  if (nh, nw) != (h, w):
    image = np.asarray(Image.fromarray(image).resize((nw, nh), Image.Resampling.BILINEAR))
  canvas = np.zeros((max_side, max_side, 3), np.uint8)
  canvas[:nh, :nw] = image
  return canvas, (np.asarray(boxes, np.float32) * np.float32(scale)).astype(np.float32), float(scale)


class QueryElement:
  """(query index, rng | None) -> one example of the batch layout above (a skip marker on bad input)."""

  def __init__(self, split: LocalizationSplit, *, short_side: int, max_side: int, max_boxes: int, train: bool):
    self.split, self.short, self.max, self.max_boxes, self.train = split, short_side, max_side, max_boxes, train

  def example(self, index: int, draw: int = 0) -> dict[str, Any]:
    sample: LocalizationSample = self.split.get(int(index), draw=draw)
    canvas, boxes, scale = letterbox(sample.image, sample.boxes, self.short, self.max, sample.key)
    t = sample.targets(self.max_boxes)
    t["boxes"][:len(boxes)] = boxes
    return {"images": canvas, "sketches": sample.sketches, "gt_boxes": t["boxes"],
            "gt_valid": t["valid"] & ~t["ignore"], "gt_query": t["is_query"], "item": np.int32(index),
            "image_hw": np.asarray(sample.image.shape[:2], np.int32), "scale": np.float32(scale)}

  def __call__(self, index: int, rng: np.random.Generator | None = None) -> dict[str, Any]:
    draw = int(rng.integers(_DRAWS)) if (self.train and rng is not None) else 0
    try:
      return self.example(index, draw)
    except BadSample as e:
      return pipeline.skip_marker(e)  # the loaders' in-band skip
    except ValueError as e:  # more boxes than max_boxes: a config error, named
      raise DataError(f"{self.split.source.name} {self.split.name} query {index}: {e}; raise max_boxes") from None


def train_loader(source: LocalizationSource, split: str, *, batch_size: int, short_side: int, max_side: int,
                 max_boxes: int, seed: int = 0, num_workers: int = 0, num_threads: int = 2,
                 strict: bool = False) -> pipeline.PipelineIterator:
  """Endless shuffled batches of `split`'s queries (grain: checkpointable, skips counted; see sgvu.data.pipeline)."""
  sp = source.split(split)
  if not len(sp):
    raise DataError(f"{source.name} {split}: no queries to train on")
  element = QueryElement(sp, short_side=short_side, max_side=max_side, max_boxes=max_boxes, train=True)
  return pipeline.build_loader(  # the one grain recipe of every loader
      f"{source.name}/{split}", list(range(len(sp))), element, batch_size=batch_size, seed=seed,
      num_workers=num_workers, num_threads=num_threads, num_epochs=None, strict=strict,
      process_index=None, process_count=None)


def eval_batches(split: LocalizationSplit, *, batch_size: int, short_side: int, max_side: int, max_boxes: int,
                 strict: bool = False, skipped: list | None = None) -> Iterator[dict[str, np.ndarray]]:
  """Every query of `split` in order, draw 0, in batches of exactly `batch_size` (one compile): the last
  batch is filled with copies of its first query and `real` [B] bool marks the queries to score. A query
  that fails to load is logged and appended to `skipped` (`strict`: raises DataError naming it)."""
  element = QueryElement(split, short_side=short_side, max_side=max_side, max_boxes=max_boxes, train=False)
  buf: list[dict[str, Any]] = []
  for i in range(len(split)):
    ex = element(i)
    if pipeline._SKIP in ex:  # pylint: disable=protected-access
      if strict:
        raise DataError(f"{split.source.name}: {ex[pipeline._SKIP]}: {ex['reason']} (strict=True)")  # pylint: disable=protected-access
      if skipped is not None:
        skipped.append((ex[pipeline._SKIP], ex["reason"]))  # pylint: disable=protected-access
      continue
    buf.append(ex)
    if len(buf) == batch_size:
      yield _stack(buf, batch_size)
      buf = []
  if buf:
    yield _stack(buf, batch_size)


def _stack(examples: list[dict[str, Any]], batch_size: int) -> dict[str, np.ndarray]:
  real = np.arange(batch_size) < len(examples)
  examples = examples + [examples[0]] * (batch_size - len(examples))
  return {**{k: np.stack([e[k] for e in examples]) for k in examples[0]}, "real": real}
