"""Seed 004's ablations of its category-level method on SynthSketch: LayerNorm tuning and the
classification term, against ours and frozen CLIP, three seeds per row.

  python -m sgvu.main --config=experiments/zs_sbir_ablations.py
  python -m sgvu.main --config=experiments/zs_sbir_ablations.py:small   # a smoke test

The same settings as experiments/zs_sbir.py (one table there: ours, the baselines); the
fine-grained ablations (patch shuffling, f-divergence) are rows of experiments/fg_zs_sbir.py.
"""

import ml_collections

from experiments import blocks


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = blocks.experiment("zs_sbir", "zs_sbir_ablations", arg, seeds=1 if arg else 3)
  c.methods = ("frozen", "ours", "ours-no-layernorm", "ours-no-cls")
  return blocks.add_zs_sbir(c, arg)
