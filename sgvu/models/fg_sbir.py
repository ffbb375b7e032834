"""The fine-grained SBIR model of seed 001 (its B1 and B2 baselines): one encoder for sketches and photos, a head.

Encoders: 'cnn' (`SmallCNN` from scratch; optionally one per modality) or
'clip' (a CLIP image tower `img` with shallow prompts per modality).
B2 adds DSSA-style spatial attention over the encoder's last feature map.
"""

from __future__ import annotations

import flax.linen as nn
import jax

from sgvu.losses import l2_normalize
from sgvu.models.heads import EmbeddingHead, SmallCNN, SpatialAttentionPool
from sgvu.models.vit import VisionConfig, VisionTransformer

MODALITIES = ("sketch", "photo")
ENCODERS = ("cnn", "clip")


class FGSBIRModel(nn.Module):
  """Encoder shared by both modalities (`cnn`, or CLIP `img` with per-modality prompts), head, attention."""
  encoder: str = "cnn"
  vision: VisionConfig | None = None  # encoder 'clip': the image tower (a CLIPConfig's .vision)
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
      if not isinstance(self.vision, VisionConfig):
        raise ValueError(f"encoder 'clip' needs vision=VisionConfig (a CLIPConfig's .vision), got "
                         f"{type(self.vision).__name__}")
      self.img = VisionTransformer(self.vision, name="img")
      if self.num_prompts:
        shape = (self.num_prompts, self.vision.width)
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

  @property
  def output_dim(self) -> int:
    """D of `__call__`'s embeddings."""
    if self.use_head:
      return self.embed_dim
    return self.feature_dim * (2 if self.attention else 1) if self.encoder == "cnn" else (
        self.vision.embed_dim * (2 if self.attention else 1))

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
    patches = tokens[:, 1:1 + self.vision.num_patches]  # neither CLS nor prompts
    return self.attn(pooled, patches)[0]

  def __call__(self, images: jax.Array, modality: str) -> jax.Array:
    """[B, H, W, 3] -> unit-norm embedding [B, D]."""
    f = self.features(images, modality)
    return self.head(f) if self.use_head else l2_normalize(f)

  def embed_both(self, sketches: jax.Array, photos: jax.Array):
    return self(sketches, "sketch"), self(photos, "photo")
