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

from experiments import localization


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = localization.get_config(arg)
  c.name = "localization_coco" + ("_small" if arg == "small" else "")
  c.methods = ("faster-rcnn", "cma", "cma-3-sketches", "vit")
  c.seeds = 1
  c.data.dataset = "coco"
  c.data.short_side, c.data.max_side = 600, 1000
  c.data.max_boxes = 100  # COCO images hold up to ~90 boxes
  c.data.sketch_size = 256  # the release's QuickDraw renders
  c.data.queries = "one"  # the release's training pairs
  c.data.num_workers = 8
  c.data.options = ml_collections.ConfigDict({"sketch_root": "", "unseen_group": 1, "seed": 0,
                                              "max_sketches_per_class": 24000, "recognized_only": True})
  set_paper_model(c)
  c.evals.localization.area_scale = 1.0  # COCO's own size limits
  return c


def set_paper_model(c: ml_collections.ConfigDict) -> None:
  """The CMA release's model and optimisation (shared with localization_voc.py)."""
  c.cma = ml_collections.ConfigDict({
      "backbone": "resnet50", "feature_stride": 16, "batchnorm": "frozen", "attention_batchnorm": "train",
      "anchor_sizes": (64.0, 128.0, 256.0, 512.0), "anchor_ratios": (0.5, 1.0, 2.0), "rpn_dim": 512,
      "rpn_pre_nms_train": 12000, "rpn_post_nms_train": 2000, "rpn_pre_nms_test": 6000, "rpn_post_nms_test": 300,
      "rpn_nms_threshold": 0.7, "detect_nms_threshold": 0.3, "num_rois": 128, "roi_fg_fraction": 0.25,
      "head_dim": 2048, "sketch_fusion": "conv", "detections_per_image": 100})
  c.frozen_params.cma = (r"img/conv1/.*", r"img/layer1_.*", r"img/layer2_.*")  # the release's frozen stages
  c.cma_train = ml_collections.ConfigDict(c.cma_train.to_dict())
  c.cma_train.batch_size = 10
  c.cma_train.num_steps = 30 * 11_700 // 10  # ~30 epochs of one pair per train image with a query (~117k)
  c.cma_train.checkpoint_every = 2000
  c.cma_train.log_every = 100
  # SGD as the release; cosine instead of its x0.1 every 5 epochs (sgvu.optim has no step schedule).
  c.cma_train.optim = ml_collections.ConfigDict(dict(c.cma_train.optim.to_dict(), name="sgd", lr=0.01,
                                                     momentum=0.9, weight_decay=1e-4, schedule="cosine",
                                                     warmup_steps=500, grad_clip_norm=0.0))
  # LocFormer at the real image size: a ViT-S-sized backbone (the release: Swin-tiny), 100 queries.
  c.locformer = ml_collections.ConfigDict({
      "patch_size": 16, "width": 384, "stage_depths": (3, 3, 3, 3), "heads": 6, "mlp_dim": 1536, "cross_heads": 8,
      "num_queries": 100, "decoder_layers": 6, "decoder_heads": 8, "decoder_mlp_dim": 1536,
      "sketch": {"patch_size": 32, "width": 384, "layers": 6, "heads": 6, "mlp_dim": 1536, "embed_dim": 384}})
  c.vit_train = ml_collections.ConfigDict(c.cma_train.to_dict())
  c.vit_train.optim = ml_collections.ConfigDict(dict(c.vit_train.optim.to_dict(), name="adamw", lr=1e-4,
                                                     weight_decay=1e-4, warmup_steps=500, grad_clip_norm=0.1))
