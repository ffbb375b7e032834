"""Sketch-guided localization on PASCAL VOC 2007 + QuickDraw in the CMA paper's settings (seed 000; real data).

  python -m sgvu.main --config=experiments/localization_voc.py \
      --config.data.root=/data/VOCdevkit --config.data.options.sketch_root=/data/quickdraw

The release's 10 VOC classes that are QuickDraw classes (bicycle, bird, bus, car, cat, chair, cow, dog, horse,
sheep), unseen bicycle, cat, horse; train on trainval, test on test; 'difficult' boxes neither hit nor miss.
The model and optimisation are localization_coco.py's. Scored with pycocotools' COCO AP (the paper reports
VOC07 11-point AP@0.5; AP@50 here is COCO's 101-point interpolation of the same matches).
"""

import ml_collections

from experiments import localization, localization_coco


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = localization.get_config(arg)
  c.name = "localization_voc" + ("_small" if arg == "small" else "")
  c.methods = ("faster-rcnn", "cma", "vit")
  c.seeds = 1
  c.data.dataset = "voc"
  c.data.short_side, c.data.max_side = 600, 1000
  c.data.max_boxes = 48  # VOC 2007 images hold up to 42 boxes
  c.data.sketch_size = 256
  c.data.queries = "one"
  c.data.num_workers = 8
  c.data.options = ml_collections.ConfigDict({"sketch_root": "", "difficult": "ignore", "seed": 0,
                                              "max_sketches_per_class": 24000, "recognized_only": True})
  localization_coco.set_paper_model(c)
  c.cma_train.num_steps = 30 * 2_500 // 10  # ~30 epochs of one pair per trainval image with a query (~2.5k)
  c.vit_train.num_steps = c.cma_train.num_steps
  c.evals.localization.area_scale = 1.0
  return c
