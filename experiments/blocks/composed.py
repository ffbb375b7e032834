"""Composed sketch+text retrieval blocks: CSTBIR / STNet (seed 000) and the sketch+text duet (seed 002)."""

from __future__ import annotations

import ml_collections

from experiments.blocks.common import add_clip, data_config, evals_config, optim_config, train_config

CSTBIR_METHODS = ("text-only", "sketch-only", "two-stage", "tirg", "stnet", "stnet-ct", "stnet-ct-od-sr",
                  "stnet-ct-cls-sr", "stnet-ct-cls-od")
DUET_METHODS = ("sketch-only", "text-only", "b-clip", "pic2word", "ours", "ours-no-comp", "ours-no-reg",
                "ours-no-rt", "ours-no-rec", "ours-no-tt")


def add_cstbir(c: ml_collections.ConfigDict, arg: str) -> ml_collections.ConfigDict:
  """CSTBIR on SynthSketch scenes: train scenes of seen categories; Test-1K, Test-5K and open-category."""
  add_clip(c, arg)
  c.grid_method = "stnet"
  c.grid_queries = 6
  c.eval_batch_size = 256
  c.data = data_config(dataset="synth_scenes", materialize=True)
  # The SynthSketch scene world (sgvu.data.composed.SynthComposedScenes); real readers take their own options.
  c.data.reader_options = ml_collections.ConfigDict({
      "num_train": 4000, "num_test_1k": 1000, "num_test_5k": 5000, "num_test_5k_queries": 4000,
      "num_open": 1000, "num_open_queries": 750})
  c.evals = evals_config(composed={"type": "composed", "ks": (10, 20, 50, 100),
                                   "splits": (("test1k", "1K"), ("test5k", "5K"), ("open", "open"))})

  c.cstbir = ml_collections.ConfigDict()
  c.cstbir.clip_trainable = ("img/", "txt/")  # the CLIP towers fine-tune in every row (as the paper)
  c.cstbir.cls_weight = 1.0
  c.cstbir.od_weight = 1.0
  c.cstbir.sr_weight = 1.0
  c.cstbir.mask_size = 48  # sketch reconstruction target (the ink mask), pixels
  c.cstbir.decoder_width = 32
  c.cstbir.score_block = 128  # queries re-weighting the gallery's tokens at once (memory ~ block x G x T x E)
  c.cstbir.steps = ()  # ((row, steps), ...) overriding cstbir_train.num_steps
  c.cstbir.lrs = ()  # ((row, lr), ...) overriding cstbir_train.optim.lr

  c.cstbir_train = train_config(batch_size=32, num_steps=150, log_every=25, checkpoint_every=150,
                                optim=optim_config(name="adamw", lr=1e-4, weight_decay=0.01))
  # The frozen sketch encoder of STNet and two-stage: the CLIP image tower trained as a sketch classifier.
  c.sketch_train = train_config(batch_size=64, num_steps=200, log_every=50, checkpoint_every=200,
                                optim=optim_config(name="adam", lr=3e-4))
  if arg == "small":
    c.data.reader_options = ml_collections.ConfigDict({
        "num_train": 64, "num_test_1k": 24, "num_test_5k": 40, "num_test_5k_queries": 32,
        "num_open": 24, "num_open_queries": 16, "num_objects": (2, 2)})  # the tiny CLIP reads 16 tokens
    c.data.num_workers = 0
    c.cstbir_train.update(batch_size=8, num_steps=3, log_every=1, checkpoint_every=3)
    c.sketch_train.update(batch_size=8, num_steps=3, log_every=1, checkpoint_every=3)
    c.cstbir.mask_size = 16
    c.cstbir.score_block = 16
    c.grid_queries = 3
  return c


def add_duet(c: ml_collections.ConfigDict, arg: str) -> ml_collections.ConfigDict:
  """The duet on SynthSketch instances: train on seen categories' sketch/photo pairs (no text), test with
  words on unseen categories, each query among the photos of its category."""
  add_clip(c, arg)
  c.grid_method = "ours"
  c.grid_queries = 6
  c.eval_batch_size = 256
  c.data = data_config(dataset="synth_instances", materialize=True)
  c.evals = evals_config(composed={"type": "composed", "ks": (1, 10), "splits": (("test", ""),),
                                   "within_category": True, "metric": "Acc"})
  c.max_test_queries = 0  # 0: every test query

  c.duet = ml_collections.ConfigDict()
  c.duet.num_prompts = 3  # P^L
  c.duet.prompt_init = "a photo of"  # P^L starts as these words' token embeddings
  c.duet.pic2word_template = "a photo of *"  # the handcrafted prompt (L_TT, pic2word)
  # Neutral texts (L_reg): words that say nothing about an instance, from the CLIP's vocabulary.
  c.duet.neutral_texts = ("a photo", "in a photo", "the photo")
  c.duet.v2w_hidden = 512
  c.duet.v2w_dropout = 0.1
  c.duet.decoder_width = 32
  c.duet.region_temperature = 0.1
  c.duet.margin = 0.2
  c.duet.comp_weight = 1.0
  c.duet.reg_weight = 1.0
  c.duet.rt_weight = 1.0
  c.duet.rec_weight = 1.0
  c.duet.tt_weight = 1.0
  c.duet.steps = ()  # ((row, steps), ...) overriding duet_train.num_steps
  c.duet.lrs = ()  # ((row, lr), ...) overriding duet_train.optim.lr

  c.duet_train = train_config(batch_size=32, num_steps=60, log_every=20, checkpoint_every=60,
                              optim=optim_config(name="adam", lr=1e-3))
  if arg == "small":
    c.data.photos_per_category = 3
    c.data.sketches_per_photo = 1
    c.data.num_workers = 0
    c.duet_train.update(batch_size=8, num_steps=3, log_every=1, checkpoint_every=3)
    c.duet.v2w_hidden = 32
    c.duet.decoder_width = 8
    c.grid_queries = 3
  return c
