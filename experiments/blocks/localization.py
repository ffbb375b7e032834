"""Sketch-guided localization blocks (seed 000): SynthSketch scenes and the paper settings on COCO / VOC."""

from __future__ import annotations

import ml_collections

from experiments.blocks.common import optim_config, train_config


def add_localization(c: ml_collections.ConfigDict, arg: str) -> ml_collections.ConfigDict:
  """Sketch-guided localization on SynthSketch scenes (sgvu/tasks/localization.py): data, models, losses, training."""
  small = arg == "small"
  c.data = ml_collections.ConfigDict()
  c.data.dataset = "synth"  # sgvu.data.registry.LOCALIZATION_DATASETS: synth | coco | voc
  c.data.root = ""
  c.data.tfds_data_dir = ""  # or the TFDS copy of root (+ sketch_root) made by python -m sgvu.tools.build_tfds
  c.data.short_side = 128  # images are resized to this short side, long side at most max_side,
  c.data.max_side = 128  # and pasted on a max_side x max_side canvas (static shapes)
  c.data.max_boxes = 8  # boxes per image after padding (more is an error naming the image)
  c.data.sketch_size = 64
  c.data.queries = "each"  # one training query per (image, category present); 'one': one per image
  c.data.train_split = "train"
  c.data.num_workers = 0
  c.data.strict = False
  # The reader's own options (sgvu.data.synth_localization.SynthLocalization).
  c.data.options = ml_collections.ConfigDict({
      "seed": 0, "image_size": 128, "num_objects": (2, 4), "num_scenes": (40, 10, 30) if small else (600, 100, 200),
      "query_instances": (10, 5, 5) if small else (200, 50, 50), "sketches_per_instance": 3, "materialize": True})

  c.model = ml_collections.ConfigDict({"init": ""})  # an .npz of '/'-joined parameter paths (pretrained weights)
  # Regexes of parameter paths that do not train, per model family ('cma', 'locformer').
  c.frozen_params = ml_collections.ConfigDict({"cma": (), "locformer": ()})

  # CMAConfig fields (sgvu/models/cma.py); use_attention and num_sketches come from the row.
  c.cma = ml_collections.ConfigDict({
      "backbone": "cnn", "cnn_widths": (16, 32, 64, 64), "feature_stride": 8, "batchnorm": "train",
      "attention_batchnorm": "train", "anchor_sizes": (16.0, 32.0, 64.0), "anchor_ratios": (0.5, 1.0, 2.0),
      "rpn_dim": 64, "head_dim": 128, "rpn_pre_nms_train": 300, "rpn_post_nms_train": 64,
      "rpn_pre_nms_test": 300, "rpn_post_nms_test": 50, "rpn_batch": 128, "num_rois": 64,
      "sketch_fusion": "attention_mean", "detections_per_image": 50})
  # The release's loss: every term weight 1, the margin-ranking loss x3 (m+ 0.7, m- 0.3); 'mean' over RoI pairs.
  c.loss = ml_collections.ConfigDict({"rpn_cls": 1.0, "rpn_box": 1.0, "region_cls": 1.0, "region_box": 1.0,
                                      "margin_weight": 3.0, "margin_reduction": "mean"})

  # LocFormerConfig fields (sgvu/models/locformer.py); image_size, sketch.image_size, num_sketches are set.
  c.locformer = ml_collections.ConfigDict({
      "patch_size": 16, "width": 128, "stage_depths": (1, 1, 1), "heads": 4, "mlp_dim": 256, "cross_heads": 4,
      "num_queries": 10, "decoder_layers": 2, "decoder_heads": 4, "decoder_mlp_dim": 256,
      "sketch": {"patch_size": 8, "width": 96, "layers": 2, "heads": 3, "mlp_dim": 192, "embed_dim": 128}})
  if small:  # one stage and one decoder layer: the smoke test's compile time (its numbers mean nothing anyway)
    c.locformer.stage_depths, c.locformer.decoder_layers = (1,), 1
  c.set_loss = ml_collections.ConfigDict({"cost_class": 2.0, "cost_l1": 5.0, "cost_giou": 2.0, "class_weight": 2.0,
                                          "l1_weight": 5.0, "giou_weight": 2.0, "focal_alpha": 0.25,
                                          "focal_gamma": 2.0, "aux_weight": 1.0})

  # 150 steps: the 15-minute budget of 18 trainings (6 rows x 3 seeds; 200 steps took 16.6 min).
  steps = 6 if small else 150
  c.cma_train = train_config(batch_size=8, num_steps=steps, log_every=25, checkpoint_every=500)
  # Learning rates chosen on the validation scenes (docs/localization.md).
  c.cma_train.optim = optim_config(name="adam", lr=1e-3, schedule="cosine", warmup_steps=20, grad_clip_norm=10.0)
  c.vit_train = train_config(batch_size=8, num_steps=steps, log_every=25, checkpoint_every=500)
  c.vit_train.optim = optim_config(name="adamw", lr=1e-3, weight_decay=1e-4, schedule="cosine", warmup_steps=20,
                                   grad_clip_norm=0.1)

  c.eval_batch_size = 16
  # area_scale 128 / 640: COCO's small / medium / large limits for a 128 px image (sgvu.metrics.coco_ap).
  c.evals = ml_collections.ConfigDict({"localization": {
      "type": "localization", "splits": {"seen": "test_seen", "unseen": "test_unseen"},
      "metrics": ("AP", "AP@50", "AP_L"), "area_scale": 0.2}})
  return c


def add_localization_paper(c: ml_collections.ConfigDict, dataset: str, options: dict) -> ml_collections.ConfigDict:
  """Real data (COCO / VOC + QuickDraw) in the CMA release's settings; `options` are the reader's."""
  c.seeds = 1
  c.data.dataset = dataset
  # The release's short side 600, long side at most 1000; here at most 1008, since the static canvas must be a
  # multiple of the stride-16 features (1000 failed validation for the faster-rcnn row).
  c.data.short_side, c.data.max_side = 600, 1008
  c.data.sketch_size = 256  # the release's QuickDraw renders
  c.data.queries = "one"  # the release's training pairs: one query per image
  c.data.num_workers = 8
  c.data.options = ml_collections.ConfigDict({"sketch_root": "", "seed": 0, "max_sketches_per_class": 24000,
                                              "recognized_only": True, **options})
  c.cma = ml_collections.ConfigDict({
      "backbone": "resnet50", "feature_stride": 16, "batchnorm": "frozen", "attention_batchnorm": "train",
      "anchor_sizes": (64.0, 128.0, 256.0, 512.0), "anchor_ratios": (0.5, 1.0, 2.0), "rpn_dim": 512,
      "rpn_pre_nms_train": 12000, "rpn_post_nms_train": 2000, "rpn_pre_nms_test": 6000, "rpn_post_nms_test": 300,
      "rpn_nms_threshold": 0.7, "detect_nms_threshold": 0.3, "num_rois": 128, "roi_fg_fraction": 0.25,
      "head_dim": 2048, "sketch_fusion": "conv", "detections_per_image": 100})
  c.frozen_params.cma = (r"img/conv1/.*", r"img/layer1_.*", r"img/layer2_.*")  # the release's frozen stages
  c.cma_train = ml_collections.ConfigDict(c.cma_train.to_dict())
  c.cma_train.batch_size = 10
  c.cma_train.num_steps = 30 * 11_700 // 10  # COCO: ~30 epochs of one pair per train image with a query (~117k)
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
  c.evals.localization.area_scale = 1.0  # COCO's own size limits
  return c
