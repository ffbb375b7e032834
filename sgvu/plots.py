"""Figures drawn with matplotlib (Agg: files only, no display): curves with their seed-variance bands.

Image grids stay in PIL (sgvu.viz); anything with axes, ticks and legends is drawn here.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only: servers and CI have no display

import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

COMPLETION_PANELS = (("percentile", "ranking percentile"), ("reciprocal_rank", "1 / rank"))


def mean_and_std(per_seed: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
  """Mean and population std over seeds (the tables' convention) of equal-length curves."""
  values = np.asarray(per_seed, np.float64)
  if values.ndim != 2 or not len(values):
    raise ValueError(f"expected [seeds, points] curves, got shape {values.shape}")
  return values.mean(axis=0), values.std(axis=0)


def completion_curves(curves: Mapping[str, Sequence[Mapping[str, Sequence[float]]]], fractions: Sequence[float],
                      path: str, *, title: str = "") -> None:
  """PNG: ranking percentile and 1/rank against sketch completion; per method the mean over its seeds as a
  line and mean +- std as a band (no band for a single seed).

  curves: {method: [per seed: {"percentile": [T], "reciprocal_rank": [T]}]}; fractions [T] in (0, 1].
  """
  xs = 100.0 * np.asarray(fractions, np.float64)
  fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
  cmap = plt.get_cmap("tab10")
  for ax, (key, label) in zip(axes, COMPLETION_PANELS):
    for n, (method, seeds) in enumerate(curves.items()):
      mean, std = mean_and_std([s[key] for s in seeds])
      if len(mean) != len(xs):
        raise ValueError(f"{method}: {len(mean)} {key} points for {len(xs)} completion levels")
      colour = cmap(n % 10)
      ax.plot(xs, mean, color=colour, lw=1.6, label=f"{method} ({len(seeds)} seed{'s' * (len(seeds) > 1)})")
      if len(seeds) > 1:
        ax.fill_between(xs, mean - std, mean + std, color=colour, alpha=0.18, lw=0)
    ax.set_xlabel("sketch completion (% of its points drawn)")
    ax.set_ylabel(label)
    ax.set_title(f"{label} vs sketch completion", fontsize=10)
    ax.set_xlim(0, 100)
    ax.grid(alpha=0.3)
  handles, labels = axes[0].get_legend_handles_labels()
  fig.legend(handles, labels, loc="lower center", ncol=min(5, len(labels)), fontsize=8, frameon=False)
  if title:
    fig.suptitle(title + "   (bands: mean +- std over training seeds)", fontsize=10)
  rows = -(-len(labels) // 5)
  fig.tight_layout(rect=(0, 0.04 + 0.045 * rows, 1, 0.95 if title else 1))
  fig.savefig(path, dpi=110)
  plt.close(fig)
