"""Zero-shot SBIR with CLIP prompts (seed 004) on QuickDraw (Doodle2Search's 110 classes), the paper's setting.

  python -m sgvu.main --config=experiments/zs_sbir_quickdraw.py \
      --config.model.clip_init=hf:/models/clip-vit-base-patch32 --config.data.root=/data/QuickDraw

80 seen classes for training, Doodle2Search's 30 unseen for evaluation; the
vector sketches are rendered at the CLIP's resolution. See docs/real_data.md.
`:small` is the smoke test.
"""

import ml_collections

from experiments import blocks


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = blocks.experiment("zs_sbir", "zs_sbir_quickdraw", arg)
  # The simplified ndjson files hold ~100k+ sketches a class: steps, not epochs, bound the run.
  return blocks.add_zs_sbir_paper(c, "quickdraw", arg, methods=blocks.ZS_PAPER_METHODS, num_steps=3000)
