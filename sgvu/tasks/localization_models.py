"""The trainable methods of sketch-guided localization (seed 000): the rows, their models and losses.

Rows (`METHODS`), a 2 x 2 of the CMA paper's two ideas plus its extensions:
  faster-rcnn       the paper's "modified Faster R-CNN": a plain RPN on the image features, proposals scored
                    against the sketch ([region ; sketch] scorer), region cross-entropy only
  cma-no-attention  + the margin-ranking loss (the release's 'basic' model: no cross-modal attention)
  cma-no-ranking    + cross-modal attention before the RPN (query-guided RPN), no margin-ranking loss
  cma               both (ECCV 2020)
  cma-3-sketches    cma with 3 sketches per query (fused as config.cma.sketch_fusion)
  vit               LocFormer (WACV 2024): query-guided attention in a ViT, set prediction
Every CMA row shares config.cma; `faster-rcnn` and `cma-no-attention` differ only in the margin weight.

Tasks see batches of `sgvu.data.localization_pipeline` and expose one predict function, 'detect':
(variables, images uint8, sketches uint8) -> {boxes [B, D, 4] canvas pixels, scores [B, D], valid [B, D]}.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sgvu import preprocess
from sgvu.data import localization_pipeline
from sgvu.detection import losses as det_losses
from sgvu.detection import set_losses
from sgvu.models import locformer
from sgvu.models.cma import CMA, CMAConfig
from sgvu.tasks.base import Task, regex_matcher


@dataclasses.dataclass(frozen=True)
class LocMethod:
  model: str = "cma"  # 'cma' | 'locformer'
  attention: bool = True  # cma: cross-modal attention before the RPN
  ranking: bool = True  # cma: the margin-ranking loss (weight config.loss.margin_weight)
  num_sketches: int = 1


METHODS: dict[str, LocMethod] = {
    "faster-rcnn": LocMethod(attention=False, ranking=False),
    "cma-no-attention": LocMethod(attention=False),
    "cma-no-ranking": LocMethod(ranking=False),
    "cma": LocMethod(),
    "cma-3-sketches": LocMethod(num_sketches=3),
    "vit": LocMethod(model="locformer"),
    "vit-3-sketches": LocMethod(model="locformer", num_sketches=3),
}


def rbg_key(key: jax.Array) -> jax.Array:
  """The same randomness as an 'rbg' key: XLA's CPU compile of threefry costs seconds per random op, and a
  detector has many (RoI and anchor sampling, initialisers)."""
  return jax.random.wrap_key_data(jnp.tile(jax.random.key_data(key).reshape(-1)[:2], 2), impl="rbg")


def cma_config(config: ml_collections.ConfigDict, method: LocMethod) -> CMAConfig:
  return CMAConfig.from_dict(config.cma.to_dict(), "config.cma").replace(
      use_attention=method.attention, num_sketches=method.num_sketches)


def locformer_config(config: ml_collections.ConfigDict, method: LocMethod) -> locformer.LocFormerConfig:
  d = config.locformer.to_dict()
  d["sketch"] = {**d.get("sketch", {}), "image_size": config.data.sketch_size}
  return locformer.LocFormerConfig.from_dict({**d, "image_size": config.data.max_side,
                                              "num_sketches": method.num_sketches})


class LocalizationTask(Task):
  """What both model families share: data, inputs, trainable parameters."""

  def __init__(self, config: ml_collections.ConfigDict, method: LocMethod, source):
    super().__init__(config)
    self.method, self.source = method, source
    d = config.data
    self.side, self.sketch_size = d.max_side, d.sketch_size
    self.frozen_patterns = tuple(config.frozen_params.get(method.model, ()))
    self._frozen = regex_matcher(self.frozen_patterns)

  def dummy_inputs(self):
    return (jnp.zeros((1, self.side, self.side, 3)),
            jnp.zeros((1, self.method.num_sketches, self.sketch_size, self.sketch_size, 3)))

  def inputs(self, batch):
    return preprocess.normalize_images(batch["images"]), preprocess.normalize_images(batch["sketches"])

  def is_trainable(self, path: str) -> bool:
    return not self._frozen(path)

  def pretrained(self):
    """config.model.init: an .npz of '/'-joined parameter paths (e.g. a converted ImageNet ResNet-50)."""
    path = self.config.model.get("init", "")
    if not path:
      return {}
    with np.load(path) as f:
      return {k: f[k] for k in f.files}

  def train_iterator(self, batch_size, seed):
    d = self.config.data
    return localization_pipeline.train_loader(self.source, d.train_split, batch_size=batch_size,
                                              short_side=d.short_side, max_side=d.max_side,
                                              max_boxes=d.max_boxes, seed=seed, num_workers=d.num_workers,
                                              strict=d.strict)


class CMATask(LocalizationTask):
  """CMA rows: RPN + region losses (+ margin ranking), BatchNorm statistics as config.cma.batchnorm says."""

  def __init__(self, config, method, source):
    super().__init__(config, method, source)
    self.model_config = cma_config(config, method)
    self.model = CMA(self.model_config)
    w = config.loss
    self.weights = {"rpn_cls": w.rpn_cls, "rpn_box": w.rpn_box, "region_cls": w.region_cls,
                    "region_box": w.region_box, "margin": w.margin_weight if method.ranking else 0.0}

  def init_variables(self, rng):
    return dict(self.model.init(rbg_key(rng), *self.dummy_inputs()))

  def loss_with_state(self, params, model_state, batch, rng, *, update_state):
    del update_state  # the loop keeps the old statistics when they are frozen
    rng = rbg_key(rng)
    model_rng, loss_rng = jax.random.split(rng)
    images, sketches = self.inputs(batch)
    out, new_state = self.model.apply(
        {"params": params, **model_state}, images, sketches, batch["gt_boxes"], batch["gt_valid"],
        batch["gt_query"], model_rng, method=CMA.train_forward, mutable=list(model_state))
    loss, terms = det_losses.cma_losses(out, batch["gt_boxes"], batch["gt_valid"], loss_rng, self.weights,
                                        margin_reduction=self.config.loss.margin_reduction,
                                        **self.model_config.rpn_target_kwargs())
    return loss, terms, {**model_state, **new_state}

  def detect(self, variables, images, sketches):
    return self.model.apply(variables, preprocess.normalize_images(images), preprocess.normalize_images(sketches),
                            method=CMA.detect)

  def predict_fns(self):
    return {"detect": jax.jit(self.detect)}


class LocFormerTask(LocalizationTask):
  """The `vit` rows: focal + L1 + GIoU on Hungarian matches to the query boxes (every other object is background)."""

  def __init__(self, config, method, source):
    super().__init__(config, method, source)
    self.model_config = locformer_config(config, method)
    self.model = locformer.LocFormer(self.model_config)
    s = config.set_loss
    self.loss_config = set_losses.SetLossConfig(**s.to_dict())

  def init_params(self, rng):
    return self.model.init(rbg_key(rng), *self.dummy_inputs())["params"]

  def loss_fn(self, params, batch, rng):
    del rng
    out = self.model.apply({"params": params}, *self.inputs(batch))
    boxes = set_losses.normalize_boxes(batch["gt_boxes"], (self.side, self.side))
    terms = set_losses.locformer_loss(out, boxes, batch["gt_query"], self.loss_config)
    terms = {k: v for k, v in terms.items() if k != "gt_for_query"}
    return terms["loss"], terms

  def detect(self, variables, images, sketches, top_d: int):
    out = self.model.apply(variables, preprocess.normalize_images(images), preprocess.normalize_images(sketches))
    det = locformer.detect(out, (self.side, self.side), top_d)
    return {"boxes": det["boxes"], "scores": det["scores"], "valid": jnp.ones_like(det["scores"], bool)}

  def predict_fns(self):
    top_d = self.model_config.num_queries  # every query, best first (no NMS: one query per object)
    return {"detect": jax.jit(functools.partial(self.detect, top_d=top_d))}


def make_task(config: ml_collections.ConfigDict, name: str, source) -> LocalizationTask:
  method = METHODS[name]
  return (CMATask if method.model == "cma" else LocFormerTask)(config, method, source)
