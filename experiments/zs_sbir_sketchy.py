"""Zero-shot SBIR with CLIP prompts (seed 004) on Sketchy + extended photos, the paper's setting.

  python -m sgvu.main --config=experiments/zs_sbir_sketchy.py \
      --config.model.clip_init=hf:/models/clip-vit-base-patch32 --config.data.root=/data/Sketchy

Trains every method of `methods` on the 104 seen classes and evaluates on the
21 unseen ones of the standard split (docs/datasets.md); see docs/real_data.md.
`:small` (2 steps, 2 methods) is the smoke test tests/test_experiments_real.py runs.
"""

import ml_collections

from experiments import blocks


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = blocks.experiment("zs_sbir", "zs_sbir_sketchy", arg)
  # 104 seen classes, ~62k sketches: ~330 steps an epoch at batch 192.
  return blocks.add_zs_sbir_paper(c, "sketchy", arg, methods=blocks.ZS_PAPER_METHODS, num_steps=2000)
