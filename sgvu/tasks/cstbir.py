"""Composed sketch+text scene retrieval (CSTBIR) and STNet (seed 000).

Query: a sketch of one object + the scene's caption with that object's words replaced by a placeholder
("a * and a plain blue cup on a grassy field"); target: the scene image. STNet encodes the text with the CLIP
text tower (the placeholder is a learned token), the sketch with a ViT trained as a sketch classifier and then
frozen, and re-weights the CLIP image tower's patch tokens by the sketch (alpha = softmax(H_I h_S),
h_I = sum alpha H_I); score = cos(h_T, h_I). Losses: InfoNCE (L_CT), object classification from the text and
the image side (L_CLS), sketched-object detection on the re-weighted tokens (L_OD), sketch reconstruction
(L_SR). Because h_I depends on the query's sketch, evaluation re-weights cached image tokens per query in
blocks. The baselines (text-only, sketch-only, two-stage, TIRG) and the loss ablations are rows of METHODS.
"""

from __future__ import annotations

import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from sgvu import configs, evaluators, experiment, interrupt, losses, preprocess, train
from sgvu.data import composed, composed_pipeline
from sgvu.evaluators import composed as composed_eval
from sgvu.models import stnet
from sgvu.tasks import clip_pretrain, composed_common, composed_pictures
from sgvu.tasks.base import Task
from sgvu.tasks.composed_common import fills


@dataclasses.dataclass(frozen=True)
class Method:
  kind: str  # 'text-only' | 'sketch-only' | 'two-stage' | 'tirg' | 'stnet'
  cls: bool = True
  od: bool = True
  sr: bool = True


METHODS = {
    "text-only": Method("text-only"), "sketch-only": Method("sketch-only"), "two-stage": Method("two-stage"),
    "tirg": Method("tirg"), "stnet": Method("stnet"),
    "stnet-ct": Method("stnet", cls=False, od=False, sr=False),
    "stnet-ct-od-sr": Method("stnet", cls=False), "stnet-ct-cls-sr": Method("stnet", od=False),
    "stnet-ct-cls-od": Method("stnet", sr=False),
}
KS = (10, 20, 50, 100)
NEW_PARAMS = r"(heads|tirg)/.*|placeholder"  # what no pretrained model provides


def metric_names(evals) -> list[str]:
  spec = next(iter(evals.values()))
  return [f"{label} R@{k}" for _, label in spec.splits for k in spec.get("ks", KS)] + \
         [f"{label} MdR" for _, label in spec.splits]


def contrastive(logits: jax.Array, positives: jax.Array) -> jax.Array:
  """Symmetric InfoNCE on a [B, B] logit matrix; every positive pair (same image) shares the target."""
  p = positives.astype(logits.dtype)
  return 0.5 * (optax.softmax_cross_entropy(logits, p / p.sum(1, keepdims=True)).mean()
                + optax.softmax_cross_entropy(logits.T, p.T / p.T.sum(1, keepdims=True)).mean())


def text_forms(texts, labels, categories, form: str) -> list[str]:
  """'slot': the placeholder stays (a learned token); 'removed': the object's words are gone (text-only);
  'named': the category name in the placeholder's place."""
  if form == "slot":
    return list(texts)
  if form == "removed":
    return [" ".join(t.replace(composed.PLACEHOLDER, " ").split()) for t in texts]
  return [t.replace(composed.PLACEHOLDER, categories[int(l)]) for t, l in zip(texts, labels)]


class SketchClassifierTask(Task):
  """The STNet sketch encoder's stage: the CLIP image tower fine-tuned as a classifier of train sketches."""

  def __init__(self, config, clip_cfg, clip_params, arrays, train_rows):
    super().__init__(config)
    self.model = stnet.SketchClassifier(clip_cfg.vision, int(np.sum(np.asarray(train_rows) >= 0)))
    self.clip_img, self.arrays, self.size = clip_params["img"], arrays, clip_cfg.vision.image_size
    self.class_row = jnp.asarray(train_rows)

  def init_params(self, rng):
    return self.model.init(rng, jnp.zeros((1, self.size, self.size, 3)))["params"]

  def pretrained(self):
    return train.flatten({"img": self.clip_img})

  def loss_fn(self, params, batch, rng):
    _, logits = self.model.apply({"params": params}, preprocess.normalize_images(batch["sketch"]))
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, self.class_row[batch["label"]]).mean()
    return loss, {"cls": loss, "acc": jnp.mean(jnp.argmax(logits, -1) == self.class_row[batch["label"]])}

  def train_iterator(self, batch_size, seed):
    return composed_pipeline.query_loader(self.arrays, dataset="sketches", batch_size=batch_size, seed=seed,
                                          mask_size=8, tokenize=lambda texts, labels: {})


class CSTBIRTask(Task):
  """One row. Params: 'img', 'txt' (CLIP), 'sketch' (the frozen classifier), 'heads', 'placeholder', 'tirg'."""

  def __init__(self, config, method: Method, towers, clip_params, sketch_params, source, train_rows, arrays,
               features: dict | None = None):
    super().__init__(config)
    self.features = {} if features is None else features  # the table's FrozenFeatures, shared by its rows
    self.method, self.towers, self.source, self.arrays = method, towers, source, arrays
    self.clip = {"img": clip_params["img"], "txt": clip_params["txt"]}
    self.sketch_params = sketch_params
    self.size = towers.cfg.vision.image_size
    self.width, e = towers.cfg.text.width, towers.cfg.embed_dim
    self.class_row = jnp.asarray(train_rows)
    num_train = int(np.sum(np.asarray(train_rows) >= 0))
    s = config.cstbir
    self.grid = self.size // towers.cfg.vision.patch_size
    self.classifier = stnet.SketchClassifier(towers.cfg.vision, num_train)
    self.heads = stnet.STNetHeads(e, e, num_train, self.grid, s.mask_size, s.decoder_width)
    self.tirg = stnet.TIRG(e)
    self.logit_scale = float(np.exp(np.asarray(clip_params["logit_scale"])))
    self.form = {"text-only": "removed", "tirg": "removed", "two-stage": "named"}.get(method.kind, "slot")

  def init_params(self, rng):
    k1, k2 = jax.random.split(rng)
    e = self.towers.cfg.embed_dim
    params = {**self.clip, "sketch": self.sketch_params}
    if self.method.kind == "stnet":
      width = self.towers.cfg.vision.width
      params["heads"] = self.heads.init(k1, jnp.zeros((1, self.grid * self.grid, width)), jnp.zeros((1, e)))["params"]
      params["placeholder"] = jnp.mean(jnp.asarray(self.clip["txt"]["token_embedding"]), 0, keepdims=True)
    if self.method.kind == "tirg":
      params["tirg"] = self.tirg.init(k2, jnp.zeros((1, e)), jnp.zeros((1, e)))["params"]
    return params

  def pretrained(self):
    weights = {"img": self.clip["img"], "txt": self.clip["txt"], "sketch": self.sketch_params}
    if self.method.kind == "stnet":  # patch tokens enter the joint space the way the CLS token does
      weights["heads"] = {"token_ln": self.clip["img"]["ln_post"], "token_proj": {"kernel": self.clip["img"]["proj"]}}
    return train.flatten(weights)

  def is_trainable(self, path):
    if path.startswith("sketch/"):
      return False  # trained as a classifier in its own stage, then frozen (as in the paper)
    if path.startswith(("img/", "txt/")):
      siamese = self.method.kind == "sketch-only" and composed_common.layernorm_or(())(path)
      return siamese or any(path.startswith(p) for p in self.config.cstbir.clip_trainable)
    return True

  # -- encoders (pure)
  def image_embed(self, params, images):
    return self.towers.image(params["img"], preprocess.normalize_images(images))

  def sketch_embed(self, params, sketches):
    emb, logits = self.classifier.apply({"params": params["sketch"]}, preprocess.normalize_images(sketches))
    return emb, logits

  def text_embed(self, params, tokens, kinds):
    if self.method.kind == "stnet":
      return self.towers.slotted(params["txt"], tokens, kinds,
                                 fills(self.width, sketch=jnp.broadcast_to(params["placeholder"][None],
                                                                           (tokens.shape[0], 1, self.width))))
    return self.towers.text(params["txt"], tokens)

  def tokenize(self, texts, labels):
    tokens, kinds = self.towers.tokenize(text_forms(texts, labels, self.source.categories, self.form))
    return {"tokens": tokens, "kinds": kinds}

  # -- training
  def frozen_features(self) -> bool:
    """Whether training reads precomputed outputs of the frozen encoders (train_features) instead of pixels."""
    return "img/" not in self.config.cstbir.clip_trainable and self.method.kind != "sketch-only"

  def train_features(self) -> dict[str, np.ndarray]:
    """The frozen encoders over the training split, once per table (the rows share the cache)."""
    a, out = self.arrays, {}
    fns = self.predict_parts()
    cls, tokens = _in_batches(lambda x: fns["image"](self.clip["img"], x), a.images)
    out.update(image_cls=cls, image_tokens=tokens)
    if self.method.kind == "tirg":
      out["sketch_cls"] = _in_batches(lambda x: fns["image"](self.clip["img"], x), a.sketches)[0]
    if self.method.kind == "stnet":
      out["sketch_emb"] = _in_batches(lambda x: fns["sketch"](self.sketch_params, x), a.sketches)[0]
    return out

  def _image(self, params, batch):
    """(CLS embedding, projected patch tokens or None) of the batch's target images."""
    if "image_cls" in batch:
      tokens = batch["image_tokens"]
    else:
      cls, tokens = self.towers.image(params["img"], preprocess.normalize_images(batch["image"]), return_tokens=True)
      batch = {**batch, "image_cls": cls}
      tokens = tokens[:, 1:]
    if self.method.kind != "stnet":
      return batch["image_cls"], None
    return batch["image_cls"], self.heads.apply({"params": params["heads"]}, tokens,
                                                method=stnet.STNetHeads.project_tokens)

  def loss_fn(self, params, batch, rng):
    del rng
    m, s = self.method, self.config.cstbir
    positives = batch["image_index"][:, None] == batch["image_index"][None]
    gallery, tokens = self._image(params, batch)
    if m.kind != "stnet":
      if "sketch_cls" in batch or "sketch" not in batch:
        query = self._query_from(params, batch.get("sketch_cls"), batch["tokens"], batch["kinds"])
      else:
        query = self._query(params, batch["sketch"], batch["tokens"], batch["kinds"])
      logits = self.logit_scale * losses.l2_normalize(query) @ losses.l2_normalize(gallery).T
      loss = contrastive(logits, positives)
      return loss, {"ct": loss}
    h_t = self.text_embed(params, batch["tokens"], batch["kinds"])
    sketch_emb = batch["sketch_emb"] if "sketch_emb" in batch else self.sketch_embed(params, batch["sketch"])[0]
    h_s = self.heads.apply({"params": params["heads"]}, sketch_emb, method=stnet.STNetHeads.project_sketch)
    scale = self.heads.apply({"params": params["heads"]}, method=stnet.STNetHeads.scale)
    pooled, _ = stnet.reweight(tokens, h_s, scale)  # [Q=B, G=B, E]: every image under every query's sketch
    logits = self.logit_scale * jnp.einsum("qe,qge->qg", losses.l2_normalize(h_t), losses.l2_normalize(pooled))
    terms = {"ct": contrastive(logits, positives)}
    h_i, alpha = stnet.reweight_paired(tokens, h_s, scale)
    apply = lambda fn, *x: self.heads.apply({"params": params["heads"]}, *x, method=fn)
    targets = self.class_row[batch["label"]]
    if m.cls:
      ce = lambda logits_: optax.softmax_cross_entropy_with_integer_labels(logits_, targets).mean()
      terms["cls"] = s.cls_weight * 0.5 * (ce(apply(stnet.STNetHeads.classify_text, h_t)) +
                                           ce(apply(stnet.STNetHeads.classify_image, h_i)))
    if m.od:
      boxes = apply(stnet.STNetHeads.boxes, tokens * (tokens.shape[1] * alpha)[..., None])  # uniform alpha: as is
      terms["od"] = s.od_weight * stnet.grid_box_loss(boxes, batch["box"], batch["has_box"], self.grid)
    if m.sr:
      recon = apply(stnet.STNetHeads.decode_sketch, h_i)
      terms["sr"] = s.sr_weight * stnet.bce_dice_loss(recon, batch["sketch_mask"])
    return sum(terms.values()), terms

  def _query(self, params, sketches, tokens, kinds):
    if self.method.kind == "sketch-only":  # Siamese: the image tower embeds sketches too
      return self.image_embed(params, sketches)
    sketch_cls = self.image_embed(params, sketches) if self.method.kind == "tirg" else None
    return self._query_from(params, sketch_cls, tokens, kinds)

  def _query_from(self, params, sketch_cls, tokens, kinds):
    """The text-side query of the non-STNet rows, from the image tower's embedding of the sketch (tirg)."""
    t = self.text_embed(params, tokens, kinds)
    if self.method.kind == "tirg":
      return self.tirg.apply({"params": params["tirg"]}, sketch_cls, t)
    return t

  def train_iterator(self, batch_size, seed):
    features = self.features_for_training() if self.frozen_features() else None
    return composed_pipeline.query_loader(self.arrays, dataset=self.source.name, batch_size=batch_size, seed=seed,
                                          mask_size=self.config.cstbir.mask_size, tokenize=self.tokenize,
                                          features=features)

  def features_for_training(self) -> dict[str, np.ndarray]:
    key = ("train", self.method.kind)
    if key not in self.features:
      self.features[key] = self.train_features()
    return self.features[key]

  # -- evaluation: predict functions for sgvu.evaluators.composed
  def predict_parts(self) -> dict:
    """The image tower ((CLS, patch tokens) of uint8 images) and the sketch classifier ((embedding, logits));
    through the table's FrozenFeatures caches where frozen."""
    def image_tower(p, x):
      cls, tokens = self.towers.image(p, preprocess.normalize_images(x), return_tokens=True)
      return cls, tokens[:, 1:]
    image = jax.jit(image_tower)
    sketch = jax.jit(lambda p, x: self.sketch_embed({"sketch": p}, x))
    if self.frozen_features():
      image = self.features.setdefault("image", composed_common.FrozenFeatures(image))
    return {"image": image, "sketch": self.features.setdefault("sketch", composed_common.FrozenFeatures(sketch))}

  def predict_fns(self):
    """Frozen encoders (the sketch classifier; the image tower unless cstbir.clip_trainable has 'img/') go
    through the table's FrozenFeatures caches, so each row after the first reuses the gallery's features."""
    jit, kind = jax.jit, self.method.kind
    parts = self.predict_parts()
    image_feats, sketch_feats = parts["image"], parts["sketch"]
    text = jit(self.text_embed)
    heads = lambda fn: jit(lambda p, x: self.heads.apply({"params": p["heads"]}, x, method=fn))
    project_sketch, project_tokens = heads(stnet.STNetHeads.project_sketch), heads(stnet.STNetHeads.project_tokens)
    tirg = jit(lambda p, x, t: self.tirg.apply({"params": p["tirg"]}, x, t))
    train_names = np.flatnonzero(np.asarray(self.class_row) >= 0)  # source labels of the classifier's rows

    def embed_queries(p, sketches, texts, labels):
      if kind == "two-stage":  # the sketch classifier names the object; CLIP does the rest
        labels = train_names[np.argmax(sketch_feats(p["sketch"], sketches)[1], -1)]
      if kind == "sketch-only":
        return image_feats(p["img"], sketches)[0]
      t = self.tokenize(texts, labels)
      h_t = text(p, jnp.asarray(t["tokens"]), jnp.asarray(t["kinds"]))
      if kind == "tirg":
        return tirg(p, image_feats(p["img"], sketches)[0], h_t)
      if kind == "stnet":
        return h_t, project_sketch(p, sketch_feats(p["sketch"], sketches)[0])
      return h_t

    def embed_images(p, images):
      cls, tokens = image_feats(p["img"], images)
      return project_tokens(p, tokens) if kind == "stnet" else cls

    def score(p, q, g):
      if kind == "stnet":
        scale = self.heads.apply({"params": p["heads"]}, method=stnet.STNetHeads.scale)
        return stnet.blocked_scores(jnp.asarray(q[0]), jnp.asarray(q[1]), jnp.asarray(g), scale,
                                    block=self.config.cstbir.score_block)
      return losses.l2_normalize(jnp.asarray(q)) @ losses.l2_normalize(jnp.asarray(g)).T
    return {"embed_queries": embed_queries, "embed_images": embed_images, "score": score}


def _in_batches(fn, x: np.ndarray, size: int = 256):
  parts = [fn(x[i:i + size]) for i in range(0, len(x), size)]
  return tuple(np.concatenate([np.asarray(p[j]) for p in parts]) for j in range(len(parts[0])))


def train_rows(source) -> np.ndarray:
  """Classifier row of each source category ([-1] for those never sketched in training)."""
  rows = np.full(len(source.categories), -1, np.int32)
  for r, name in enumerate(source.split("train").categories):
    rows[source.categories.index(name)] = r
  return rows


def sketch_stage(config, directory: str, clip_cfg, clip_params, train_arrays, rows) -> tuple[dict, dict]:
  """The frozen sketch encoder: trained once per config in DIRECTORY, then reused by every row."""
  task = SketchClassifierTask(config, clip_cfg, clip_params, train_arrays, rows)
  path = os.path.join(directory, "sketch_classifier.npz")
  settings = {"sketch_train": config.sketch_train, "data": config.data, "clip": config.model,
              "clip_train": config.get("clip_train")}
  if experiment.cached_stage(directory, settings, code=experiment.code_version(config.task)):
    logging.info("sketch classifier: reusing %s", directory)
    with np.load(path) as z:
      return train.unflatten({k: np.asarray(z[k]) for k in z.files if k != "train_acc"}), \
             {"train_acc": float(z["train_acc"])}
  params, records = train.fit(task, config.sketch_train, directory, evaluate=lambda p: {})
  interrupt.check("after training the sketch classifier")
  acc = float(np.mean(np.asarray(jax.jit(lambda p, x: jnp.argmax(task.model.apply(
      {"params": p}, preprocess.normalize_images(x))[1], -1))(params, train_arrays.sketches[:512])) ==
      np.asarray(rows)[train_arrays.labels[:512]]))
  if jax.process_index() == 0:
    flat = {k: np.asarray(v) for k, v in train.flatten(params).items()}
    np.savez(path + ".tmp.npz", train_acc=np.float64(acc), **flat)
    os.replace(path + ".tmp.npz", path)
    experiment.finish_stage(directory)
  del records
  return params, {"train_acc": acc}


def validate(config: ml_collections.ConfigDict) -> None:
  unknown = [m for m in config.methods if m not in METHODS]
  if unknown or not config.methods:
    raise ValueError(f"config.methods: unknown {unknown} (or empty); valid: {sorted(METHODS)}")
  configs.check_choice(config, "data.dataset", ["synth_scenes", "cstbir", "fscoco"])
  clip_pretrain.validate_clip_init(composed_common.clip_view(config))
  configs.validate_train(config.cstbir_train)
  configs.validate_train(config.sketch_train)
  evaluators.validate(config.evals)
  if len(config.evals) != 1 or next(iter(config.evals.values())).type != "composed":
    raise ValueError("config.evals: cstbir is scored by one 'composed' evaluator")
  for prefix in config.cstbir.clip_trainable:
    if prefix not in ("img/", "txt/"):
      raise ValueError(f"config.cstbir.clip_trainable: {prefix!r}; valid entries: 'img/', 'txt/'")
  configs.check_positive(config, "cstbir.mask_size", "cstbir.score_block", "eval_batch_size")


def table(config: ml_collections.ConfigDict, workdir: str) -> experiment.Table:
  """Seed 000's CSTBIR table: every row trained on the train scenes, scored on Test-1K, Test-5K and open."""
  clip_cfg, clip_params, tokenizer = composed_common.load_clip(config)
  towers = composed_common.Towers(clip_cfg, tokenizer)
  size = clip_cfg.vision.image_size
  source = composed_common.make_source(config)
  spec = next(iter(config.evals.values()))
  render = lambda name: composed_pipeline.materialize_split(source, name, size, strict=config.data.strict)
  train_arrays = render("train")
  arrays = {name: render(name) for name, _ in spec.splits}
  rows = train_rows(source)
  features = {}  # frozen encoders' outputs, shared by every row (CSTBIRTask.predict_fns)
  sketch_params, stage_info = sketch_stage(config, os.path.join(workdir, "sketch_stage"), clip_cfg, clip_params,
                                           train_arrays, rows)

  def run_row(name: str, seed: int, directory: str) -> dict:
    task = CSTBIRTask(config, METHODS[name], towers, clip_params, sketch_params, source, rows, train_arrays, features)
    evals = evaluators.build(config.evals, task.predict_fns(), arrays=arrays, batch_size=config.eval_batch_size)
    tc = composed_common.row_train_config(config.cstbir_train, name, seed, dict(config.cstbir.steps),
                                          dict(config.cstbir.lrs))
    if config.cstbir.heads_lr:  # the new heads start from scratch; the CLIP towers at the row's lr
      tc.optim.param_lrs = ((NEW_PARAMS, float(config.cstbir.heads_lr)),)
    setup = train.build(task, tc)
    params, records = train.fit(task, tc, directory, setup=setup, evaluate=lambda p: evaluators.run_all(evals, p))
    if seed == 0 and name == config.grid_method:
      composed_pictures.draw(config, task.predict_fns(), params, arrays[spec.splits[0][0]], workdir,
                             within_category=False, name=name)
    return {**{k: v for k, v in records[-1].items() if k != "step"}, "trainable_params": int(setup.num_trainable)}

  clip = clip_pretrain.clip_extra(composed_common.clip_view(config))["clip"]
  sizes = ", ".join(f"{label}: {len(arrays[n])} queries / {len(arrays[n].images)} images" for n, label in spec.splits)
  return experiment.Table(
      name=config.name, split="test", metrics=metric_names(config.evals), methods=tuple(config.methods),
      run_row=run_row, settings=lambda name: {"config": config, "method": name}, seeds=config.seeds,
      description=f"{config.data.dataset} ({sizes}; train {len(train_arrays)}); CLIP {clip.get('source')}",
      smoke_test=config.get("smoke_test", False),
      extra={"clip": clip, "sketch_classifier": stage_info, "skipped": {
          n: len(a.skipped) for n, a in {**arrays, "train": train_arrays}.items()}},
      fingerprint=experiment.table_fingerprint(config), code=experiment.code_version(config.task),
      baseline="text-only")


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  started = time.perf_counter()
  return experiment.run(table(config, workdir), workdir, started=started)
