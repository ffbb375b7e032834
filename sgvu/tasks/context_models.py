"""The rows of the context-prediction table (seed 003) and the tasks that train them.

Every trained row is one of three tasks on the same AlexNet-style trunk (sgvu/models/context_net.py):
- PretextTask: 8-way relative position of two patches (photo-photo, edge-edge or photo-edge), late fusion;
- ClassifierTask: the trunk as a photo classifier on other categories: the stand-in for ImageNet weights, trained
  once per table and shared by the rows that start from it ('init' all / lower);
- TripletTask: the supervised reference (the Sketchy paper's Siamese triplet): sketch, its photo, another photo
  of its class.
Retrieval (every row) embeds sketches and photos by the trunk's fc6; `hog-pyramid` by spatial-pyramid HOG of the
sketch and of the photo's Canny edges.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from sgvu import losses, preprocess, train
from sgvu.data import context_pretext, edges as edges_lib
from sgvu.models import context_net, hog_pyramid
from sgvu.tasks.base import Task


@dataclasses.dataclass(frozen=True)
class ContextMethod:
  kind: str  # 'random' | 'classifier' | 'hog' | 'triplet' | 'pretext'
  mode: str = ""  # pretext: 'photo' | 'edge' | 'cross'
  init: str = "none"  # trunk layers copied from the classifier: 'none' | 'lower' | 'all'
  batchnorm: bool = True

  @property
  def trains(self) -> bool:
    return self.kind in ("random", "triplet", "pretext")  # random: a seed is another initialisation


METHODS: dict[str, ContextMethod] = {
    "random-init": ContextMethod("random"),
    "classifier": ContextMethod("classifier", init="all"),  # the seed's "AlexNet pretrained"
    "hog-pyramid": ContextMethod("hog", batchnorm=False),  # the seed's spatial pyramid (SP)
    "supervised-triplet": ContextMethod("triplet", init="all"),  # the seed's "Sketchy" (supervised)
    "pretext-photo": ContextMethod("pretext", mode="photo", init="all"),
    "pretext-edge": ContextMethod("pretext", mode="edge", init="all"),
    "ours": ContextMethod("pretext", mode="cross", init="all"),  # the seed reports pretrained + BatchNorm
    "ours-init-none": ContextMethod("pretext", mode="cross", init="none"),
    "ours-init-lower": ContextMethod("pretext", mode="cross", init="lower"),
    "ours-no-bn": ContextMethod("pretext", mode="cross", init="all", batchnorm=False),
}


def net_config(config: ml_collections.ConfigDict, batchnorm: bool) -> context_net.ContextNetConfig:
  m = config.model
  return context_net.ContextNetConfig(widths=tuple(m.widths), stride1=m.stride1, fc6_grid=m.fc6_grid, fc6=m.fc6, fc7=m.fc7,
                                      batchnorm=batchnorm, dropout=m.dropout, dtype=m.dtype)


def geometry(config: ml_collections.ConfigDict) -> context_pretext.Geometry:
  p = config.pretext
  return context_pretext.Geometry(patch=p.patch, gap=p.gap, jitter=p.jitter)


def flat_variables(variables: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """Flax variables -> the `pretrained()` path convention: 'trunk/conv1/kernel', 'batch_stats/trunk/bn1/mean'."""
  out = {k: np.asarray(v) for k, v in train.flatten(variables["params"]).items()}
  for collection, tree in variables.items():
    if collection != "params":
      out.update({f"{collection}/{k}": np.asarray(v) for k, v in train.flatten(tree).items()})
  return out


def _normalize(images):
  return preprocess.normalize_images(images)


class _TrunkTask(Task):
  """A model with a `trunk` and an `embed` method; optionally starts from classifier weights."""

  model: Any

  def __init__(self, config, batchnorm: bool, init: str = "none", init_weights: Mapping[str, np.ndarray] | None = None):
    super().__init__(config)
    self.net_config = net_config(config, batchnorm)
    self.init, self.init_weights = init, dict(init_weights or {})
    if init != "none" and not self.init_weights:
      raise ValueError(f"init={init!r} needs the classifier's weights")

  def pretrained(self):
    if self.init == "none":
      return {}
    pattern = context_net.trunk_paths(self.init)
    import re  # pylint: disable=g-import-not-at-top
    chosen = {k: v for k, v in self.init_weights.items() if re.fullmatch(pattern, k)}
    if not chosen:
      raise ValueError(f"init={self.init!r}: no classifier weight matches {pattern!r}")
    return chosen

  def _apply(self, params, model_state, *args, rng, train_mode: bool, method=None):
    variables = {"params": params, **model_state}
    if train_mode and model_state:
      return self.model.apply(variables, *args, train=True, mutable=list(model_state), rngs={"dropout": rng},
                              method=method)
    return self.model.apply(variables, *args, train=train_mode, rngs={"dropout": rng}, method=method), {}

  def embed(self, variables, images):
    return self.model.apply(variables, _normalize(images), method=type(self.model).embed)

  def predict_fns(self):
    fn = jax.jit(self.embed)
    return {"embed_sketch": fn, "embed_photo": fn}


class PretextTask(_TrunkTask):
  """Relative position of patch b around patch a (8 classes), from `photos` and their edge maps."""

  def __init__(self, config, method: ContextMethod, photos: np.ndarray, edges: np.ndarray, init_weights=None):
    super().__init__(config, method.batchnorm, method.init, init_weights)
    self.mode, self.photos, self.edges = method.mode, photos, edges
    self.model = context_net.ContextNet(self.net_config)
    self.geometry = geometry(config)

  def init_variables(self, rng):
    p = self.geometry.patch
    x = jnp.zeros((1, p, p, 3))
    return dict(self.model.init({"params": rng, "dropout": rng}, x, x, train=False))

  def logits(self, variables, a, b):
    return self.model.apply(variables, _normalize(a), _normalize(b), train=False)

  def loss_with_state(self, params, model_state, batch, rng, *, update_state):
    del update_state
    (logits, new_state) = self._apply(params, model_state, _normalize(batch["a"]), _normalize(batch["b"]), rng=rng,
                                      train_mode=True)
    labels = batch["label"]
    loss = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels).mean()
    acc = jnp.mean(jnp.argmax(logits, -1) == labels)
    return loss, {"pretext_acc": acc}, {**model_state, **new_state}

  def train_iterator(self, batch_size, seed):
    return context_pretext.pair_loader(self.photos, self.edges, geometry=self.geometry, mode=self.mode,
                                       batch_size=batch_size, seed=seed)


def pretext_accuracy(task: PretextTask, variables, photos: np.ndarray, edges: np.ndarray, num_pairs: int,
                     batch_size: int = 256) -> float:
  """Held-out accuracy of the relative position (photos the pretext never saw; fixed pairs: seed 12345)."""
  loader = context_pretext.pair_loader(photos, edges, geometry=task.geometry, mode=task.mode, batch_size=batch_size,
                                       seed=12345)
  fn = jax.jit(task.logits)
  correct = seen = 0
  while seen < num_pairs:
    batch = next(loader)
    pred = np.asarray(jnp.argmax(fn(variables, batch["a"], batch["b"]), -1))
    correct += int(np.sum(pred == batch["label"]))
    seen += len(pred)
  return correct / seen


class ClassifierTask(_TrunkTask):
  """The trunk (+ a linear head) as a classifier of random `crop`-px crops of the photos (ImageNet-style crops
  and flips; a crop keeps the pixel scale of the pretext's patches and of retrieval, at a quarter of the cost)."""

  def __init__(self, config, batchnorm: bool, photos: np.ndarray, labels: np.ndarray):
    super().__init__(config, batchnorm)
    classes, self.labels = np.unique(labels, return_inverse=True)
    self.photos, self.num_classes = photos, len(classes)
    self.crop = min(int(config.classifier_crop), photos.shape[1])
    self.model = context_net.TrunkClassifier(self.net_config, num_classes=self.num_classes)

  def init_variables(self, rng):
    return dict(self.model.init({"params": rng, "dropout": rng}, jnp.zeros((1, self.crop, self.crop, 3)),
                                train=False))

  def loss_with_state(self, params, model_state, batch, rng, *, update_state):
    del update_state
    logits, new_state = self._apply(params, model_state, _normalize(batch["images"]), rng=rng, train_mode=True)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), batch["labels"]).mean()
    return loss, {"acc": jnp.mean(jnp.argmax(logits, -1) == batch["labels"])}, {**model_state, **new_state}

  def train_iterator(self, batch_size, seed):
    photos, labels, crop = self.photos, self.labels.astype(np.int32), self.crop
    size = photos.shape[1]

    def element(position, i):
      rng = np.random.default_rng((seed, position))  # another crop each epoch, the same on a resumed run
      y, x = rng.integers(0, size - crop + 1, 2)
      image = photos[i][y:y + crop, x:x + crop]
      if rng.random() < 0.5:
        image = image[:, ::-1]
      return {"images": np.ascontiguousarray(image), "labels": labels[i]}

    ds = grain.MapDataset.range(len(photos)).shuffle(seed=seed).repeat().map_with_index(element).batch(batch_size)
    return iter(ds.to_iter_dataset())


class TripletTask(_TrunkTask):
  """Sketch anchor, its own photo, another photo of its class: triplet on L2-normalised fc6."""

  def __init__(self, config, method: ContextMethod, sketches: np.ndarray, photos: np.ndarray, sketch_photo: np.ndarray,
               photo_labels: np.ndarray, init_weights=None):
    super().__init__(config, method.batchnorm, method.init, init_weights)
    self.sketches, self.photos, self.sketch_photo, self.photo_labels = sketches, photos, sketch_photo, photo_labels
    self.model = context_net.TrunkEmbedder(self.net_config)
    self.margin = config.triplet_margin

  def init_variables(self, rng):
    s = self.photos.shape[1]
    return dict(self.model.init({"params": rng, "dropout": rng}, jnp.zeros((1, s, s, 3)), train=False,
                                method=context_net.TrunkEmbedder.embed))

  def loss_with_state(self, params, model_state, batch, rng, *, update_state):
    del update_state
    n = batch["anchor"].shape[0]
    images = jnp.concatenate([batch["anchor"], batch["positive"], batch["negative"]])
    emb, new_state = self._apply(params, model_state, _normalize(images), rng=rng, train_mode=True,
                                 method=context_net.TrunkEmbedder.embed)
    emb = losses.l2_normalize(emb.astype(jnp.float32))
    loss = losses.triplet(emb[:n], emb[n:2 * n], emb[2 * n:], self.margin)
    return loss, {"triplet": loss}, {**model_state, **new_state}

  def train_iterator(self, batch_size, seed):
    sketches, photos, own, labels = self.sketches, self.photos, self.sketch_photo, self.photo_labels
    by_label = {int(l): np.flatnonzero(labels == l) for l in np.unique(labels)}

    def element(i):
      rng = np.random.default_rng((seed, i))
      s = int(rng.integers(len(sketches)))
      p = int(own[s])
      others = by_label[int(labels[p])]
      others = others[others != p]
      n = int(rng.choice(others)) if len(others) else int(rng.integers(len(photos)))
      return {"anchor": sketches[s], "positive": photos[p], "negative": photos[n]}

    ds = grain.MapDataset.range(2 ** 31 - 1).map(element).batch(batch_size)
    return iter(ds.to_iter_dataset())


def hog_predict_fns(config: ml_collections.ConfigDict) -> dict:
  """Spatial-pyramid HOG of sketches and of the photos' Canny edges (both line drawings); no parameters."""
  h = config.hog
  hog = lambda images: hog_pyramid.hog_pyramid(np.asarray(images), levels=tuple(h.levels),
                                               orientations=h.orientations, cell=h.cell)
  return {"embed_sketch": lambda _, images: hog(images),
          "embed_photo": lambda _, images: hog(edges_lib.edge_maps(np.asarray(images), sigma=config.pretext.sigma))}
