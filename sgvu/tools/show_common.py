"""What show_data and show_data_more share: progress lines, the round-robin pick of what to draw, stacking."""

from __future__ import annotations

import sys
import time

import numpy as np
from PIL import Image


class Progress:
  """'[train photos] 120/360 33% 40.1/s ETA 6s' on stderr, at most every `every` seconds."""

  def __init__(self, label: str, total: int, every: float = 2.0, stream=None):
    self.label, self.total, self.every = label, total, every
    self.stream = stream or sys.stderr
    self.start = self.last = time.time()

  def update(self, done: int) -> None:
    now = time.time()
    if now - self.last < self.every and done < self.total:
      return
    self.last = now
    rate = done / max(now - self.start, 1e-9)
    eta = (self.total - done) / rate if rate > 0 else float("inf")
    pct = 100.0 * done / max(self.total, 1)
    print(f"[{self.label}] {done}/{self.total} {pct:.0f}% {rate:.1f}/s ETA {_duration(eta)}",
          file=self.stream, flush=True)


def _duration(seconds: float) -> str:
  if seconds == float("inf"):
    return "?"
  seconds = int(round(seconds))
  return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def round_robin(labels, count: int, seed: int) -> list[int]:
  """`count` indices into `labels`, one per label first (round robin over the labels in order), deterministic."""
  rng = np.random.default_rng(seed)
  by_label: dict[int, list[int]] = {}
  for i, label in enumerate(labels):
    by_label.setdefault(int(label), []).append(i)
  pools = [list(rng.permutation(v)) for _, v in sorted(by_label.items())]
  out = []
  while len(out) < count and any(pools):
    for pool in pools:
      if pool and len(out) < count:
        out.append(int(pool.pop()))
  return out


def stack(sections: list[Image.Image], path: str, gap: int = 8) -> Image.Image:
  """The pictures one under another (left-aligned, `gap` px apart) on white, saved to `path`."""
  grid = Image.new("RGB", (max(s.width for s in sections), sum(s.height + gap for s in sections)), "white")
  y = 0
  for s in sections:
    grid.paste(s, (0, y))
    y += s.height + gap
  grid.save(path)
  return grid
