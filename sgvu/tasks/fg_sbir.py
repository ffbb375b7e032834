"""Fine-grained (instance-level) SBIR: the base model of seed 001 (its B1 and B2 baselines).

A sketch and a photo encoder with shared weights (Siamese, as "Sketch Me That
Shoe"), seed 001 release's head (L2-normalise -> Dense -> L2-normalise),
trained on complete sketches against their own photo, negatives from the same
category. Evaluation: Acc@1/5/10 of each test sketch's photo among all test photos.

Encoders (`fg.encoder`):
- 'cnn': `SmallCNN` from scratch. The default on SynthSketch: the 48 px
  SynthSketch CLIP gave chance-level fine-grained retrieval after 200 steps
  (Acc@10 0.13 of 100 photos) at ~1.6 s a step on this 2-core machine, the CNN
  ~0.15 s a step and Acc@10 ~0.5 in 800 steps; and it needs no CLIP pretraining.
- 'clip': the CLIP image tower (real weights via model.clip_init, the QMUL
  configs; or the SynthSketch CLIP), fully fine-tuned, shallow prompts per modality.

Losses (`fg.loss`): 'triplet' (seed 001: max(0, d(s, p) - d(s, n) + margin),
d = 1 - cos, n a random photo of the sketch's category) and 'infonce' (every
same-category photo of the batch is a negative, softmax over them: learns the
SynthSketch task where the single-negative triplet stalls, see docs/on_the_fly.md).
Rows: `frozen` (CLIP as is), `B1`, `B2` (B1 + DSSA-style spatial attention).
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import optax

from sgvu import clip_io, configs, evaluators, experiment, export, losses, preprocess, train
from sgvu.data import configured, pipeline
from sgvu.models.clip import CLIPConfig
from sgvu.models.fg_sbir import ENCODERS, FGSBIRModel
from sgvu.tasks import clip_pretrain
from sgvu.tasks.base import Task

ACC_KS = (1, 5, 10)
METRICS = [f"Acc@{k}" for k in ACC_KS]


@dataclasses.dataclass(frozen=True)
class FGMethod:
  trains: bool = True  # False: the pretrained CLIP as is (no prompts, no head)
  attention: bool = False  # B2: spatial attention over the last feature map


METHODS: dict[str, FGMethod] = {
    "frozen": FGMethod(trains=False),
    "B1": FGMethod(),
    "B2": FGMethod(attention=True),
}


def triplet_loss(sk, ph, ng, labels, margin, scale):
  del labels, scale
  violation = losses.cosine_distance(sk, ph) - losses.cosine_distance(sk, ng) + margin
  return jnp.mean(jax.nn.relu(violation)), {"active_triplets": jnp.mean(violation > 0)}


def infonce_loss(sk, ph, ng, labels, margin, scale):
  """Symmetric InfoNCE over the batch; photos of other categories are masked out of the negatives."""
  del ng, margin
  logits = scale * sk @ ph.T
  same = labels[:, None] == labels[None, :]
  logits = jnp.where(same, logits, -1e9)
  target = jnp.arange(len(sk))
  loss = 0.5 * (optax.softmax_cross_entropy_with_integer_labels(logits, target).mean() +
                optax.softmax_cross_entropy_with_integer_labels(logits.T, target).mean())
  return loss, {"batch_acc": jnp.mean(jnp.argmax(logits, -1) == target)}


LOSSES: dict[str, Callable] = {"triplet": triplet_loss, "infonce": infonce_loss}


def build_model(config: ml_collections.ConfigDict, method: FGMethod, clip_cfg: CLIPConfig | None) -> FGSBIRModel:
  c = config.fg
  if not method.trains:
    return FGSBIRModel("clip", clip_cfg.vision, num_prompts=0, use_head=False)
  return FGSBIRModel(c.encoder, clip_cfg and clip_cfg.vision, cnn_widths=tuple(c.cnn_widths), feature_dim=c.feature_dim,
                     shared=c.shared,
                     num_prompts=c.num_prompts, embed_dim=c.embed_dim, head_hidden=c.head_hidden,
                     attention=method.attention, attention_hidden=c.attention_hidden)


class FGSBIRTask(Task):
  """One FG-SBIR model trained on complete sketches (loss `fg.loss`)."""

  def __init__(self, config, method: FGMethod, backbone: "Backbone", source):
    super().__init__(config)
    self.method, self.source = method, source
    self.model = build_model(config, method, backbone.clip_cfg)
    self.image_size = backbone.image_size
    self.img_params = backbone.img_params if self.model.encoder == "clip" else {}
    self._encoders = {}  # (kind, features) -> jitted encoder: one compile per shape, not per call

  def init_params(self, rng):
    x = jnp.zeros((1, self.image_size, self.image_size, 3))
    return self.model.init(rng, x, x, method=FGSBIRModel.embed_both)["params"]

  def pretrained(self):
    return self.img_params

  def encode(self, params, images, modality):
    return self.model.apply({"params": params}, preprocess.normalize_images(images), modality)

  def encode_features(self, params, images, modality):
    return self.model.apply({"params": params}, preprocess.normalize_images(images), modality,
                            method=FGSBIRModel.features)

  def loss_fn(self, params, batch, rng):
    del rng
    c = self.config.fg
    sk = self.encode(params, batch["sketch"], "sketch")
    ph = self.encode(params, batch["photo"], "photo")
    ng = self.encode(params, batch["neg_photo"], "photo") if c.loss == "triplet" else None
    return LOSSES[c.loss](sk, ph, ng, batch["label"], c.margin, c.logit_scale)

  def train_iterator(self, batch_size, seed):
    d = self.config.data
    return pipeline.pair_loader(self.source, "train", batch_size=batch_size, image_size=self.image_size,
                                pairing="instance", seed=seed, num_workers=d.num_workers, strict=d.strict)

  def jitted_encoder(self, kind: str, features: bool = False):
    """jit(params, uint8 images) -> embeddings (or backbone features) of `kind`."""
    if (kind, features) not in self._encoders:
      fn = self.encode_features if features else self.encode
      self._encoders[kind, features] = jax.jit(lambda p, im: fn(p, im, kind))
    return self._encoders[kind, features]

  def predict_fns(self):
    """What evaluators and bundles embed with: (params, uint8 images) -> embeddings."""
    return {"embed_sketch": self.jitted_encoder("sketch"), "embed_photo": self.jitted_encoder("photo")}


# ----------------------------------------------------------------------------
# Experiment plumbing shared with sgvu.tasks.on_the_fly.


def source_options(config: ml_collections.ConfigDict) -> dict:
  d = config.data
  if d.dataset == "synth":
    return {"protocol": "instance", "categories": tuple(d.categories), "test_fraction": d.test_fraction}
  return {}


def make_source(config: ml_collections.ConfigDict, image_size: int):
  return configured.source_from_config(config.data, image_size=image_size, **source_options(config))


@dataclasses.dataclass
class Backbone:
  image_size: int
  clip_cfg: CLIPConfig | None = None  # a CLIP encoder's config (fg.encoder 'clip' or the 'frozen' row)
  img_params: dict = dataclasses.field(default_factory=dict)  # its image tower {'img/...': array}


def needs_clip(config: ml_collections.ConfigDict, methods) -> bool:
  return config.fg.encoder == "clip" or "frozen" in methods


def load_backbone(config: ml_collections.ConfigDict, methods) -> Backbone:
  """The CLIP image tower (model.clip_init, else the cached SynthSketch CLIP) where one is used."""
  if not needs_clip(config, methods):
    return Backbone(config.data.image_size)
  spec = config.model.clip_init or os.path.join(clip_pretrain.ensure_pretrained(config.clip_train), "clip")
  clip_cfg, params = clip_io.load_clip(spec)
  return Backbone(clip_cfg.vision.image_size, clip_cfg, train.flatten({"img": params["img"]}))


def method_train_config(config: ml_collections.ConfigDict, seed: int = 0) -> ml_collections.ConfigDict:
  """config.fg_train for training seed `seed` (the CLIP tower at its own learning rate)."""
  c = ml_collections.ConfigDict(config.fg_train.to_dict())
  c.seed = config.fg_train.seed + seed
  if config.fg.encoder == "clip":
    c.optim.param_lrs = (("img/.*", config.fg.backbone_lr),)
  return c


def train_method(config, name: str, workdir: str, source, backbone: Backbone, seed: int = 0, *, evals_config=None):
  """Trains (or restores) FG-SBIR method `name` in `workdir`: (task, host params, evaluation + trainable count).

  Evaluated by `evals_config` (default config.evals: fg_sbir's table; on_the_fly's stage 1 passes fg_evals)."""
  method = METHODS[name]
  task = FGSBIRTask(config, method, backbone, source)
  evals = evaluators.build(config.evals if evals_config is None else evals_config, task.predict_fns(),
                           source=source, image_size=task.image_size, batch_size=config.eval_batch_size,
                           strict=config.data.strict)
  if not method.trains:
    params = train.unflatten(backbone.img_params)
    return task, params, {**evaluators.run_all(evals, params), "trainable_params": 0, "step": 0}
  tc = method_train_config(config, seed)
  setup = train.build(task, tc)
  logging.info("fg_sbir %s: %s trainable parameters", name, f"{setup.num_trainable:,}")
  params, records = train.fit(task, tc, workdir, setup=setup, evaluate=lambda p: evaluators.run_all(evals, p))
  return task, jax.device_get(params), {**records[-1], "trainable_params": setup.num_trainable}


def export_bundle(config, task: FGSBIRTask, params, method: str, seed: int, step: int, directory: str, *,
                  model=None, query=None) -> None:
  """An FG-SBIR model's inference bundle: sketch -> embedding, the test photos as the gallery.

  on_the_fly passes its own `model` (stage 1 + a row's head) and `query`; the
  gallery is always the stage-1 model's photo branch."""
  embed_photo, photo_params = task.jitted_encoder("photo"), params if model is None else params["backbone"]
  gallery = export.split_gallery(lambda im: embed_photo(photo_params, im), task.source, "test",
                                 image_size=task.image_size, batch_size=config.eval_batch_size,
                                 strict=config.data.strict)
  meta = {"experiment": config.name, "task": config.task, "method": method, "seed": seed, "step": step,
          "level": "instance", "image_size": task.image_size,
          "query": query or {"method": "__call__", "kwargs": {"modality": "sketch"}, "levels": 0},
          "gallery": ({"method": "__call__", "kwargs": {"modality": "photo"}} if model is None else
                      {"method": "embed_photos", "kwargs": {}}),
          "data": {**config.data.to_dict(), "source_options": source_options(config)}, "split": "test",
          "categories": list(task.source.categories)}
  export.save(directory, model=model or task.model, params=params, meta=meta, gallery=gallery)


def validate_base(config: ml_collections.ConfigDict, methods=()) -> None:
  """Checks the keys FG-SBIR and on-the-fly share (data, CLIP, fg, fg_train)."""
  from sgvu import data as data_lib
  configs.check_choice(config, "data.dataset", data_lib.DATASETS)
  configs.check_choice(config, "data.holdout", ("", "categories", "instances"))
  if config.data.dataset == "synth":
    if not config.data.categories:
      raise ValueError("config.data.categories is empty; name SynthSketch categories, e.g. ('shoe',)")
    from sgvu.data.synth import catalog
    unknown = [c for c in config.data.categories if c not in catalog.ALL_CATEGORIES]
    if unknown:
      raise ValueError(f"config.data.categories has unknown {unknown}; valid: {sorted(catalog.ALL_CATEGORIES)}")
    if not 0.0 < config.data.test_fraction < 1.0:
      raise ValueError(f"config.data.test_fraction={config.data.test_fraction} must be in (0, 1)")
  elif not config.data.root and not config.data.get("tfds_data_dir"):
    raise ValueError(f"config.data.root (or config.data.tfds_data_dir) is required for dataset "
                     f"{config.data.dataset!r} (see docs/datasets.md)")
  configs.check_choice(config, "fg.encoder", ENCODERS)
  configs.check_choice(config, "fg.loss", LOSSES)
  if needs_clip(config, methods):
    clip_pretrain.validate_clip_init(config, needed_for=" with a CLIP encoder")
  configs.check_positive(config, "fg.embed_dim", "fg.margin", "fg.backbone_lr", "fg.logit_scale",
                         "fg.feature_dim", "data.image_size", "eval_batch_size")
  configs.check_positive(config, "fg.num_prompts", "fg.head_hidden", "fg.attention_hidden", allow_zero=True)
  if not config.fg.cnn_widths or any(not isinstance(w, int) or w < 1 for w in config.fg.cnn_widths):
    raise ValueError(f"config.fg.cnn_widths={config.fg.cnn_widths!r} must be positive integers")
  configs.validate_train(config.fg_train)


def validate(config: ml_collections.ConfigDict) -> None:
  unknown = [m for m in config.methods if m not in METHODS]
  if unknown or not config.methods:
    raise ValueError(f"config.methods has unknown {unknown or '(empty)'}; valid: {sorted(METHODS)}")
  evaluators.validate(config.evals)
  validate_base(config, config.methods)


def table(config: ml_collections.ConfigDict, workdir: str) -> experiment.Table:
  """`python -m sgvu.main --config=experiments/fg_sbir.py`: the FG-SBIR table (Acc@1/5/10)."""
  backbone = load_backbone(config, config.methods)
  source = make_source(config, backbone.image_size)

  def run_row(name: str, seed: int, directory: str) -> dict:
    task, params, result = train_method(config, name, directory, source, backbone, seed)
    export_bundle(config, task, params, name, seed, int(result.get("step", 0)),
                  os.path.join(directory, export.BUNDLE_DIR))
    return {k: v for k, v in result.items() if k != "step"}

  return experiment.Table(
      name=config.name, split="val" if config.data.holdout else "test", metrics=METRICS,
      methods=tuple(config.methods), run_row=run_row,
      settings=lambda name: {"config": config, "method": name}, trains=lambda name: METHODS[name].trains,
      seeds=config.seeds, gallery_size=len(source.split("test").photos),
      description=f"{config.data.dataset}, instance-level, gallery = all test photos",
      smoke_test=config.get("smoke_test", False), fingerprint=experiment.table_fingerprint(config),
      code=experiment.code_version(config.task),
      extra=clip_pretrain.clip_extra(config, needs_clip(config, config.methods)), baseline="frozen")


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  started = time.perf_counter()  # the wall time includes shared stages (CLIP, data, stage 1)
  return experiment.run(table(config, workdir), workdir, started=started)
