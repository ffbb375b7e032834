"""On-the-fly data: every sketch at T completion levels through the frozen stage-1 model, and RL episodes.

Stage 1 (B1, `sgvu.tasks.fg_sbir`) is frozen after training, as in seed 001's
release: each level of each sketch becomes a backbone feature once, and the
photo galleries become fixed embeddings. Heads and policies learn on these.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Sequence

from absl import logging
import grain
import jax
import numpy as np

from sgvu import batching
from sgvu.data import pipeline
from sgvu.data.base import BadSample, DataError, gallery_targets


def level_fractions(levels: int) -> tuple[float, ...]:
  return tuple(round(k / levels, 6) for k in range(1, levels + 1))


@dataclasses.dataclass
class LevelData:
  """One split through the frozen stage-1 model."""
  features: np.ndarray  # [N, T, F] sketch backbone features per level
  targets: np.ndarray  # [N] row of each sketch's photo in `photos`
  photos: np.ndarray  # [P, D] photo gallery embeddings (unit norm)
  photo_labels: np.ndarray  # [P] category of each photo (negatives come from the same one)

  def arrays(self, prefix: str) -> dict[str, np.ndarray]:
    return {f"{prefix}/{k}": v for k, v in dataclasses.asdict(self).items()}

  @classmethod
  def load(cls, arrays, prefix: str) -> "LevelData":
    return cls(**{f.name: np.asarray(arrays[f"{prefix}/{f.name}"]) for f in dataclasses.fields(cls)})


def encode_images(task, params, images: np.ndarray, kind: str, *, features: bool = False) -> np.ndarray:
  """uint8 [n, S, S, 3] -> [n, *] through a stage-1 FGSBIRTask, one compiled batch shape."""
  jitted = task.jitted_encoder(kind, features)
  return batching.map_batches(lambda im: jitted(params, im), images, task.config.eval_batch_size)


def sketch_levels(task, params, split: str, items: Sequence[int], fractions: Sequence[float],
                  *, features: bool) -> tuple[np.ndarray, np.ndarray]:
  """[N, T, *] features (or embeddings) of sketches `items` at every level, and their item index [N]."""
  sp, size, chunk = task.source.split(split), task.image_size, max(1, 1024 // len(fractions))
  out, index = [], []
  for start in range(0, len(items), chunk):
    rendered = []
    for i in items[start:start + chunk]:
      try:
        rendered.append([pipeline.render_sketch(task.source, sp.sketches[i], size, f) for f in fractions])
        index.append(i)
      except BadSample as e:
        logging.warning("%s: skipping %s: %s", task.source.name, e.key, e.reason)
    if rendered:
      images = np.asarray(rendered).reshape((-1, size, size, 3))
      x = encode_images(task, params, images, "sketch", features=features)
      out.append(x.reshape((len(rendered), len(fractions)) + x.shape[1:]))
  if not out:
    raise DataError(f"{task.source.name}/{split}: no sketch could be rendered")
  return np.concatenate(out), np.asarray(index, np.int64)


def level_data(task, params, split: str, fractions: Sequence[float], *,
               max_photos: int = 0, seed: int = 0) -> LevelData:
  """A split through the frozen model; with max_photos, a random subset of its photos and their sketches."""
  t = time.perf_counter()
  sp = task.source.split(split)
  photo_items = np.arange(len(sp.photos))
  if max_photos and len(photo_items) > max_photos:
    photo_items = np.sort(np.random.default_rng(seed).permutation(len(photo_items))[:max_photos])
  photos, photo_index = [], []
  for i in photo_items:
    try:
      photos.append(pipeline.load_photo(task.source, sp.photos[i], task.image_size))
      photo_index.append(i)
    except BadSample as e:
      logging.warning("%s: skipping %s: %s", task.source.name, e.key, e.reason)
  photo_index = np.asarray(photo_index, np.int64)
  gallery = encode_images(task, params, np.stack(photos), "photo")
  wanted = set(photo_index.tolist())
  items = [i for i, s in enumerate(sp.sketches) if s.photo is not None and int(s.photo) in wanted]
  feats, sketch_index = sketch_levels(task, params, split, items, fractions, features=True)
  keep, targets = gallery_targets(sp, sketch_index, photo_index)
  labels = np.asarray([sp.photos[int(i)].label for i in photo_index], np.int32)
  logging.info("%s: %d sketches x %d levels, gallery of %d photos (%.0fs)", split, len(keep), len(fractions),
               len(gallery), time.perf_counter() - t)
  return LevelData(feats[keep].astype(np.float32), targets, gallery.astype(np.float32), labels)


class _Episodes:
  """sketch row -> {features [T, F], target, negative (another photo of the same category)}."""

  def __init__(self, data: LevelData):
    self.data = data
    self.by_label = {int(l): np.flatnonzero(data.photo_labels == l) for l in np.unique(data.photo_labels)}

  def __call__(self, i: int, rng: np.random.Generator):
    target = int(self.data.targets[i])
    same = self.by_label[int(self.data.photo_labels[target])]
    pool = same if len(same) > 1 else np.arange(len(self.data.photos))
    negative = target
    while negative == target:
      negative = int(pool[rng.integers(len(pool))])
    return {"features": self.data.features[i], "target": np.int32(target), "negative": np.int32(negative)}


def episode_iterator(data: LevelData, batch_size: int, seed: int):
  """Checkpointable grain iterator over this process's share of the sketches."""
  pi, pc = jax.process_index(), jax.process_count()
  ds = grain.MapDataset.range(len(data.targets)).shuffle(seed=seed).repeat()[pi::pc]
  ds = ds.random_map(_Episodes(data), seed=seed)
  return iter(ds.to_iter_dataset().batch(batch_size, drop_remainder=True))


