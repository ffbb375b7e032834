"""CSTBIR with STNet (seed 000) on the release's data: Visual Genome scenes, QuickDraw sketches.

  python -m sgvu.main --config=experiments/cstbir_vg.py \
      --config.model.clip_init=hf:/models/clip-vit-base-patch16 --config.data.root=/data/CSTBIR

`data.root` holds the release's CSV (`split,text,object_category,image_filename,sketch_filename`), `images/`
and `sketches/` (docs/composed.md). Scored on Test-1K, Test-5K and the open-category split. `:small` is the
smoke test (tests/test_composed_tasks.py runs it on fixture files and a tiny random transformers CLIP).
"""

import ml_collections

from experiments import blocks


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = blocks.experiment("cstbir", "cstbir_vg", arg)
  c.methods = blocks.CSTBIR_METHODS
  return blocks.add_cstbir_paper(c, arg)
