"""Pretrains the small SynthSketch CLIP (photo-caption InfoNCE; never sees a sketch).

  python -m sgvu.main --config=experiments/clip_pretrain.py
  python -m sgvu.main --config=experiments/clip_pretrain.py:small   # seconds: a smoke test

Other experiments call the same code and reuse its cache.
"""

import ml_collections

from experiments import blocks


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = blocks.experiment("clip_pretrain", "clip_pretrain", arg, seeds=None)
  c.clip_train = blocks.clip_train_config(small=arg == "small")
  return c
