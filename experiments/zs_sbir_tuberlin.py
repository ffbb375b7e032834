"""Zero-shot SBIR with CLIP prompts (seed 004) on TU-Berlin + photos, the paper's setting.

  python -m sgvu.main --config=experiments/zs_sbir_tuberlin.py \
      --config.model.clip_init=hf:/models/clip-vit-base-patch32 --config.data.root=/data/TUBerlin

220 seen classes for training, the standard 30 unseen (SAKE) for evaluation;
see docs/real_data.md. `:tiny` is the test variant.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zs_sbir_sketchy  # noqa: E402  (the shared seed-004 setting)

del sys.path[0]

VARIANTS = zs_sbir_sketchy.VARIANTS


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  # 220 seen classes x 80 sketches = 17.6k: ~92 steps an epoch at batch 192.
  return zs_sbir_sketchy.paper_config("tuberlin", "zs_sbir_tuberlin", arg, methods=zs_sbir_sketchy.METHODS,
                                      grid_method="ours", num_steps=1000)
