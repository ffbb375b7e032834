"""Measures SynthSketch generation speed on one core (or N worker processes).

    python -m sgvu.data.synth.speed --n 300 --sizes 64,224 --workers 1

Single-process rates use CPU time (time.process_time), so other jobs sharing
the machine do not distort them; the multi-worker rate is wall-clock.
'cold' items are seen for the first time (instance geometry and sketch
strokes are built); 'warm' ones come from the per-instance cache, as in every
epoch after the first.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time

from sgvu.data import strokes as strokes_lib
from sgvu.data.synth.world import SynthSketch


def _pairs(args: tuple[int, int, int, int]) -> int:
  """Renders sketch+photo pairs (the training-pipeline unit of work)."""
  seed, start, n, size = args
  world = SynthSketch(seed=seed, protocol="instance", photos_per_category=200, sketches_per_photo=1)
  sketches = world.split("train").sketches
  for s in sketches[start:start + n]:
    world.load_photo(world.split("train").photos[s.photo], size)
    strokes_lib.render_strokes(world.load_sketch(s).strokes, size)
  return n


def measure(n: int, size: int) -> dict[str, float]:
  world = SynthSketch(seed=0, protocol="instance", photos_per_category=200, sketches_per_photo=1)
  sp = world.split("train")
  photos, sketches = sp.photos[:n], sp.sketches[:n]
  out = {}
  t = time.process_time()
  for p in photos:
    world.load_photo(p, size)
  out["photos/s cold"] = n / (time.process_time() - t)
  t = time.process_time()
  for p in photos:
    world.load_photo(p, size)
  out["photos/s warm"] = n / (time.process_time() - t)
  t = time.process_time()
  loaded = [world.load_sketch(s).strokes for s in sketches]
  out["sketch strokes/s cold"] = n / (time.process_time() - t)
  t = time.process_time()
  for strokes in loaded:
    strokes_lib.render_strokes(strokes, size)
  out["sketch renders/s"] = n / (time.process_time() - t)
  return out


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__)
  ap.add_argument("--n", type=int, default=300)
  ap.add_argument("--sizes", default="64,224")
  ap.add_argument("--workers", type=int, default=1)
  args = ap.parse_args()
  for size in (int(s) for s in args.sizes.split(",")):
    if args.workers <= 1:
      for k, v in measure(args.n, size).items():
        print(f"size {size:4d}  {k:22s} {v:8.1f}")
    else:
      chunks = [(0, i * args.n, args.n, size) for i in range(args.workers)]
      with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        pool.map(_pairs, [(0, 0, 2, size)] * args.workers)  # start-up and imports, not timed
        t = time.perf_counter()
        done = sum(pool.map(_pairs, chunks))
      print(f"size {size:4d}  cold sketch+photo pairs/s on {args.workers} workers: {done / (time.perf_counter() - t):8.1f}")


if __name__ == "__main__":
  main()
