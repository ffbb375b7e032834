"""On-the-fly FG-SBIR metrics (seed 001, "Sketch Less for More") and the Kendall-tau distance.

Input: `ranks` [num_sketches, num_levels], the 1-indexed rank of each sketch's
true photo in a gallery of G photos after each completion level (the last
level is the complete sketch), e.g. from `sgvu.metrics.retrieval.ranks`.

- m@A: mean over sketches of the mean over levels of the ranking percentile
  (G - rank) / (G - 1)  (1 at rank 1, 0 at rank G): the area under the
  percentile-vs-completion curve.
- m@B: the same with 1 / rank.
- A@K: share of sketches whose photo is within the top K at the last level.
All are fractions in [0, 1] (the paper prints them x100).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def _check_ranks(ranks, gallery_size: int) -> np.ndarray:
  if isinstance(gallery_size, bool) or not isinstance(gallery_size, (int, np.integer)) or gallery_size < 2:
    raise ValueError(f"gallery_size must be an integer >= 2 (the percentile divides by G - 1), got {gallery_size!r}")
  ranks = np.asarray(ranks)
  if ranks.ndim != 2 or ranks.shape[0] == 0 or ranks.shape[1] == 0:
    raise ValueError(f"ranks must be a non-empty 2-D array [num_sketches, num_levels], got shape {ranks.shape}")
  if not np.issubdtype(ranks.dtype, np.integer):
    if not np.all(np.isfinite(ranks)) or np.any(ranks != np.round(ranks)):
      raise ValueError(f"ranks must be integers (1-indexed), got dtype {ranks.dtype} with non-integer values")
  if ranks.min() < 1 or ranks.max() > gallery_size:
    raise ValueError(f"ranks must lie in [1, gallery_size={gallery_size}], got values in [{ranks.min()}, {ranks.max()}]")
  return ranks.astype(np.float64)


def on_the_fly_curves(ranks, gallery_size: int) -> dict[str, np.ndarray]:
  """Per-level means for plotting against completion: `percentile` and `reciprocal_rank`, each [num_levels]."""
  ranks = _check_ranks(ranks, gallery_size)
  return {"percentile": np.mean((gallery_size - ranks) / (gallery_size - 1), axis=0),
          "reciprocal_rank": np.mean(1.0 / ranks, axis=0)}


def on_the_fly_metrics(ranks, gallery_size: int, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
  """`m@A`, `m@B` and `A@K` for K in `ks` (at the complete sketch)."""
  curves = on_the_fly_curves(ranks, gallery_size)
  last = np.asarray(ranks)[:, -1]
  out = {"m@A": float(np.mean(curves["percentile"])), "m@B": float(np.mean(curves["reciprocal_rank"]))}
  for k in ks:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
      raise ValueError(f"ks must be positive integers, got {k!r} in {tuple(ks)}")
    out[f"A@{k}"] = float(np.mean(last <= k))
  return out


def kendall_tau_distance(rank_list_a: jax.Array, rank_list_b: jax.Array) -> jax.Array:
  """Normalised Kendall-tau distance between two rankings of the same G items (jittable).

  `rank_list_a[..., i]` is item i's position in ranking A (any values where
  lower = ranked earlier work: ranks, distances; use `ordering_to_ranks` for a
  best-first list of item ids). Returns, per leading index, the number of item
  pairs (i, j) that A and B order strictly oppositely, divided by G (G - 1) / 2:
  0 for the same order, 1 for the reversed order. A pair tied in either ranking
  is not discordant. O(G^2) memory per ranking (fine for PPO galleries of
  hundreds to a few thousand photos).
  """
  a, b = jnp.asarray(rank_list_a), jnp.asarray(rank_list_b)
  if a.shape != b.shape:
    raise ValueError(f"rank_list_a has shape {a.shape} but rank_list_b has shape {b.shape}")
  if a.ndim == 0 or a.shape[-1] < 2:
    raise ValueError(f"rankings need at least 2 items on the last axis, got shape {a.shape}")
  num = a.shape[-1]
  # Signs, not differences: integer ranks cannot overflow, floats cannot underflow.
  order_a = jnp.sign(a[..., :, None] - a[..., None, :])
  order_b = jnp.sign(b[..., :, None] - b[..., None, :])
  discordant = jnp.sum(order_a * order_b < 0, axis=(-2, -1), dtype=jnp.int32) // 2  # each pair counted twice
  return discordant / (num * (num - 1) / 2)


def ordering_to_ranks(ordering: jax.Array) -> jax.Array:
  """Best-first list of item ids [..., G] -> 0-indexed position of each item [..., G] (jittable)."""
  ordering = jnp.asarray(ordering)
  return jnp.argsort(ordering, axis=-1)
