"""Fine-grained SBIR with a triplet ranking loss (the base of seed 001) on SynthSketch shoes.

  python -m sgvu.main --config=experiments/fg_sbir.py
  python -m sgvu.main --config=experiments/fg_sbir.py:small     # seconds to a few minutes (tests)

Trains a small CNN shared by sketches and photos on complete sketches, negatives
from the same category (see sgvu/tasks/fg_sbir.py for the encoder and loss
choices), and reports Acc@1/5/10 of each test sketch's own photo among all test
photos. Rows: `B1`, `B2` (B1 + DSSA-style spatial attention); `frozen` (CLIP as is).
"""

import ml_collections

from sgvu import configs
from sgvu.tasks import clip_pretrain, common

VARIANTS = ("", "small")


def add_base(c: ml_collections.ConfigDict, arg: str) -> ml_collections.ConfigDict:
  """Data, CLIP and FG-SBIR training keys shared with experiments/on_the_fly*.py."""
  c.eval_batch_size = 128
  c.model = ml_collections.ConfigDict()
  c.model.clip_init = ""  # '' = the SynthSketch CLIP of `clip_train`; or 'hf:/dir' / a convert_clip dir
  c.clip_train = clip_pretrain.pretrain_config()

  # SynthSketch 'instance' protocol: every category in both splits, disjoint photo instances.
  # 3100 shoes, 100 held out with 2 sketches each: 200 test sketches, a gallery of 100 (Chair-V2: 323 / 100).
  c.data = common.data_config(photos_per_category=3100, sketches_per_photo=2, image_size=48)
  c.data.categories = ("shoe",)
  c.data.test_fraction = 100 / 3100

  c.fg = ml_collections.ConfigDict()
  c.fg.encoder = "cnn"  # 'cnn' (from scratch, data.image_size) | 'clip' (model.clip_init or the SynthSketch CLIP)
  c.fg.cnn_widths = (32, 64, 128, 128)
  c.fg.shared = True  # cnn: one network for sketches and photos (Siamese) or one each
  c.fg.feature_dim = 128  # the CNN's feature: the input of the heads and of the RL policy
  c.fg.loss = "infonce"  # 'triplet' (seed 001, one sampled negative) | 'infonce' (same-category batch negatives)
  c.fg.margin = 0.2  # triplet
  c.fg.logit_scale = 30.0  # infonce: cosine similarities x this (temperature 1/30)
  c.fg.num_prompts = 3  # clip: shallow prompts per modality (0 = none)
  c.fg.embed_dim = 64  # the release's head: L2norm -> Linear(F, 64) -> L2norm
  c.fg.head_hidden = 0  # > 0: residual MLP in the head
  c.fg.attention_hidden = 64  # B2's attention scorer
  c.fg.backbone_lr = 1e-4  # clip: the image tower; prompts and head use fg_train.optim.lr

  c.fg_train = configs.train_config()
  c.fg_train.batch_size = 32
  c.fg_train.num_steps = 800
  c.fg_train.log_every = 100
  c.fg_train.checkpoint_every = 400
  c.fg_train.optim = configs.optim_config(name="adam", lr=3e-4)  # 1e-3 collapses the CNN from scratch

  if arg == "small":
    c.clip_train = clip_pretrain.pretrain_config(small=True)
    c.data.photos_per_category = 12
    c.data.sketches_per_photo = 2
    c.data.test_fraction = 0.25
    c.data.image_size = 32
    c.fg.cnn_widths = (8, 16)
    c.fg.feature_dim = 16
    c.fg.embed_dim = 16
    c.fg.attention_hidden = 8
    c.fg_train.batch_size = 8
    c.fg_train.num_steps = 4
    c.fg_train.log_every = 2
    c.fg_train.checkpoint_every = 2
    c.eval_batch_size = 32
  return c


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  if arg not in VARIANTS:
    raise ValueError(f"experiments/fg_sbir.py: unknown variant {arg!r}; valid: {VARIANTS}")
  c = ml_collections.ConfigDict()
  c.task = "fg_sbir"
  c.name = "fg_sbir" + ("_small" if arg == "small" else "")
  c.methods = ("B1", "B2")  # + 'frozen' (the CLIP as is; pretrains the SynthSketch CLIP unless model.clip_init)
  c.seeds = 1  # training seeds per table row (mean and std over them)
  return add_base(c, arg)
