"""The keys every experiment has, and the generic blocks: optimizer, training stage, data, evaluators, CLIP."""

from __future__ import annotations

import ml_collections

VARIANTS = ("", "small")


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
  c.tfds_data_dir = ""  # or its TFDS / ArrayRecord copy (local or gs://; python -m sgvu.tools.build_tfds)
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


def evals_config(**evaluators: dict) -> ml_collections.ConfigDict:
  """config.evals: {name: {"type": a sgvu.evaluators name, **its options}}."""
  return ml_collections.ConfigDict({name: dict(spec) for name, spec in evaluators.items()})

