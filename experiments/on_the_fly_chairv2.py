"""On-the-fly FG-SBIR (seed 001) on QMUL-Chair-V2: 100 test photos, the paper's Chair-V2 columns.

  python -m sgvu.main --config=experiments/on_the_fly_chairv2.py \
      --config.model.clip_init=hf:/models/clip-vit-base-patch32 --config.data.root=/data/qmul

Reads <root>/ChairV2/ChairV2_Coordinate and <root>/ChairV2/photo/ (docs/datasets.md).
"""

import ml_collections

from experiments import blocks


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = blocks.experiment("on_the_fly", "on_the_fly_chairv2", arg)
  c.methods = blocks.ON_THE_FLY_METHODS
  blocks.add_fg_sbir(c, arg)
  blocks.add_on_the_fly(c, arg)
  return blocks.add_qmul(c, "chairv2", arg, fg_steps=1500, rl_steps=1000)
