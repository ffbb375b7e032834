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
  small = arg == "small"
  c = blocks.experiment("localization", "localization", arg, seeds=1 if small else 3)
  c.methods = ("faster-rcnn", "cma-no-attention", "cma-no-ranking", "cma", "cma-3-sketches", "vit")

  c.data = ml_collections.ConfigDict()
  c.data.dataset = "synth"  # sgvu.data.registry.LOCALIZATION_DATASETS: synth | coco | voc
  c.data.root = ""
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
  c.cma_train = blocks.train_config(batch_size=8, num_steps=steps, log_every=25, checkpoint_every=500)
  # Learning rates chosen on the validation scenes (docs/localization.md).
  c.cma_train.optim = blocks.optim_config(name="adam", lr=1e-3, schedule="cosine", warmup_steps=20,
                                          grad_clip_norm=10.0)
  c.vit_train = blocks.train_config(batch_size=8, num_steps=steps, log_every=25, checkpoint_every=500)
  c.vit_train.optim = blocks.optim_config(name="adamw", lr=1e-3, weight_decay=1e-4, schedule="cosine",
                                          warmup_steps=20, grad_clip_norm=0.1)

  c.eval_batch_size = 16
  # area_scale 128 / 640: COCO's small / medium / large limits for a 128 px image (sgvu.metrics.coco_ap).
  c.evals = ml_collections.ConfigDict({"localization": {
      "type": "localization", "splits": {"seen": "test_seen", "unseen": "test_unseen"},
      "metrics": ("AP", "AP@50", "AP_L"), "area_scale": 0.2}})
  return c
