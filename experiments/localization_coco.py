"""Sketch-guided localization on COCO 2017 + QuickDraw in the CMA paper's settings (seed 000; real data).

  python -m sgvu.main --config=experiments/localization_coco.py \
      --config.data.root=/data/coco --config.data.options.sketch_root=/data/quickdraw

The release's protocol (docs/localization.md): the 56 COCO categories that are QuickDraw classes, unseen group
1 (every 4th category, 14 unseen), training pairs one query per train2017 image (inverse-frequency draw),
evaluation one query per (val2017 image, category present), pycocotools. Model: ResNet-50 C4 image and sketch
backbones (BatchNorm frozen; conv1, layer1-2 of the image branch frozen), cross-modal attention, RPN with
anchors 4/8/16/32 x stride 16 and ratios 0.5/1/2, NMS 0.7 train / 0.3 test, 128 RoIs (25% foreground), short
side 600 (long side <= 1000), SGD 0.01 momentum 0.9 weight decay 1e-4, batch 10. Start from ImageNet /
QuickDraw weights with --config.model.init=weights.npz ('/'-joined parameter paths, torchvision's layout).
"""

import ml_collections

from experiments import blocks


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = blocks.experiment("localization", "localization_coco", arg)
  c.methods = ("faster-rcnn", "cma", "cma-3-sketches", "vit")
  c = blocks.add_localization_paper(blocks.add_localization(c, arg), "coco", {"unseen_group": 1})
  c.data.max_boxes = 100  # COCO images hold up to ~90 boxes
  return c
