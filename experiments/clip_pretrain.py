"""Pretrains the small SynthSketch CLIP (photo-caption InfoNCE; never sees a sketch).

  python -m sgvu.main --config=experiments/clip_pretrain.py                   # train (or reuse the cache)
  python -m sgvu.main --config=experiments/clip_pretrain.py --config.seeds=2  # and a second seed
  python -m sgvu.main --config=experiments/clip_pretrain.py --config.ship=True  # copy seed 0 to sgvu/assets
  python -m sgvu.main --config=experiments/clip_pretrain.py:small             # seconds: a smoke test

Other experiments call the same code: they reuse the cache, else the shipped CLIP when it was
trained by the same config and code, else pretrain it themselves.
"""

import ml_collections

from experiments import blocks


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = blocks.experiment("clip_pretrain", "clip_pretrain", arg, seeds=1)
  c.clip_train = blocks.clip_train_config(small=arg == "small")
  c.clip_train.use_shipped = False  # this command trains: it is what regenerates the shipped CLIP
  c.ship = False
  return c
