"""Composed sketch+text scene retrieval (CSTBIR) with STNet (seed 000) on SynthSketch scenes.

  python -m sgvu.main --config=experiments/cstbir.py
  python -m sgvu.main --config=experiments/cstbir.py:small   # a smoke test

A query is a sketch of one object in a scene plus the scene's caption with that object's words replaced by
a placeholder ("a * and a plain blue cup on a grassy field"); R@10/20/50/100 and the median rank of the scene
on Test-1K, Test-5K and the open-category split (sketched objects of categories never seen in training).
Rows: text-only, sketch-only, two-stage, TIRG, STNet and its loss ablations, three training seeds each.
"""

import ml_collections

from experiments import blocks


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = blocks.experiment("cstbir", "cstbir", arg, seeds=1 if arg else 3)
  c.methods = blocks.CSTBIR_METHODS
  return blocks.add_cstbir(c, arg)
