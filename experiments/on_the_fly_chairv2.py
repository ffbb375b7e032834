"""On-the-fly FG-SBIR (seed 001) on QMUL-Chair-V2: 100 test photos, the paper's Chair-V2 columns.

  python -m sgvu.main --config=experiments/on_the_fly_chairv2.py \
      --config.model.clip_init=hf:/models/clip-vit-base-patch32 --config.data.root=/data/qmul

Reads <root>/ChairV2/ChairV2_Coordinate and <root>/ChairV2/photo/ (docs/datasets.md).
"""

import ml_collections

from experiments import on_the_fly

VARIANTS = on_the_fly.VARIANTS


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  return on_the_fly.qmul_config("chairv2", "on_the_fly_chairv2", arg, fg_steps=1500, rl_steps=1000)
