"""Sketch-guided object localization (seed 000) on SynthSketch scenes: the CMA rows and the ViT variant.

  python -m sgvu.main --config=experiments/localization.py
  python -m sgvu.main --config=experiments/localization.py:small     # a smoke test (numbers mean nothing)

Rows (sgvu/tasks/localization_models.py): faster-rcnn (plain RPN, proposals scored against the sketch),
cma-no-attention (+ margin ranking), cma-no-ranking (+ cross-modal attention), cma (both), cma-3-sketches,
vit (LocFormer). Trains on queries of the 60 seen categories; scores COCO AP / AP@50 / AP_L (pycocotools) on
test scenes, separately for the seen and the 15 unseen categories (the zs_sbir split). Small from-scratch
models (a 4-stage CNN, a 3-stage ViT) sized for the 15-minute budget of a 2-core machine; the real-data
settings of the papers are experiments/localization_coco.py and localization_voc.py.
"""

import ml_collections

from experiments import blocks


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = blocks.experiment("localization", "localization", arg, seeds=1 if arg == "small" else 3)
  c.methods = ("faster-rcnn", "cma-no-attention", "cma-no-ranking", "cma", "cma-3-sketches", "vit")
  return blocks.add_localization(c, arg)
