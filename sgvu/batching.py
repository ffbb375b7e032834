"""Running a jitted encoder over many images with one compiled batch shape.

Shared by tasks (frozen features), evaluators (embedding a split) and
exported bundles (gallery and query embeddings).
"""

from __future__ import annotations

import time
from typing import Callable

from absl import logging
import numpy as np

from sgvu.data import pipeline
from sgvu.data.base import DataError, Source


def pad_rows(x: np.ndarray, size: int, value=0) -> np.ndarray:
  """x padded along axis 0 to `size` rows of `value`: a short last batch keeps the compiled shape."""
  missing = size - len(x)
  if missing <= 0:
    return x
  return np.concatenate([x, np.full((missing,) + x.shape[1:], value, x.dtype)])


def map_batches(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch_size: int) -> np.ndarray:
  """fn over rows of x in batches of `batch_size` (the last one padded), concatenated: [N, ...]."""
  out = []
  for start in range(0, len(x), batch_size):
    chunk = x[start:start + batch_size]
    out.append(np.asarray(fn(pad_rows(chunk, batch_size)))[:len(chunk)])
  if not out:
    raise ValueError("map_batches: no rows")
  return np.concatenate(out)


def embed_split(encode: Callable[[np.ndarray], np.ndarray], source: Source, split: str, kind: str, *,
                image_size: int, batch_size: int, fraction: float = 1.0, strict: bool = False,
                desc: str = "") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Embeds every photo or sketch of a split: (embeddings [N, E], labels [N], item index [N]).

  `encode` maps uint8 [batch_size, S, S, 3] to [batch_size, E]; the last batch
  is padded so it compiles once. Unreadable items are skipped and logged by the
  pipeline (or raise with strict).
  """
  embeds, labels, index = [], [], []
  items = source.split(split).photos if kind == "photo" else source.split(split).sketches
  t0, done = time.perf_counter(), 0
  for batch in pipeline.eval_batches(source, split, kind, image_size=image_size, batch_size=batch_size,
                                     fraction=fraction, strict=strict):
    n = len(batch["labels"])
    embeds.append(np.asarray(encode(pad_rows(batch["images"], batch_size)))[:n])
    labels.append(batch["labels"])
    index.append(batch["index"])
    done += n
    if desc and (done == len(items) or len(embeds) % 20 == 0):
      rate = done / max(time.perf_counter() - t0, 1e-9)
      logging.info("%s: embedded %d/%d %ss (%.0f/s, ETA %.0fs)", desc, done, len(items), kind, rate,
                   (len(items) - done) / max(rate, 1e-9))
  if not embeds:
    raise DataError(f"{source.name}/{split}: no {kind} could be loaded")
  return np.concatenate(embeds), np.concatenate(labels), np.concatenate(index)
