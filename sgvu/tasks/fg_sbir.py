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
import json
import os
import time
from typing import Callable

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from sgvu import clip_io, configs, losses, train
from sgvu.data import pipeline
from sgvu.models.clip import CLIPConfig
from sgvu.models.heads import EmbeddingHead, SmallCNN, SpatialAttentionPool
from sgvu.models.vit import VisionTransformer
from sgvu.tasks import clip_pretrain, common
from sgvu.tasks.base import Task

MODALITIES = ("sketch", "photo")
ENCODERS = ("cnn", "clip")
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


class FGSBIRModel(nn.Module):
  """Encoder shared by both modalities (`cnn`, or CLIP `img` with per-modality prompts), head, attention."""
  encoder: str = "cnn"
  clip: CLIPConfig | None = None
  cnn_widths: tuple[int, ...] = (32, 64, 128, 128)
  feature_dim: int = 128  # cnn output
  shared: bool = True  # cnn: one network for both modalities (Siamese) or one each
  num_prompts: int = 3
  embed_dim: int = 64
  head_hidden: int = 0
  attention: bool = False
  attention_hidden: int = 64
  use_head: bool = True

  def setup(self):
    if self.encoder not in ENCODERS:
      raise ValueError(f"encoder={self.encoder!r}; valid: {ENCODERS}")
    if self.encoder == "clip":
      self.img = VisionTransformer(self.clip, name="img")
      if self.num_prompts:
        shape = (self.num_prompts, self.clip.vision.width)
        self.sketch_prompts = self.param("sketch_prompts", nn.initializers.normal(1.0), shape)
        self.photo_prompts = self.param("photo_prompts", nn.initializers.normal(1.0), shape)
    else:
      self.cnn = SmallCNN(tuple(self.cnn_widths), self.feature_dim, name="cnn")
      if not self.shared:
        self.photo_cnn = SmallCNN(tuple(self.cnn_widths), self.feature_dim, name="photo_cnn")
    if self.attention:
      self.attn = SpatialAttentionPool(self.attention_hidden, name="attn")
    if self.use_head:
      self.head = EmbeddingHead(self.embed_dim, self.head_hidden, name="head")

  def features(self, images: jax.Array, modality: str) -> jax.Array:
    """Normalised images [B, H, W, 3] -> backbone feature [B, F] (the policy's input in seed 001)."""
    if modality not in MODALITIES:
      raise ValueError(f"modality={modality!r}; valid: {MODALITIES}")
    if self.encoder == "cnn":
      cnn = self.cnn if self.shared or modality == "sketch" else self.photo_cnn
      if not self.attention:
        return cnn(images)
      pooled, tokens = cnn(images, return_tokens=True)
      return self.attn(pooled, tokens)[0]
    kwargs = {}
    if self.num_prompts:
      kwargs["prompts"] = self.sketch_prompts if modality == "sketch" else self.photo_prompts
    if not self.attention:
      return self.img(images, **kwargs)
    pooled, tokens = self.img(images, return_tokens=True, **kwargs)
    patches = tokens[:, 1:1 + self.clip.vision.num_patches]  # neither CLS nor prompts
    return self.attn(pooled, patches)[0]

  def __call__(self, images: jax.Array, modality: str) -> jax.Array:
    """[B, H, W, 3] -> unit-norm embedding [B, D]."""
    f = self.features(images, modality)
    return self.head(f) if self.use_head else losses.l2_normalize(f)

  def embed_both(self, sketches: jax.Array, photos: jax.Array):
    return self(sketches, "sketch"), self(photos, "photo")


def build_model(config: ml_collections.ConfigDict, method: FGMethod, clip_cfg: CLIPConfig | None) -> FGSBIRModel:
  c = config.fg
  if not method.trains:
    return FGSBIRModel("clip", clip_cfg, num_prompts=0, use_head=False)
  return FGSBIRModel(c.encoder, clip_cfg, cnn_widths=tuple(c.cnn_widths), feature_dim=c.feature_dim,
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
    return self.model.apply({"params": params}, common.normalize_images(images), modality)

  def encode_features(self, params, images, modality):
    return self.model.apply({"params": params}, common.normalize_images(images), modality,
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

  def embed(self, params, split: str, kind: str, *, fraction: float = 1.0, features: bool = False):
    """(embeddings or features [N, *], item index [N]) of a split's sketches or photos."""
    jitted = self.jitted_encoder(kind, features)
    out, _, index = common.embed_split(lambda im: jitted(params, im), self.source, split, kind,
                                       image_size=self.image_size, batch_size=self.config.eval_batch_size,
                                       fraction=fraction, strict=self.config.data.strict)
    return out, index

  def evaluate(self, params):
    sketches, sketch_index = self.embed(params, "test", "sketch")
    photos, photo_index = self.embed(params, "test", "photo")
    keep, targets = gallery_targets(self.source.split("test"), sketch_index, photo_index)
    return instance_accuracy(sketches[keep], targets, photos)


def gallery_targets(split, sketch_index: np.ndarray, photo_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(rows of the sketches whose photo is in the gallery, that photo's row in the gallery)."""
  row_of_photo = {int(i): n for n, i in enumerate(photo_index)}
  keep, targets = [], []
  for n, i in enumerate(sketch_index):
    photo = split.sketches[int(i)].photo
    if photo is not None and int(photo) in row_of_photo:
      keep.append(n)
      targets.append(row_of_photo[int(photo)])
  if not keep:
    raise ValueError(f"split {split.name!r}: no sketch has its photo in the gallery")
  return np.asarray(keep, np.int64), np.asarray(targets, np.int32)


def ranks(queries: np.ndarray, targets: np.ndarray, gallery: np.ndarray, block: int = 4096) -> np.ndarray:
  """1-indexed rank of each query's target photo by cosine similarity; ties: lower gallery index first.

  `sgvu.metrics.ranks`' convention, in NumPy: `evaluate` runs inside the training
  loop's mesh, which may hold fewer devices than the metrics' own device mesh.
  """
  q = queries / np.maximum(np.linalg.norm(queries, axis=-1, keepdims=True), 1e-12)
  g = gallery / np.maximum(np.linalg.norm(gallery, axis=-1, keepdims=True), 1e-12)
  out = np.empty(len(q), np.int64)
  index = np.arange(len(g))
  for start in range(0, len(q), block):
    sims = q[start:start + block] @ g.T
    t = targets[start:start + block]
    target_sim = sims[np.arange(len(t)), t][:, None]
    ahead = (sims > target_sim) | ((sims == target_sim) & (index[None] < t[:, None]))
    out[start:start + block] = 1 + ahead.sum(axis=1)
  return out


def instance_accuracy(queries: np.ndarray, targets: np.ndarray, gallery: np.ndarray) -> dict[str, float]:
  r = ranks(queries, targets, gallery)
  return {f"Acc@{k}": float(np.mean(r <= k)) for k in ACC_KS}


# ----------------------------------------------------------------------------
# Experiment plumbing shared with sgvu.tasks.on_the_fly.


def make_source(config: ml_collections.ConfigDict, image_size: int):
  d = config.data
  kwargs = {}
  if d.dataset == "synth":
    kwargs = {"protocol": "instance", "categories": tuple(d.categories), "test_fraction": d.test_fraction}
  return common.make_source(d, image_size=image_size, **kwargs)


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


def method_train_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict(config.fg_train.to_dict())
  if config.fg.encoder == "clip":
    c.optim.param_lrs = (("img/.*", config.fg.backbone_lr),)
  return c


def train_method(config, name: str, workdir: str, source, backbone: Backbone):
  """Trains (or restores) FG-SBIR method `name` in `workdir`: (task, params, evaluation)."""
  method = METHODS[name]
  task = FGSBIRTask(config, method, backbone, source)
  if not method.trains:
    params = train.unflatten(backbone.img_params)
    return task, params, dict(task.evaluate(params))
  tc = method_train_config(config)
  setup = train.build(task, tc)
  logging.info("fg_sbir %s: %s trainable parameters", name, f"{setup.num_trainable:,}")
  params, evals = train.fit(task, tc, workdir, setup=setup)
  return task, jax.device_get(params), {**evals[-1], "trainable_params": setup.num_trainable}


def validate_base(config: ml_collections.ConfigDict, methods=()) -> None:
  """Checks the keys FG-SBIR and on-the-fly share (data, CLIP, fg, fg_train)."""
  from sgvu import data as data_lib
  configs.check_choice(config, "data.dataset", data_lib.DATASETS)
  if config.data.dataset == "synth":
    if not config.data.categories:
      raise ValueError("config.data.categories is empty; name SynthSketch categories, e.g. ('shoe',)")
    from sgvu.data.synth import catalog
    unknown = [c for c in config.data.categories if c not in catalog.ALL_CATEGORIES]
    if unknown:
      raise ValueError(f"config.data.categories has unknown {unknown}; valid: {sorted(catalog.ALL_CATEGORIES)}")
    if not 0.0 < config.data.test_fraction < 1.0:
      raise ValueError(f"config.data.test_fraction={config.data.test_fraction} must be in (0, 1)")
  elif not config.data.root:
    raise ValueError(f"config.data.root is required for dataset {config.data.dataset!r} (see docs/datasets.md)")
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
  validate_base(config, config.methods)


def reuse_row(workdir: str):
  path = os.path.join(workdir, "row.json")
  if os.path.exists(path):
    with open(path) as f:
      return json.load(f)
  return None


def save_row(workdir: str, row: dict) -> None:
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "row.json"), "w") as f:
      json.dump(row, f)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """`python -m sgvu.main --config=experiments/fg_sbir.py`: the FG-SBIR table (Acc@1/5/10)."""
  t0 = time.perf_counter()
  backbone = load_backbone(config, config.methods)
  source = make_source(config, backbone.image_size)
  rows = []
  for name in config.methods:
    method_dir = os.path.join(workdir, name)
    row = reuse_row(method_dir)
    if row is not None:
      logging.info("%s: reusing %s/row.json", name, method_dir)
    else:
      t = time.perf_counter()
      _, _, result = train_method(config, name, method_dir, source, backbone)
      row = {"method": name, "split": "test", **{k: float(result[k]) for k in METRICS},
             "trainable_params": int(result.get("trainable_params", 0)), "seconds": round(time.perf_counter() - t, 1)}
      save_row(method_dir, row)
    rows.append(row)
    common.write_results(workdir, config.name, rows)
  wall = time.perf_counter() - t0
  common.write_results(workdir, config.name, rows, wall_seconds=round(wall, 1))
  print(f"\n{config.name}: {config.data.dataset}, instance-level, gallery = all test photos "
        f"({wall / 60:.1f} min)\n{common.format_table(rows, METRICS)}\n")
  return {"rows": rows}
