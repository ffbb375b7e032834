"""Zero-shot SBIR with CLIP prompts (seed 004) on QuickDraw (Doodle2Search's 110 classes), the paper's setting.

  python -m sgvu.main --config=experiments/zs_sbir_quickdraw.py \
      --config.model.clip_init=hf:/models/clip-vit-base-patch32 --config.data.root=/data/QuickDraw

80 seen classes for training, Doodle2Search's 30 unseen for evaluation; the
vector sketches are rendered at the CLIP's resolution. See docs/real_data.md.
`:tiny` is the test variant.
"""

import os
import sys

import ml_collections

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zs_sbir_sketchy  # noqa: E402  (the shared seed-004 setting)

del sys.path[0]

VARIANTS = zs_sbir_sketchy.VARIANTS


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  # The simplified ndjson files hold ~100k+ sketches a class: steps, not epochs, bound the run.
  return zs_sbir_sketchy.paper_config("quickdraw", "zs_sbir_quickdraw", arg, methods=zs_sbir_sketchy.METHODS,
                                      grid_method="ours", num_steps=3000)
