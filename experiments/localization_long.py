"""The CMA paper's two ideas trained ~7x longer than the 15-minute table: a 2 x 2 on SynthSketch scenes.

  python -m sgvu.main --config=experiments/localization_long.py       # ~40 min on a 2-core machine

Rows faster-rcnn (neither idea), cma-no-attention (margin ranking only), cma-no-ranking (cross-modal attention
only) and cma (both), 1000 steps each, three seeds; everything else is experiments/localization.py. At the
default table's 150 steps no CNN row separates from another; on the validation scenes, 1000 steps lift
faster-rcnn to AP 0.24 and cma to 0.33 (docs/localization.md).
"""

import ml_collections

from experiments import blocks


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = blocks.experiment("localization", "localization_long", arg, seeds=1 if arg == "small" else 3)
  c.methods = ("faster-rcnn", "cma-no-attention", "cma-no-ranking", "cma")
  c = blocks.add_localization(c, arg)
  if arg != "small":
    c.cma_train.num_steps = c.vit_train.num_steps = 1000
    c.cma_train.checkpoint_every = c.vit_train.checkpoint_every = 250
  return c
