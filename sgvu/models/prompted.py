"""CLIP image tower with separate learnable prompts for the sketch and photo branches (seed 004)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from sgvu.models.vit import VisionConfig, VisionTransformer

PROMPT_KINDS = ("none", "shallow", "deep")
MODALITIES = ("sketch", "photo")


class PromptedImageEncoder(nn.Module):
  """One (frozen) CLIP image tower `img`, two prompt sets, an optional linear head.

  prompts='shallow': [P, D] tokens per modality, appended before ln_pre.
  prompts='deep': [L, P, D] per modality, replacing the prompt tokens at every layer.
  linear_head: a bias-free [E, E] map (identity init) after the projection
  (the linear-probe baseline).
  """
  vision: VisionConfig  # the image tower (a CLIPConfig's .vision); E = vision.embed_dim
  prompts: str = "none"
  num_prompts: int = 3
  linear_head: bool = False

  def setup(self):
    if self.prompts not in PROMPT_KINDS:
      raise ValueError(f"prompts={self.prompts!r}; valid: {PROMPT_KINDS}")
    self.img = VisionTransformer(self.vision, name="img")
    width, layers = self.vision.width, self.vision.layers
    shape = {"shallow": (self.num_prompts, width), "deep": (layers, self.num_prompts, width)}.get(self.prompts)
    if shape is not None:
      # randn init (std 1) as in the Sketch_LVM release.
      self.sketch_prompts = self.param("sketch_prompts", nn.initializers.normal(1.0), shape)
      self.photo_prompts = self.param("photo_prompts", nn.initializers.normal(1.0), shape)
    if self.linear_head:
      self.head = nn.Dense(self.vision.embed_dim, use_bias=False, name="head",
                           kernel_init=lambda key, shape, dtype=jnp.float32: jnp.eye(*shape, dtype=dtype))

  def __call__(self, images: jax.Array, modality: str) -> jax.Array:
    """CLIP-normalised images [B, H, W, 3] -> [B, E] (unnormalised)."""
    if modality not in MODALITIES:
      raise ValueError(f"modality={modality!r}; valid: {MODALITIES}")
    kwargs = {}
    if self.prompts != "none":
      prompts = self.sketch_prompts if modality == "sketch" else self.photo_prompts
      kwargs = {"prompts": prompts} if self.prompts == "shallow" else {"deep_prompts": prompts}
    features = self.img(images, **kwargs)
    return self.head(features) if self.linear_head else features

  def encode_both(self, sketches: jax.Array, photos: jax.Array):
    """Used by init: touches both prompt sets."""
    return self(sketches, "sketch"), self(photos, "photo")
