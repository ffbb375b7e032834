"""Zero-shot SBIR with CLIP prompts (seed 004) on SynthSketch: the main job.

  python -m sgvu.main --config=experiments/zs_sbir.py           # full table, <= 15 min on 2 CPU cores
  python -m sgvu.main --config=experiments/zs_sbir.py:small     # end to end in minutes (tests)

(a) pretrains (or reuses from cache) a small CLIP on SynthSketch photo-caption
pairs; (b) trains every method of `methods` on seen-category sketches with
that CLIP frozen; (c) evaluates on unseen categories; (d) prints the table
and writes results.json and retrieval_grid.png to the workdir.
"""

import ml_collections

from sgvu import configs
from sgvu.tasks import clip_pretrain, common

VARIANTS = ("", "small")


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  if arg not in VARIANTS:
    raise ValueError(f"experiments/zs_sbir.py: unknown variant {arg!r}; valid: {VARIANTS}")
  c = ml_collections.ConfigDict()
  c.task = "zs_sbir"
  c.name = "zs_sbir"
  c.level = "category"  # 'instance' = fine-grained (experiments/fg_zs_sbir.py)
  c.pairing = "category"
  c.methods = ("random", "frozen", "full-ft", "linear", "shallow-prompt", "deep-prompt", "ours",
               "ours-no-layernorm", "ours-no-cls")
  c.seeds = 1  # training seeds per table row (mean and std over them)
  c.grid_method = "ours"
  c.grid_queries = 8
  c.eval_batch_size = 128

  c.model = ml_collections.ConfigDict()
  c.model.clip_init = ""  # '' = the SynthSketch CLIP of `clip_train`; or 'hf:/dir' / a convert_clip dir
  c.clip_train = clip_pretrain.pretrain_config()

  c.data = common.data_config()

  c.method = ml_collections.ConfigDict()
  c.method.num_prompts = 3
  c.method.margin = 0.2
  c.method.cls_weight = 1.0
  c.method.layernorm_lr = 1e-4
  c.method.backbone_lr = 1e-5
  c.method.shuffle_grid = 2
  c.method.patch_shuffle_weight = 1.0
  c.method.fdiv_weight = 1.0

  c.zs_train = configs.train_config()
  c.zs_train.batch_size = 32
  c.zs_train.num_steps = 80  # seven trained rows must fit the 15-minute budget with pretraining
  c.zs_train.log_every = 25
  c.zs_train.checkpoint_every = 50
  c.zs_train.optim = configs.optim_config(name="adam", lr=1e-3)

  if arg == "small":
    c.name = "zs_sbir_small"
    c.clip_train = clip_pretrain.pretrain_config(small=True)
    c.data.photos_per_category = 3
    c.data.sketches_per_photo = 1
    c.zs_train.batch_size = 16
    c.zs_train.num_steps = 4
    c.zs_train.log_every = 2
    c.zs_train.checkpoint_every = 2
    c.grid_queries = 4
  return c
