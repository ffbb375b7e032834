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
import json
import os
import re
import time

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sgvu import clip_io, configs, losses, metrics, tokenizers, train
from sgvu.models.prompted import PromptedImageEncoder
from sgvu.tasks import clip_pretrain, common
from sgvu.tasks.base import Task
from sgvu.data import pipeline


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
    self.model = PromptedImageEncoder(clip_cfg, prompts=method.prompts, num_prompts=config.method.num_prompts,
                                      linear_head=method.linear)
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
    # Built once: evaluation during training, the final eval and the grid reuse the compiled encoders.
    self._jitted_encoders = {kind: jax.jit(functools.partial(self.encode, modality=kind))
                             for kind in ("sketch", "photo")}

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
    return self.model.apply({"params": params}, common.normalize_images(images), modality)

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

  def embed(self, params, split: str):
    """(sketch embeds, labels, index), (photo embeds, labels, index) of a split."""
    d, bs = self.config.data, self.config.eval_batch_size
    out = []
    for kind in ("sketch", "photo"):
      fn = self._jitted_encoders[kind]
      out.append(common.embed_split(lambda im, fn=fn: fn(params, im), self.source, split, kind,
                                    image_size=self.image_size, batch_size=bs, strict=d.strict, desc=split))
    return out

  def evaluate(self, params):
    (q, ql, qi), (g, gl, gi) = self.embed(params, "test")
    if self.method.random:  # the chance level of this gallery and metric, in the same table
      rng = np.random.default_rng(0)
      q, g = rng.standard_normal(q.shape), rng.standard_normal(g.shape)
    if self.config.level == "instance":
      return instance_accuracy(self.source.split("test"), q, qi, g, gi)
    return metrics.retrieval_metrics(q, ql, g, gl, ks=(100, 200))


def instance_accuracy(split, q, q_index, g, g_index, ks=(1, 5, 10)) -> dict:
  """Fine-grained Acc@K with the gallery of each query's own category (cross-category FG-ZS-SBIR)."""
  photo_pos = {int(i): n for n, i in enumerate(g_index)}
  ranks = []
  for label in np.unique([split.sketches[i].label for i in q_index]):
    qs = [n for n, i in enumerate(q_index) if split.sketches[i].label == label and
          split.sketches[i].photo in photo_pos]
    gs = [n for n, i in enumerate(g_index) if split.photos[i].label == label]
    if not qs or len(gs) < 2:
      continue
    local = {g_n: j for j, g_n in enumerate(gs)}
    targets = np.asarray([local[photo_pos[split.sketches[q_index[n]].photo]] for n in qs], np.int32)
    ranks.append(metrics.ranks(q[qs], targets, g[gs]))
  ranks = np.concatenate(ranks)
  return {f"Acc@{k}": float(np.mean(ranks <= k)) for k in ks}


def method_train_config(config: ml_collections.ConfigDict, method: Method) -> ml_collections.ConfigDict:
  """config.zs_train with the method's learning rates per parameter group."""
  c = ml_collections.ConfigDict(config.zs_train.to_dict())
  groups = []
  if method.backbone:
    groups.append(("img/.*", config.method.backbone_lr))
  elif method.layernorm:
    groups.append((LAYERNORM_PATHS, config.method.layernorm_lr))
  c.optim.param_lrs = tuple(groups)
  return c


def validate(config: ml_collections.ConfigDict) -> None:
  configs.check_choice(config, "level", LEVELS)
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
  clip_pretrain.validate_clip_init(config)
  if config.data.dataset != "synth":
    if not config.data.root:
      raise ValueError(f"config.data.root is required for dataset {config.data.dataset!r}: the directory of "
                       "your local copy (see docs/datasets.md)")
    if not os.path.isdir(config.data.root):
      raise ValueError(f"config.data.root={config.data.root!r}: no such directory")
  configs.validate_train(config.zs_train)
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


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  t0 = time.perf_counter()
  clip_cfg, clip_params, tokenizer = load_clip(config)
  if config.data.image_size != clip_cfg.vision.image_size:
    logging.info("data.image_size %d -> %d (the CLIP's resolution)", config.data.image_size,
                 clip_cfg.vision.image_size)
  source = common.make_source(config.data, image_size=clip_cfg.vision.image_size,
                              **({"protocol": "zero_shot"} if config.data.dataset == "synth" else {}))
  from sgvu.models.clip import CLIP
  seen = source.split("train").categories
  class_text = clip_pretrain.class_text_embeddings(CLIP(clip_cfg), clip_params, tokenizer, seen)
  logit_scale = float(np.exp(np.asarray(clip_params["logit_scale"])))
  metric_names = INSTANCE_METRICS if config.level == "instance" else CATEGORY_METRICS

  rows = []
  for name in config.methods:
    method = METHODS[config.level][name]
    method_dir = os.path.join(workdir, name)
    row_file = os.path.join(method_dir, "row.json")
    if os.path.exists(row_file):  # finished in an earlier, interrupted run of this command
      with open(row_file) as f:
        rows.append(json.load(f))
      logging.info("%s: reusing %s", name, row_file)
      continue
    task = ZSSBIRTask(config, method, clip_cfg, clip_params, source, class_text, logit_scale)
    t_method = time.perf_counter()
    if method.trains:
      tc = method_train_config(config, method)
      setup = train.build(task, tc)
      logging.info("%s: %s trainable parameters (%s frozen)", name, f"{setup.num_trainable:,}",
                   f"{setup.num_frozen:,}")
      params, evals = train.fit(task, tc, method_dir, setup=setup)
      result, trainable = evals[-1], setup.num_trainable
    else:
      params = train.unflatten(task.pretrained())
      result, trainable = task.evaluate(params), 0
    row = {"method": name, "split": "unseen", **{k: float(result[k]) for k in metric_names},
           "trainable_params": int(trainable), "seconds": round(time.perf_counter() - t_method, 1)}
    rows.append(row)
    if jax.process_index() == 0:
      os.makedirs(method_dir, exist_ok=True)
      with open(row_file, "w") as f:
        json.dump(row, f)
    common.write_results(workdir, config.name, rows, level=config.level)
    logging.info("%s: %s", name, " ".join(f"{k}={row[k]:.4f}" for k in metric_names))
    if name == config.grid_method:
      _draw_grid(task, params, workdir, config)

  table = common.format_table(rows, metric_names)
  wall = time.perf_counter() - t0
  common.write_results(workdir, config.name, rows, level=config.level, wall_seconds=round(wall, 1))
  print(f"\n{config.name}: unseen categories, {config.data.dataset} ({wall / 60:.1f} min)\n{table}\n")
  return {"rows": rows}


def _draw_grid(task: ZSSBIRTask, params, workdir: str, config) -> None:
  from sgvu import viz
  (q, ql, qi), (g, gl, gi) = task.embed(params, "test")
  rng = np.random.default_rng(0)
  pick = rng.choice(len(q), size=min(config.grid_queries, len(q)), replace=False)
  idx, _ = metrics.topk(q[pick], g, 10)
  split = task.source.split("test")
  size = task.image_size
  queries = [pipeline.render_sketch(task.source, split.sketches[qi[p]], size) for p in pick]
  hits = [[pipeline.load_photo(task.source, split.photos[gi[j]], size) for j in row] for row in idx]
  if config.level == "instance":
    correct = [[split.photos[gi[j]].key == split.photos[split.sketches[qi[p]].photo].key for j in row]
               for p, row in zip(pick, idx)]
  else:
    correct = [[gl[j] == ql[p] for j in row] for p, row in zip(pick, idx)]
  path = os.path.join(workdir, "retrieval_grid.png")
  if jax.process_index() == 0:
    viz.retrieval_grid(queries, hits, correct, path, title=f"{config.name}: {config.grid_method}, top-10")
    logging.info("retrieval grid: %s", path)
