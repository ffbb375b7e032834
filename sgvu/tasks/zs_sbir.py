"""Zero-shot SBIR and fine-grained zero-shot SBIR with CLIP prompts (seed 004).

Frozen CLIP image tower, separate learnable prompts for sketches and photos,
LayerNorm-only tuning, triplet loss (d = 1 - cos, margin) and classification
against the frozen text tower's "a photo of a [category]" over seen
categories; fine-grained adds patch shuffling and the f-divergence term.
The baselines and ablations of the seed's tables are rows of METHODS, all
trained and evaluated in one command on the same data.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
import re

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sgvu import clip_io, configs, evaluators, experiment, export, losses, metrics, preprocess
from sgvu import tokenizers, train, viz
from sgvu.data import configured, pipeline
from sgvu.models.prompted import PromptedImageEncoder
from sgvu.tasks import clip_pretrain
from sgvu.tasks.base import Task


@dataclasses.dataclass(frozen=True)
class Method:
  prompts: str = "none"  # 'none' | 'shallow' | 'deep'
  layernorm: bool = False  # tune the image tower's LayerNorms
  backbone: bool = False  # fine-tune the whole image tower
  linear: bool = False  # linear probe on frozen features
  cls: bool = False  # classification against text embeddings of seen categories
  patch_shuffle: bool = False  # fine-grained only
  fdiv: bool = False  # fine-grained only
  random: bool = False  # chance reference: random embeddings instead of the model's

  @property
  def trains(self) -> bool:
    return self.prompts != "none" or self.layernorm or self.backbone or self.linear


_OURS = Method(prompts="shallow", layernorm=True, cls=True)
_BASELINES = {
    "random": Method(random=True),
    "frozen": Method(),
    "full-ft": Method(backbone=True),
    "linear": Method(linear=True),
    "shallow-prompt": Method(prompts="shallow"),
    "deep-prompt": Method(prompts="deep"),
}


def _with_ablations(ours: Method, fine_grained: bool) -> dict[str, Method]:
  rows = {"ours": ours, "ours-no-layernorm": dataclasses.replace(ours, layernorm=False),
          "ours-no-cls": dataclasses.replace(ours, cls=False)}
  if fine_grained:
    rows["ours-no-patch-shuffle"] = dataclasses.replace(ours, patch_shuffle=False)
    rows["ours-no-fdiv"] = dataclasses.replace(ours, fdiv=False)
  return rows


# Rows of seed 004's tables by evaluation level. At the instance (fine-grained)
# level, "ours" adds patch shuffling and the f-divergence term.
METHODS: dict[str, dict[str, Method]] = {
    "category": {**_BASELINES, **_with_ablations(_OURS, fine_grained=False)},
    "instance": {**_BASELINES, **_with_ablations(
        dataclasses.replace(_OURS, patch_shuffle=True, fdiv=True), fine_grained=True)},
}

CATEGORY_METRICS = ["mAP@all", "mAP@200", "P@100", "P@200"]
INSTANCE_METRICS = ["Acc@1", "Acc@5"]
LEVELS = tuple(METHODS)


# Every LayerNorm of the image tower: ln_pre, ln_post and each block's ln_1 / ln_2.
LAYERNORM_PATHS = r"img/(.*/)?ln_(pre|post|1|2)/.*"


class ZSSBIRTask(Task):
  """One row of the table: a method trained on seen-category sketch/photo pairs."""

  def __init__(self, config, method: Method, clip_cfg, clip_params, source, class_text, logit_scale):
    super().__init__(config)
    self.method = method
    self.model = PromptedImageEncoder(clip_cfg.vision, prompts=method.prompts,
                                      num_prompts=config.method.num_prompts, linear_head=method.linear)
    self.clip_cfg, self.source = clip_cfg, source
    self.image_size = clip_cfg.vision.image_size
    self.clip_img = train.flatten({"img": clip_params["img"]})
    # Row of each seen category in class_text; -1 elsewhere (unseen never occurs in training).
    train_split = source.split("train")
    lookup = np.full(len(source.categories), -1, np.int32)
    for row, name in enumerate(train_split.categories):
      lookup[source.categories.index(name)] = row
    self.class_row = jnp.asarray(lookup)
    self.class_text = jnp.asarray(class_text)
    self.logit_scale = float(logit_scale)

  def init_params(self, rng):
    x = jnp.zeros((1, self.image_size, self.image_size, 3))
    return self.model.init(rng, x, x, method=PromptedImageEncoder.encode_both)["params"]

  def pretrained(self):
    return self.clip_img

  def is_trainable(self, path):
    m = self.method
    if path.startswith(("sketch_prompts", "photo_prompts", "head/")):
      return True
    return m.backbone or (m.layernorm and re.fullmatch(LAYERNORM_PATHS, path) is not None)

  def encode(self, params, images, modality):
    return self.model.apply({"params": params}, preprocess.normalize_images(images), modality)

  def predict_fns(self):
    """What evaluators and bundles embed with: uint8 images -> embeddings (jitted once per task)."""
    return {f"embed_{kind}": jax.jit(functools.partial(self.encode, modality=kind)) for kind in ("sketch", "photo")}

  def loss_fn(self, params, batch, rng):
    m, c = self.method, self.config.method
    sk = self.encode(params, batch["sketch"], "sketch")
    ph = self.encode(params, batch["photo"], "photo")
    ng = self.encode(params, batch["neg_photo"], "photo")
    terms = {"triplet": losses.triplet(sk, ph, ng, c.margin)}
    if m.cls:
      cls = lambda f, labels: losses.text_classification(f, self.class_text, self.class_row[labels], self.logit_scale)
      terms["cls"] = c.cls_weight * (cls(sk, batch["label"]) + cls(ph, batch["label"]) +
                                     cls(ng, batch["neg_label"])) / 3
    if m.patch_shuffle:
      grid = c.shuffle_grid
      k1, k2 = jax.random.split(rng)
      n = batch["sketch"].shape[0]
      perm = lambda k: jax.vmap(lambda kk: jax.random.permutation(kk, grid * grid))(jax.random.split(k, n))
      p1, p2 = perm(k1), perm(k2)
      shuffled = lambda im, p: losses.shuffle_patches(im, p, grid)
      terms["patch_shuffle"] = c.patch_shuffle_weight * losses.triplet(
          self.encode(params, shuffled(batch["sketch"], p1), "sketch"),
          self.encode(params, shuffled(batch["photo"], p1), "photo"),
          self.encode(params, shuffled(batch["photo"], p2), "photo"), c.margin)
    if m.fdiv:
      terms["fdiv"] = c.fdiv_weight * losses.relative_distance_divergence(
          sk, ph, ng, batch["label"], len(self.source.categories))
    return sum(terms.values()), terms

  def train_iterator(self, batch_size, seed):
    d = self.config.data
    return pipeline.pair_loader(self.source, "train", batch_size=batch_size, image_size=self.image_size,
                                pairing=self.config.pairing, seed=seed, num_workers=d.num_workers,
                                strict=d.strict)


def method_train_config(config: ml_collections.ConfigDict, method: Method, seed: int = 0,
                        name: str = "") -> ml_collections.ConfigDict:
  """config.zs_train with the method's learning rates per parameter group and the row's own steps and
  learning rate (config.method.steps / .lrs: ((row name, value), ...) override zs_train.num_steps /
  zs_train.optim.lr), for training seed `seed`."""
  c = ml_collections.ConfigDict(config.zs_train.to_dict())
  c.seed = config.zs_train.seed + seed
  c.num_steps = dict(config.method.get("steps", ())).get(name, c.num_steps)
  c.optim.lr = float(dict(config.method.get("lrs", ())).get(name, c.optim.lr))
  groups = []
  if method.backbone:
    groups.append(("img/.*", config.method.backbone_lr))
  elif method.layernorm:
    groups.append((LAYERNORM_PATHS, config.method.layernorm_lr))
  c.optim.param_lrs = tuple(groups)
  return c


def validate(config: ml_collections.ConfigDict) -> None:
  configs.check_choice(config, "level", LEVELS)
  evaluators.validate(config.evals)
  wanted = "instance_retrieval" if config.level == "instance" else "category_retrieval"
  if [spec.type for spec in config.evals.values()] != [wanted]:
    raise ValueError(f"config.evals: level {config.level!r} is scored by one {wanted!r} evaluator, got "
                     f"{[spec.type for spec in config.evals.values()]}")
  valid = METHODS[config.level]
  unknown = [m for m in config.methods if m not in valid]
  if unknown:
    raise ValueError(f"config.methods has unknown {unknown} for level {config.level!r}; valid: {sorted(valid)}")
  if not config.methods:
    raise ValueError("config.methods is empty")
  configs.check_choice(config, "pairing", ["category", "instance"])
  if config.level == "instance" and config.pairing != "instance":
    raise ValueError("config.level='instance' (fine-grained) needs config.pairing='instance'")
  from sgvu import data as data_lib
  configs.check_choice(config, "data.dataset", data_lib.DATASETS)
  configs.check_choice(config, "data.holdout", ("", "categories", "instances"))
  clip_pretrain.validate_clip_init(config)
  if config.data.dataset != "synth" and not config.data.get("tfds_data_dir"):
    if not config.data.root:
      raise ValueError(f"config.data.root is required for dataset {config.data.dataset!r}: the directory of "
                       "your local copy, or config.data.tfds_data_dir for its TFDS copy (see docs/datasets.md)")
    if not os.path.isdir(config.data.root):
      raise ValueError(f"config.data.root={config.data.root!r}: no such directory")
  configs.validate_train(config.zs_train)
  for key, kind in (("steps", int), ("lrs", (int, float))):
    for pair in config.method.get(key, ()):
      if (len(pair) != 2 or pair[0] not in valid or not isinstance(pair[1], kind) or isinstance(pair[1], bool)
          or not pair[1] > 0):
        raise ValueError(f"config.method.{key}: {pair!r} is not (a method of level {config.level!r}, a "
                         f"{'number of steps' if key == 'steps' else 'learning rate'} > 0)")
  configs.check_positive(config, "method.num_prompts", "method.margin", "eval_batch_size")


def load_clip(config):
  """(clip_cfg, params, tokenizer): from model.clip_init, or the cached SynthSketch CLIP."""
  spec = config.model.clip_init
  if not spec:
    spec = os.path.join(clip_pretrain.ensure_pretrained(config.clip_train), "clip")
  directory = spec[3:] if spec.startswith("hf:") else spec
  clip_cfg, params = clip_io.load_clip(spec)
  tokenizer = tokenizers.load_tokenizer(directory, clip_cfg.text.context_length)
  return clip_cfg, params, tokenizer


def source_options(config) -> dict:
  return {"protocol": "zero_shot"} if config.data.dataset == "synth" else {}


def table(config: ml_collections.ConfigDict, workdir: str) -> experiment.Table:
  """The seed-004 table: every method of config.methods trained on seen categories, scored on unseen ones."""
  clip_cfg, clip_params, tokenizer = load_clip(config)
  if config.data.image_size != clip_cfg.vision.image_size:
    logging.info("data.image_size %d -> %d (the CLIP's resolution)", config.data.image_size,
                 clip_cfg.vision.image_size)
  image_size = clip_cfg.vision.image_size
  source = configured.source_from_config(config.data, image_size=image_size, **source_options(config))
  from sgvu.models.clip import CLIP
  class_text = clip_pretrain.class_text_embeddings(CLIP(clip_cfg), clip_params, tokenizer,
                                                   source.split("train").categories)
  logit_scale = float(np.exp(np.asarray(clip_params["logit_scale"])))
  methods = METHODS[config.level]

  def run_row(name: str, seed: int, directory: str) -> dict:
    method = methods[name]
    task = ZSSBIRTask(config, method, clip_cfg, clip_params, source, class_text, logit_scale)
    evals = evaluators.build(config.evals, task.predict_fns(), source=source, image_size=image_size,
                             batch_size=config.eval_batch_size, strict=config.data.strict)
    if method.random:  # the chance level of this gallery and metric, in the same table
      (evaluator,) = evals.values()
      sketches, photos = evaluator.embed(train.unflatten(task.pretrained()))
      rng = np.random.default_rng(0)
      sketches = (rng.standard_normal(sketches[0].shape),) + tuple(sketches[1:])
      photos = (rng.standard_normal(photos[0].shape),) + tuple(photos[1:])
      return {**evaluator.score(sketches, photos), "trainable_params": 0}
    if method.trains:
      tc = method_train_config(config, method, seed, name)
      setup = train.build(task, tc)
      params, records = train.fit(task, tc, directory, setup=setup,
                                  evaluate=lambda p: evaluators.run_all(evals, p))
      result, trainable, step = records[-1], setup.num_trainable, tc.num_steps
    else:
      params = train.unflatten(task.pretrained())
      result, trainable, step = evaluators.run_all(evals, params), 0, 0
    export_bundle(config, task, params, name, seed, step, os.path.join(directory, export.BUNDLE_DIR))
    return {**{k: v for k, v in result.items() if k != "step"}, "trainable_params": int(trainable)}

  evaluator = next(iter(evaluators.build(config.evals, {"embed_sketch": None, "embed_photo": None},
                                         source=source, image_size=image_size).values()))
  clip = clip_pretrain.clip_extra(config)["clip"]
  clip_note = (f"; CLIP {clip['source']}, photo zero-shot {clip['photo_zero_shot@1']:.3f}"
               if "photo_zero_shot@1" in clip else f"; CLIP {clip['source']}")
  return experiment.Table(
      name=config.name, split="val" if config.data.holdout else "unseen",
      metrics=INSTANCE_METRICS if config.level == "instance" else CATEGORY_METRICS, methods=tuple(config.methods),
      run_row=run_row, settings=lambda name: {"config": config, "method": name},
      trains=lambda name: methods[name].trains, seeds=config.seeds, gallery_size=evaluator.gallery_size(),
      description=f"{'held-out seen' if config.data.holdout else 'unseen'} categories, {config.data.dataset}{clip_note}",
      smoke_test=config.get("smoke_test", False), pictures=lambda rows: _draw_grid(config, source, workdir),
      extra={"level": config.level, "clip": clip},
      fingerprint=experiment.table_fingerprint(config),
      code=experiment.code_version(config.task), baseline="frozen")


def export_bundle(config, task: ZSSBIRTask, params, method: str, seed: int, step: int, directory: str) -> None:
  """The row's inference bundle: the prompted encoder, its params and the test gallery's embeddings."""
  embed_photo = task.predict_fns()["embed_photo"]
  gallery = export.split_gallery(lambda im: embed_photo(params, im), task.source, "test", image_size=task.image_size,
                                 batch_size=config.eval_batch_size, strict=config.data.strict)
  meta = {"experiment": config.name, "task": "zs_sbir", "method": method, "seed": seed, "step": step,
          "level": config.level, "image_size": task.image_size,
          "query": {"method": "__call__", "kwargs": {"modality": "sketch"}, "levels": 0},
          "gallery": {"method": "__call__", "kwargs": {"modality": "photo"}},
          "data": {**config.data.to_dict(), "source_options": source_options(config)}, "split": "test",
          "categories": list(task.source.categories)}
  export.save(directory, model=task.model, params=params, meta=meta, gallery=gallery)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  started = time.perf_counter()  # the wall time includes shared stages (CLIP, data, stage 1)
  return experiment.run(table(config, workdir), workdir, started=started)


def _draw_grid(config, source, workdir: str) -> None:
  """Top-10 of a few test sketches by the grid method's exported model (seed 0)."""
  if config.grid_method not in config.methods:
    return
  bundle = export.load(experiment.row_dir(workdir, config.grid_method, 0))
  split = source.split("test")
  rng = np.random.default_rng(0)
  pick = rng.choice(len(split.sketches), size=min(config.grid_queries, len(split.sketches)), replace=False)
  queries = [pipeline.render_sketch(source, split.sketches[i], bundle.image_size) for i in pick]
  idx, _ = metrics.topk(bundle.embed_queries(np.stack(queries)), bundle.gallery.embeds, 10)
  hits = [[pipeline.load_photo(source, split.photos[int(bundle.gallery.index[j])], bundle.image_size) for j in row]
          for row in idx]
  if config.level == "instance":
    correct = [[int(bundle.gallery.index[j]) == split.sketches[i].photo for j in row] for i, row in zip(pick, idx)]
  else:
    correct = [[int(bundle.gallery.labels[j]) == split.sketches[i].label for j in row] for i, row in zip(pick, idx)]
  path = os.path.join(workdir, "retrieval_grid.png")
  viz.retrieval_grid(queries, hits, correct, path, title=f"{config.name}: {config.grid_method}, top-10")
  logging.info("retrieval grid: %s", path)
