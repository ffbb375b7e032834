"""Config blocks shared by experiments/*.py: plain ml_collections, so importing a config never imports JAX.

Every experiment config is a `get_config(arg)` assembled from these blocks, imported one way:

  from experiments import blocks

  def get_config(arg: str = ""):
    c = blocks.experiment("zs_sbir", "zs_sbir", arg)  # task, name, seeds, smoke_test; checks the variant
    c.methods = (...)
    return blocks.add_zs_sbir(c, arg)

Variants: '' (the full run) and 'small' (a smoke test: seconds to minutes, for tests; its numbers mean
nothing). Each training stage's settings are one `train_config()` block named `<stage>_train`:
`clip_train` (the SynthSketch CLIP, with its model/data keys), `zs_train`, `fg_train`, `head_train`, `rl_train`.
"""

from __future__ import annotations

import ml_collections

VARIANTS = ("", "small")

# Seed 004's CLIP rows on the real datasets: B-FT, B-Lin, B-IP (shallow), B-Deep, Ours; plus frozen CLIP.
# The ablations ('ours-no-layernorm', 'ours-no-cls') are one --config.methods away.
ZS_PAPER_METHODS = ("frozen", "full-ft", "linear", "shallow-prompt", "deep-prompt", "ours")
# Seed 001's rows (B1-B4, policies) and our reward ablations.
ON_THE_FLY_PAPER_METHODS = ("B1", "B2", "B3", "B4", "vanilla-pg", "ppo")
ON_THE_FLY_REWARDS = ("reward-1/rank", "reward-rank<=5", "reward--rank", "reward-1/sqrt(rank)")
ON_THE_FLY_METHODS = ON_THE_FLY_PAPER_METHODS + ON_THE_FLY_REWARDS


def check_variant(name: str, arg: str) -> None:
  if arg not in VARIANTS:
    raise ValueError(f"experiments/{name}.py: unknown variant {arg!r}; valid: '' (the full run) or "
                     f"'small' (a smoke test), e.g. --config=experiments/{name}.py:small")


def experiment(task: str, name: str, arg: str, *, seeds: int | None = 1) -> ml_collections.ConfigDict:
  """The keys every experiment has. `seeds`: training seeds per table row (None: not a table)."""
  check_variant(name, arg)
  c = ml_collections.ConfigDict()
  c.task = task
  c.name = name + ("_small" if arg == "small" else "")
  c.smoke_test = arg == "small"  # printed with the results: the numbers of a smoke test mean nothing
  if seeds is not None:
    c.seeds = seeds
  return c


# ---------------------------------------------------------------------------------------------- generic blocks


def optim_config(**overrides) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.name = "adam"
  c.lr = 1e-3
  c.schedule = "constant"
  c.warmup_steps = 0
  c.weight_decay = 0.0
  c.b1 = 0.9
  c.b2 = 0.999
  c.momentum = 0.9
  c.grad_clip_norm = 0.0
  c.param_lrs = ()  # ((regex, lr), ...)
  c.update(overrides)
  return c


def train_config(**overrides) -> ml_collections.ConfigDict:
  """One training stage: the keys the training loop reads (sgvu.train.fit)."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.batch_size = 32
  c.num_steps = 100
  c.log_every = 50
  c.checkpoint_every = 500
  c.keep_checkpoints = 2
  c.eval_every = 0
  c.optim = optim_config()
  c.sharding = ml_collections.ConfigDict()
  # Mesh axis sizes; -1 takes the remaining devices. data x fsdp x model = devices.
  c.sharding.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "model": 1})
  c.sharding.num_devices = 0  # 0 = all devices; >0 = the first N (tests, debugging)
  c.sharding.rules = ()  # ((logical_name, mesh_axis), ...); empty = sharding.DEFAULT_RULES
  c.update(overrides)
  return c


def data_config(**overrides) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.dataset = "synth"
  c.root = ""  # real datasets: the local copy (see docs/datasets.md)
  c.image_size = 64
  c.num_workers = 0
  c.strict = False
  # Render every photo/sketch once into memory (finite, procedural or small data).
  c.materialize = True
  # '': the real splits. 'categories' | 'instances': validation, for choosing hyperparameters: hold out
  # every holdout_every-th seen category (or training photo) and test on those (sgvu.data.holdout).
  c.holdout = ""
  c.holdout_every = 5
  # SynthSketch world (ignored by real datasets).
  c.reader_options = ml_collections.ConfigDict()  # passed to the reader, e.g. {'max_per_class': 3000}
  c.synth_seed = 0
  c.photos_per_category = 40
  c.sketches_per_photo = 3
  c.update(overrides)
  return c


def clip_train_config(small: bool = False) -> ml_collections.ConfigDict:
  """The SynthSketch CLIP's pretraining; `small`: a tiny CLIP in seconds, for the smoke tests.

  Its result is cached by a hash of this block (sgvu.tasks.clip_pretrain) and shared by every experiment.
  """
  c = train_config()
  c.model = "synth-s"
  # Another world seed than the benchmarks: other instances of all 75 categories, as web data would be.
  c.data = data_config(synth_seed=1000, photos_per_category=800, sketches_per_photo=1)
  c.test_fraction = 0.025  # 20 held-out photos (and their sketches) per category for the zero-shot tests
  c.batch_size = 128
  c.num_steps = 2000
  c.log_every = 50
  c.eval_every = 500
  c.checkpoint_every = 250
  c.optim = optim_config(name="adamw", lr=5e-4, weight_decay=0.05, schedule="cosine",
                         warmup_steps=100, grad_clip_norm=1.0)
  # Caption augmentation (docs/clip.md has the sweep): template_prob of the captions are "a photo of a
  # [category]"; the rest keep each attribute phrase with probability caption_keep.
  c.template_prob = 0.0
  c.caption_keep = 0.5
  # Weight of the image-label term: each photo against all 75 "a photo of a [category]" texts.
  c.class_loss_weight = 1.0
  c.cache_dir = ""  # default: $SGVU_CACHE or ~/.cache/sgvu
  # Use the CLIP shipped in sgvu/assets/clip_synth when it was trained by this very config and code.
  c.use_shipped = True
  # Scored while it trains (not part of the cache key).
  c.evals = evals_config(zero_shot={"type": "zero_shot", "kinds": ("photo", "sketch"),
                                    "attributes": ("colour", "texture", "place"), "caption_retrieval": True})
  if small:
    c.model = "tiny"
    c.data.photos_per_category = 8
    c.test_fraction = 0.25
    c.batch_size = 32
    c.num_steps = 20
    c.log_every = 10
    c.eval_every = 0
    c.optim.warmup_steps = 5
  return c


def add_clip(c: ml_collections.ConfigDict, arg: str) -> ml_collections.ConfigDict:
  """model.clip_init and, for when it is empty, the SynthSketch CLIP's clip_train."""
  c.model = ml_collections.ConfigDict()
  c.model.clip_init = ""  # '' = the SynthSketch CLIP of `clip_train`; or 'hf:/dir' / a convert_clip dir
  c.clip_train = clip_train_config(small=arg == "small")
  return c


# ---------------------------------------------------------------------------- zero-shot SBIR (seed 004)


def evals_config(**evaluators: dict) -> ml_collections.ConfigDict:
  """config.evals: {name: {"type": a sgvu.evaluators name, **its options}}."""
  return ml_collections.ConfigDict({name: dict(spec) for name, spec in evaluators.items()})


def zs_evals(level: str) -> ml_collections.ConfigDict:
  """ZS-SBIR's table metrics: category level (mAP@all, mAP@200, P@100, P@200) or fine-grained
  (Acc@K of a sketch's own photo among the photos of its category)."""
  if level == "instance":
    return evals_config(retrieval={"type": "instance_retrieval", "gallery": "category", "ks": (1, 5)})
  return evals_config(retrieval={"type": "category_retrieval", "ks": (100, 200)})


def add_zs_sbir(c: ml_collections.ConfigDict, arg: str) -> ml_collections.ConfigDict:
  """Category-level ZS-SBIR with CLIP prompts on SynthSketch (fg_zs_sbir changes level and pairing)."""
  c.level = "category"  # 'instance' = fine-grained (experiments/fg_zs_sbir.py)
  c.pairing = "category"
  c.grid_method = "ours"
  c.grid_queries = 8
  c.eval_batch_size = 128
  c.evals = zs_evals(c.level)
  add_clip(c, arg)
  c.data = data_config()

  c.method = ml_collections.ConfigDict()
  c.method.num_prompts = 3
  c.method.margin = 0.2
  c.method.cls_weight = 1.0
  c.method.layernorm_lr = 1e-4
  # full-ft's image tower: 1e-4 beat 1e-5 and 3e-4 at every step up to 100 on the validation holdout.
  c.method.backbone_lr = 1e-4
  c.method.shuffle_grid = 2
  c.method.patch_shuffle_weight = 1.0
  c.method.fdiv_weight = 1.0
  # ((row, value), ...): rows that train another number of steps than zs_train.num_steps, or at another
  # learning rate than zs_train.optim.lr (chosen on the validation holdout: docs/zs_sbir.md).
  c.method.steps = ()
  # The prompt baselines moved at 1e-2 and stayed flat at 1e-3; `ours` (with its classification term)
  # did worse at 1e-2, so it keeps zs_train.optim.lr (1e-3), as do linear and the ablations of ours.
  c.method.lrs = (("shallow-prompt", 1e-2), ("deep-prompt", 1e-2))

  c.zs_train = train_config()
  c.zs_train.batch_size = 32
  # The 15-minute budget of 5 trained rows x 3 seeds sets this; on the validation holdout most rows still
  # rise at 100 steps (docs/zs_sbir.md).
  c.zs_train.num_steps = 80
  c.zs_train.log_every = 25
  c.zs_train.checkpoint_every = 50
  c.zs_train.optim = optim_config(name="adam", lr=1e-3)

  if arg == "small":
    c.data.photos_per_category = 3
    c.data.sketches_per_photo = 1
    c.zs_train.batch_size = 16
    c.zs_train.num_steps = 4
    c.zs_train.log_every = 2
    c.zs_train.checkpoint_every = 2
    c.grid_queries = 4
  return c


def add_zs_sbir_paper(c: ml_collections.ConfigDict, dataset: str, arg: str, *, methods: tuple[str, ...],
                      num_steps: int) -> ml_collections.ConfigDict:
  """ZS-SBIR's keys with seed 004's setting on a real dataset (the user's local copy).

  CLIP ViT-B/32 at 224 (given by the user: model.clip_init), 3 shallow prompt
  tokens per branch, Adam with lr 1e-4 for prompts (and heads) and 1e-6 for
  the LayerNorms, batch 192, triplet margin 0.2. `num_steps` is ours: the seed
  gives no schedule (its release runs up to 2000 epochs and keeps the best).
  `small`: a few files, a tiny CLIP (the test's), 2 steps, 2 rows.
  """
  add_zs_sbir(c, "")  # the full SynthSketch settings; clip_train is unused (model.clip_init is required)
  c.methods = methods
  c.grid_method = "ours"
  c.eval_batch_size = 256

  c.model.clip_init = ""  # required: --config.model.clip_init=hf:/path/to/clip-vit-base-patch32
  c.data.dataset = dataset
  c.data.root = ""  # required: --config.data.root=/path/to/the/local/copy
  c.data.image_size = 224
  c.data.materialize = False  # tens of thousands of files: decode per batch in workers instead
  c.data.num_workers = 8

  c.method.num_prompts = 3
  c.method.margin = 0.2
  c.method.layernorm_lr = 1e-6
  c.method.backbone_lr = 1e-5  # not given by the seed; the prompts' lr is zs_train.optim.lr for every row
  c.method.lrs = ()

  c.zs_train.batch_size = 192
  c.zs_train.num_steps = num_steps
  c.zs_train.log_every = 50
  c.zs_train.checkpoint_every = 500
  c.zs_train.optim.name = "adam"
  c.zs_train.optim.lr = 1e-4  # the prompts' (and linear head's) learning rate
  c.zs_train.optim.weight_decay = 0.0

  if arg == "small":
    c.methods = ("frozen", c.grid_method)  # one baseline without training, one trained row
    c.data.image_size = 32
    c.data.num_workers = 0
    c.eval_batch_size = 16
    c.zs_train.batch_size = 8
    c.zs_train.num_steps = 2
    c.zs_train.log_every = 1
    c.zs_train.checkpoint_every = 2
    c.grid_queries = 2
  return c


# ----------------------------------------------------------------- fine-grained and on-the-fly SBIR (seed 001)


def add_fg_sbir(c: ml_collections.ConfigDict, arg: str) -> ml_collections.ConfigDict:
  """Data, CLIP and FG-SBIR training keys (fg_sbir and the on-the-fly experiments)."""
  c.eval_batch_size = 128
  # Acc@K of each test sketch's own photo among all test photos.
  c.evals = evals_config(retrieval={"type": "instance_retrieval", "gallery": "all", "ks": (1, 5, 10)})
  add_clip(c, arg)

  # SynthSketch 'instance' protocol: every category in both splits, disjoint photo instances.
  # 3100 shoes, 100 held out with 2 sketches each: 200 test sketches, a gallery of 100 (Chair-V2: 323 / 100).
  c.data = data_config(photos_per_category=3100, sketches_per_photo=2, image_size=48)
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

  c.fg_train = train_config()
  c.fg_train.batch_size = 32
  c.fg_train.num_steps = 800
  c.fg_train.log_every = 100
  c.fg_train.checkpoint_every = 400
  c.fg_train.optim = optim_config(name="adam", lr=3e-4)  # 1e-3 collapses the CNN from scratch

  if arg == "small":
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


def add_on_the_fly(c: ml_collections.ConfigDict, arg: str) -> ml_collections.ConfigDict:
  """The on-the-fly stages on top of add_fg_sbir: completion levels, heads (B3/B4), policies."""
  c.fg_evals = c.evals  # stage 1 (B1, B2) is evaluated as an FG-SBIR model while it trains
  c.evals = evals_config(on_the_fly={"type": "on_the_fly", "ks": (1, 5, 10)})  # m@A, m@B, A@K, curves
  c.levels = 20  # completion levels 5%, 10%, ..., 100% of the points, in drawing order
  # Heads and policies train on a random subset of the training photos and their sketches: their
  # gallery (and the cost of rendering 20 levels) stays near the test gallery's size. 0 = all.
  c.rl_train_photos = 300

  # B3 / B4: sketch heads on the frozen features, triplet loss.
  c.head_train = train_config()
  c.head_train.batch_size = 32
  c.head_train.num_steps = 300
  c.head_train.log_every = 100
  c.head_train.checkpoint_every = 300
  c.head_train.optim = optim_config(name="adam", lr=1e-3)

  c.rl = ml_collections.ConfigDict()
  c.rl.local_weight = 1.0  # g1: the local reward (1/rank in seed 001)
  c.rl.global_weight = 1.0  # g2: the Kendall-tau global reward (rows with it)
  # Discount of the returns over the drawing episode. The action at level t does not change later
  # levels' ranks, so gamma > 0 only adds their noise: 0.5 and 0.9 did worse than 0 here (docs).
  c.rl.gamma = 0.0
  c.rl.gae_lambda = 0.95  # actor-critic rows only
  # Actor-only baseline: 'greedy' (the same sketch's reward with the mean action: self-critical) |
  # 'batch' (leave-one-out mean over the batch per level; degraded B1 here, docs/on_the_fly.md).
  c.rl.baseline = "greedy"
  c.rl.normalize_advantages = True
  c.rl.init_log_std = -3.0  # exploration noise per dimension around the unit-norm mean embedding
  c.rl.learn_std = True
  c.rl.clip_eps = 0.2
  c.rl.ppo_epochs = 4  # epochs over each batch of episodes
  c.rl.num_minibatches = 2
  c.rl.entropy_weight = 0.0
  c.rl.value_weight = 0.5
  c.rl.tau_photos = 128  # Kendall tau on at most this many gallery photos (a random subset each step)

  # The learner's loop: batch = episodes (sketches) per update, as the release's 16; the optimizer is
  # the one of policy-gradient steps and of PPO's inner epochs (the release: Adam 1e-3, clip 40).
  c.rl_train = train_config()
  c.rl_train.batch_size = 32
  c.rl_train.num_steps = 300
  c.rl_train.log_every = 100
  c.rl_train.checkpoint_every = 300
  c.rl_train.optim = optim_config(name="adam", lr=1e-3, grad_clip_norm=40.0)

  if arg == "small":
    c.levels = 4
    c.rl_train_photos = 6
    for t in (c.head_train, c.rl_train):
      t.batch_size = 8
      t.num_steps = 4
      t.log_every = 2
      t.checkpoint_every = 2
    c.rl.tau_photos = 8
  return c


def add_qmul(c: ml_collections.ConfigDict, dataset: str, arg: str, *, fg_steps: int,
             rl_steps: int) -> ml_collections.ConfigDict:
  """On-the-fly keys -> QMUL-Shoe-V2 / Chair-V2 (the user's local copy, docs/datasets.md) with real CLIP weights.

  `small` runs a few steps of every stage on tiny files (tests). Step counts
  are ours (the seed gives none); not tuned on the real data.
  """
  c.model.clip_init = ""  # required: --config.model.clip_init=hf:/path/to/clip-vit-base-patch32
  c.data.dataset = dataset
  c.data.root = ""  # required: --config.data.root=/path/to/qmul (holding ShoeV2/ or ChairV2/)
  # The paper's setting: an ImageNet-pretrained backbone (here CLIP's image tower), the triplet loss.
  c.fg.encoder = "clip"
  c.fg.loss = "triplet"
  c.data.materialize = arg == "small"  # thousands of photos at 224 px: decode per batch instead
  c.data.num_workers = 0 if arg == "small" else 4
  c.eval_batch_size = 32 if arg == "small" else 256
  if arg != "small":
    c.fg_train.batch_size = 64
    c.fg_train.num_steps = fg_steps
    c.fg_train.checkpoint_every = 500
    c.fg_train.log_every = 50
    c.rl_train.num_steps = rl_steps
    c.head_train.num_steps = rl_steps
    c.rl.tau_photos = 256
  return c


# ---------------------------------------------------------------------------------------------- localization (seed 000)


def add_localization(c: ml_collections.ConfigDict, arg: str) -> ml_collections.ConfigDict:
  """Sketch-guided localization on SynthSketch scenes (sgvu/tasks/localization.py): data, models, losses, training."""
  small = arg == "small"
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
  c.data.short_side, c.data.max_side = 600, 1000
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
