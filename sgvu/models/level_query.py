"""On-the-fly query encoder: a (partial) sketch and its completion level -> unit-norm embedding.

Chains a stage-1 `FGSBIRModel`'s sketch features with a row's head or policy,
exactly as the on-the-fly rows embed a sketch (sgvu.tasks.on_the_fly
HeadTask/PolicyTask.embed_levels on features [B, T, F]):
- `LevelHeads` (B4, a head per completion level): each row through the head
  of its own level;
- `EmbeddingHead` (B3): one head, the level is ignored;
- `GaussianPolicy` (the RL rows): the mean action, the level is ignored.
Parameters: {"backbone": FGSBIRModel params, "head": the head's / policy's}.
The gallery (photos) is the backbone's photo branch (`embed_photos`).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from sgvu.models.fg_sbir import FGSBIRModel
from sgvu.models.heads import EmbeddingHead, LevelHeads
from sgvu.models.policy import GaussianPolicy

HEADS = (EmbeddingHead, LevelHeads, GaussianPolicy)


def level_of_fraction(fractions: jax.Array, levels: int) -> jax.Array:
  """int32 [B] completion level (0 .. levels-1) nearest to each sketch's drawn share in (0, 1]."""
  return jnp.clip(jnp.round(jnp.asarray(fractions) * levels).astype(jnp.int32) - 1, 0, levels - 1)


class LevelQuery(nn.Module):
  """images [B, H, W, 3] (normalised as the backbone's input), level int [B] -> unit-norm [B, D]."""
  backbone: FGSBIRModel
  head: nn.Module  # EmbeddingHead | LevelHeads | GaussianPolicy

  def embed_features(self, features: jax.Array, level: jax.Array) -> jax.Array:
    """Backbone sketch features [B, F] at completion levels [B] -> [B, D]."""
    if isinstance(self.head, LevelHeads):
      levels = self.head.levels
      # Every level's head on every row ([B, T, D], as HeadTask.embed_levels), then each row's own level.
      embeds = self.head(jnp.repeat(features[:, None], levels, axis=1))
      level = jnp.clip(jnp.asarray(level, jnp.int32), 0, levels - 1)
      return jnp.take_along_axis(embeds, level[:, None, None], axis=1)[:, 0]
    if isinstance(self.head, GaussianPolicy):
      return self.head(features)[0]  # the mean action (unit norm: an EmbeddingHead's output)
    if isinstance(self.head, EmbeddingHead):
      return self.head(features)
    raise TypeError(f"LevelQuery.head must be one of {[c.__name__ for c in HEADS]}, got "
                    f"{type(self.head).__name__}")

  def __call__(self, images: jax.Array, level: jax.Array) -> jax.Array:
    if not isinstance(self.backbone, FGSBIRModel):
      raise TypeError(f"LevelQuery.backbone must be an FGSBIRModel, got {type(self.backbone).__name__}")
    return self.embed_features(self.backbone.features(images, "sketch"), level)

  def embed_photos(self, images: jax.Array) -> jax.Array:
    """The gallery side: the backbone's photo embedding [B, D'] (what the rows were trained against)."""
    return self.backbone(images, "photo")
