"""On-the-fly retrieval (seed 001): every test sketch at every completion level against a fixed gallery."""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sgvu import metrics


def score_levels(embeds: np.ndarray, targets: np.ndarray, gallery: np.ndarray,
                 ks: Sequence[int] = (1, 5, 10)) -> tuple[dict[str, float], dict[str, list[float]], np.ndarray]:
  """(m@A / m@B / A@K, per-level curves, ranks [N, T]) of per-level embeddings [N, T, D]."""
  n, t, d = embeds.shape
  ranks = metrics.ranks(embeds.reshape(n * t, d), np.repeat(np.asarray(targets, np.int32), t), gallery)
  ranks = ranks.reshape(n, t)
  result = metrics.on_the_fly_metrics(ranks, len(gallery), ks=ks)
  curves = {k: v.tolist() for k, v in metrics.on_the_fly_curves(ranks, len(gallery)).items()}
  return result, curves, ranks


class OnTheFly:
  """m@A, m@B, A@K and the per-level curves of `embed_levels(params, features [N, T, F]) -> [N, T, D]`.

  `levels` holds the test split through the frozen stage-1 model: features
  [N, T, F], targets [N] (gallery row of each sketch's photo), photos [G, D].
  """

  def __init__(self, predict_fns, *, levels, ks: Sequence[int] = (1, 5, 10), curves: bool = True):
    if "embed_levels" not in predict_fns:
      raise ValueError(f"on_the_fly needs the predict function 'embed_levels'; the task gives {sorted(predict_fns)}")
    self.embed_levels = jax.jit(predict_fns["embed_levels"])
    self.levels, self.ks, self.curves = levels, tuple(ks), curves

  def embeddings(self, params) -> np.ndarray:
    return np.asarray(self.embed_levels(params, jnp.asarray(self.levels.features)))

  def score(self, embeds: np.ndarray) -> dict:
    result, curves, _ = score_levels(embeds, self.levels.targets, self.levels.photos, self.ks)
    return {**result, "curves": curves} if self.curves else result

  def gallery_size(self) -> int:
    return len(self.levels.photos)

  def run(self, params):
    return self.score(self.embeddings(params))
