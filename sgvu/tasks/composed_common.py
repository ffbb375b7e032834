"""What the two composed-retrieval tasks (cstbir: STNet, duet: pseudo-word tokens) share.

The CLIP (the shipped SynthSketch one, or a transformers checkpoint), texts with slots whose token
embeddings a row supplies (`sgvu.models.pseudo_words`), the image tower's patch tokens in the joint space,
and the per-row training config.
"""

from __future__ import annotations

import functools
import hashlib
import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sgvu.models import pseudo_words
from sgvu.models.text import TextTransformer
from sgvu.models.vit import VisionTransformer
from sgvu.data import registry as data_registry
from sgvu.tasks import zs_sbir
from sgvu.tasks.zs_sbir import LAYERNORM_PATHS

SLOT_MARKERS = "#*+"  # '#': a learned prompt token, '*': the sketch's token, '+': a second (composition) token


def clip_view(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The config as the CLIP loaders read it: a SynthSketch dataset ('synth_scenes', 'synth_instances') means
  'the SynthSketch CLIP may be pretrained or shipped here', which they spell data.dataset == 'synth'."""
  view = ml_collections.ConfigDict(config.to_dict())
  if config.data.dataset.startswith("synth"):
    view.data.dataset = "synth"
  return view


def load_clip(config: ml_collections.ConfigDict):
  """(clip config, params, tokenizer): model.clip_init, or the shipped / cached SynthSketch CLIP."""
  return zs_sbir.load_clip(clip_view(config))


def make_source(config: ml_collections.ConfigDict):
  """config.data -> the composed-retrieval source (sgvu.data.composed)."""
  d = config.data
  options = d.reader_options.to_dict()
  if d.dataset.startswith("synth_") and d.get("tfds_data_dir"):
    raise ValueError(f"config.data.tfds_data_dir={d.tfds_data_dir!r}: {d.dataset} is generated and has no TFDS "
                     "copy; leave it ''")
  if d.dataset == "synth_scenes":
    return data_registry.get_composed_source(d.dataset, seed=d.synth_seed, **options)
  if d.dataset == "synth_instances":
    return data_registry.get_composed_source(d.dataset, seed=d.synth_seed, photos_per_category=d.photos_per_category,
                                             sketches_per_photo=d.sketches_per_photo, **options)
  if d.get("tfds_data_dir"):  # the TFDS copy of the same folder (sgvu.tools.build_tfds)
    return data_registry.get_tfds_composed_source(d.dataset, d.tfds_data_dir, strict=d.strict, **options)
  return data_registry.get_composed_source(d.dataset, root=d.root, strict=d.strict, **options)


def layernorm_or(patterns: tuple[str, ...]):
  """is_trainable: the image tower's LayerNorms and any path matching one of `patterns`."""
  compiled = [re.compile(p) for p in (LAYERNORM_PATHS,) + tuple(patterns)]
  return lambda path: any(c.fullmatch(path) for c in compiled)


class Towers:
  """The CLIP's image and text towers as pure functions of their params subtrees ('img', 'txt')."""

  def __init__(self, clip_cfg, tokenizer):
    self.cfg, self.tokenizer = clip_cfg, tokenizer
    self.img = VisionTransformer(clip_cfg.vision)
    self.txt = TextTransformer(clip_cfg.text)
    self.eps = clip_cfg.layer_norm_eps

  def image(self, img_params, images: jax.Array, **kwargs):
    """CLIP-normalised images -> [B, E] (and the tokens with return_tokens=True)."""
    return self.img.apply({"params": img_params}, images, **kwargs)

  def embed_and_patches(self, img_params, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """([B, E] the embedding, [B, P, E] every patch token through the tower's own ln_post and projection,
    the CLS embedding's path) from one pass."""
    embeds, tokens = self.image(img_params, images, return_tokens=True)
    x = tokens[:, 1:].astype(jnp.float32)
    ln = img_params["ln_post"]
    mean = jnp.mean(x, -1, keepdims=True)
    var = jnp.var(x, -1, keepdims=True)
    x = (x - mean) * jax.lax.rsqrt(var + self.eps) * ln["scale"] + ln["bias"]
    return embeds, x @ img_params["proj"]

  def text(self, txt_params, tokens: jax.Array) -> jax.Array:
    return self.txt.apply({"params": txt_params}, tokens)

  def slotted(self, txt_params, tokens: jax.Array, kinds: jax.Array, fills) -> jax.Array:
    """[N, E]: the text tower over `tokens` with slot k's occurrences replaced by fills[k-1]."""
    return pseudo_words.encode_with_slots(txt_params, self.cfg.text, tokens, kinds, fills)

  @functools.lru_cache(maxsize=64)
  def _template(self, text: str) -> tuple[np.ndarray, np.ndarray]:
    tokens, kinds = pseudo_words.tokenize_with_slots(self.tokenizer, [text], SLOT_MARKERS)
    return tokens[0], kinds[0]

  def template(self, text: str, n: int) -> tuple[jax.Array, jax.Array]:
    """One text with slots, repeated n times: (tokens [n, L], kinds [n, L])."""
    tokens, kinds = self._template(text)
    return jnp.tile(jnp.asarray(tokens)[None], (n, 1)), jnp.tile(jnp.asarray(kinds)[None], (n, 1))

  def tokenize(self, texts) -> tuple[np.ndarray, np.ndarray]:
    return pseudo_words.tokenize_with_slots(self.tokenizer, list(texts), SLOT_MARKERS)


def fills(width: int, *, prompts=None, sketch=None, extra=None) -> list[jax.Array]:
  """Slot fills in SLOT_MARKERS order; an unused slot kind gets one dummy row (never read)."""
  dummy = jnp.zeros((1, width), jnp.float32)
  return [dummy if x is None else x for x in (prompts, sketch, extra)]


def row_train_config(train_block: ml_collections.ConfigDict, method: str, seed: int,
                     steps: dict, lrs: dict) -> ml_collections.ConfigDict:
  """A copy of the stage block for one row and seed: the row's own steps and learning rate where set."""
  c = ml_collections.ConfigDict(train_block.to_dict())
  c.seed = train_block.seed + seed
  c.num_steps = int(steps.get(method, c.num_steps))
  c.optim.lr = float(lrs.get(method, c.optim.lr))
  return c


class FrozenFeatures:
  """Memoises a frozen encoder's outputs by (its params, the input batch): a table's rows share one frozen
  image tower or sketch encoder, so every row after the first reuses the gallery's features instead of
  recomputing them. Keys are content digests, so a changed tower can never hit a stale entry."""

  def __init__(self, fn):
    self.fn, self.cache, self.hits = fn, {}, 0

  @staticmethod
  def digest(tree) -> str:
    h = hashlib.sha1()
    for leaf in jax.tree.leaves(tree):
      h.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
    return h.hexdigest()

  def __call__(self, params, batch):
    key = (self.digest(params), self.digest(batch))
    if key in self.cache:
      self.hits += 1
    else:
      self.cache[key] = jax.tree.map(np.asarray, self.fn(params, batch))
    return self.cache[key]
