"""Pretrains the small SynthSketch CLIP (photo-caption InfoNCE; never sees a sketch).

  python -m sgvu.main --config=experiments/clip_pretrain.py
  python -m sgvu.main --config=experiments/clip_pretrain.py:small   # seconds, for tests

Other experiments call the same code and reuse its cache.
"""

import ml_collections

from sgvu.tasks import clip_pretrain

VARIANTS = ("", "small")


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  if arg not in VARIANTS:
    raise ValueError(f"experiments/clip_pretrain.py: unknown variant {arg!r}; valid: {VARIANTS}")
  c = ml_collections.ConfigDict()
  c.task = "clip_pretrain"
  c.name = "clip_pretrain"
  c.clip_train = clip_pretrain.pretrain_config()
  if arg == "small":
    c.name = "clip_pretrain_small"
    c.clip_train = clip_pretrain.pretrain_config(small=True)
  return c
