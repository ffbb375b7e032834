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
  c.pretrain = clip_pretrain.pretrain_config()
  if arg == "small":
    c.name = "clip_pretrain_small"
    c.pretrain.model = "tiny"
    c.pretrain.data.photos_per_category = 4
    c.pretrain.batch_size = 32
    c.pretrain.num_steps = 20
    c.pretrain.log_every = 5
    c.pretrain.optim.warmup_steps = 5
  return c
