"""Zero-shot SBIR with CLIP prompts (seed 004) on TU-Berlin + photos, the paper's setting.

  python -m sgvu.main --config=experiments/zs_sbir_tuberlin.py \
      --config.model.clip_init=hf:/models/clip-vit-base-patch32 --config.data.root=/data/TUBerlin

220 seen classes for training, the standard 30 unseen (SAKE) for evaluation;
see docs/real_data.md. `:small` is the smoke test.
"""

import ml_collections

from experiments import blocks


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = blocks.experiment("zs_sbir", "zs_sbir_tuberlin", arg)
  # 220 seen classes x 80 sketches = 17.6k: ~92 steps an epoch at batch 192.
  return blocks.add_zs_sbir_paper(c, "tuberlin", arg, methods=blocks.ZS_PAPER_METHODS, num_steps=1000)
