"""Sketch-guided localization on PASCAL VOC 2007 + QuickDraw in the CMA paper's settings (seed 000; real data).

  python -m sgvu.main --config=experiments/localization_voc.py \
      --config.data.root=/data/VOCdevkit --config.data.options.sketch_root=/data/quickdraw

The release's 10 VOC classes that are QuickDraw classes (bicycle, bird, bus, car, cat, chair, cow, dog, horse,
sheep), unseen bicycle, cat, horse; train on trainval, test on test; 'difficult' boxes neither hit nor miss.
The model and optimisation are localization_coco.py's (experiments/blocks/localization.py: add_localization_paper). Scored with pycocotools' COCO AP (the paper reports
VOC07 11-point AP@0.5; AP@50 here is COCO's 101-point interpolation of the same matches).
"""

import ml_collections

from experiments import blocks


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = blocks.experiment("localization", "localization_voc", arg)
  c.methods = ("faster-rcnn", "cma", "vit")
  c = blocks.add_localization_paper(blocks.add_localization(c, arg), "voc", {"difficult": "ignore"})
  c.data.max_boxes = 48  # VOC 2007 images hold up to 42 boxes
  c.cma_train.num_steps = c.vit_train.num_steps = 30 * 2_500 // 10  # ~30 epochs of one pair per trainval image
  return c
