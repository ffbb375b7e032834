"""Eval curves of every row of a table workdir, from each row's metrics.jsonl.

  python -m sgvu.tools.curves --workdir runs/val/zs_sbir [--metric mAP@all]

Prints, per row and seed, the metric at every evaluated step (train with
`--config.<stage>.eval_every=N`), and per row the step where the seed-mean is
best: how steps and learning rates are chosen on a validation split
(`--config.data.holdout=...`).
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import sys


def read_curves(workdir: str, metric: str) -> dict[str, dict[int, dict[int, float]]]:
  """{row: {seed: {step: value}}} from WORKDIR/<row>/seed<k>/metrics.jsonl eval records."""
  curves: dict[str, dict[int, dict[int, float]]] = collections.defaultdict(dict)
  for path in sorted(glob.glob(os.path.join(workdir, "*", "seed*", "metrics.jsonl"))):
    row, seed = path.split(os.sep)[-3], int(path.split(os.sep)[-2][len("seed"):])
    points = {}
    with open(path) as f:
      for line in f:
        try:
          record = json.loads(line)
        except json.JSONDecodeError:
          continue  # a line cut by a kill: the rest of the file is still good
        value = record.get("eval", {}).get(metric)
        if value is not None:
          points[int(record["step"])] = float(value)
    if points:
      curves[row][seed] = points
  return dict(curves)


def best_step(seeds: dict[int, dict[int, float]]) -> tuple[int, float]:
  """(step, seed-mean) of the best seed-mean over the steps every seed evaluated."""
  steps = set.intersection(*(set(p) for p in seeds.values()))
  means = {s: sum(p[s] for p in seeds.values()) / len(seeds) for s in steps}
  step = max(means, key=lambda s: (means[s], -s))
  return step, means[step]


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--workdir", required=True)
  ap.add_argument("--metric", default="mAP@all")
  args = ap.parse_args(argv)
  curves = read_curves(args.workdir, args.metric)
  if not curves:
    print(f"error: no eval records of {args.metric!r} under {args.workdir}/<row>/seed<k>/metrics.jsonl",
          file=sys.stderr)
    return 2
  for row, seeds in curves.items():
    for seed, points in sorted(seeds.items()):
      print(f"{row} seed{seed}: " + "  ".join(f"{s}:{v:.4f}" for s, v in sorted(points.items())))
    step, mean = best_step(seeds)
    print(f"{row}: best {args.metric} {mean:.4f} at step {step}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
