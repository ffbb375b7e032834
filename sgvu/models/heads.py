"""Embedding heads of fine-grained SBIR (seed 001 and its baselines).

- `EmbeddingHead`: L2-normalise -> Dense -> L2-normalise, seed 001 release's head on top of the
  backbone feature; an optional residual MLP (zero-initialised output) adds capacity while
  starting as the linear head.
- `LevelHeads`: one EmbeddingHead per sketch completion level (baseline B4 of seed 001:
  "20 different models each dealing with a specific percentage of sketch").
- `SpatialAttentionPool`: DSSA-style spatial attention over patch tokens, fused with the
  global feature by a shortcut (concatenation) (baseline B2).
- `SmallCNN`: a from-scratch conv encoder shared by sketches and photos (the FG-SBIR
  backbone on SynthSketch, where it learns faster than the 48 px SynthSketch CLIP).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from sgvu.losses import l2_normalize


class EmbeddingHead(nn.Module):
  """[..., F] -> unit-norm [..., dim]."""
  dim: int
  hidden: int = 0  # > 0: add a residual ReLU MLP of this width (its output starts at zero)

  @nn.compact
  def __call__(self, features: jax.Array) -> jax.Array:
    x = l2_normalize(features)
    y = nn.Dense(self.dim, name="proj")(x)
    if self.hidden:
      h = nn.relu(nn.Dense(self.hidden, name="mlp_in")(x))
      y = y + nn.Dense(self.dim, kernel_init=nn.initializers.zeros, name="mlp_out")(h)
    return l2_normalize(y)


class LevelHeads(nn.Module):
  """[..., T, F] -> [..., T, dim]: head t only ever sees completion level t (parameters [T, ...])."""
  dim: int
  levels: int
  hidden: int = 0

  @nn.compact
  def __call__(self, features: jax.Array) -> jax.Array:
    if features.ndim < 2 or features.shape[-2] != self.levels:
      raise ValueError(f"LevelHeads expects [..., T={self.levels}, F] features, got {features.shape}")
    heads = nn.vmap(EmbeddingHead, variable_axes={"params": 0}, split_rngs={"params": True},
                    in_axes=0, out_axes=0)(self.dim, self.hidden, name="heads")
    x = jnp.moveaxis(features, -2, 0)  # [T, ..., F]
    return jnp.moveaxis(heads(x), 0, -2)


class SpatialAttentionPool(nn.Module):
  """Global feature [B, E] + patch tokens [B, N, W] -> [B, 2E] (DSSA's attention + shortcut fusion).

  A per-location score (LayerNorm -> Dense -> ReLU -> Dense(1)) is softmaxed over the N
  locations; the attended token mean is projected to E and concatenated with the global
  feature, so fine spatial detail is added to, not substituted for, the coarse one.
  Also returns the attention map [B, N].
  """
  hidden: int = 64

  @nn.compact
  def __call__(self, global_feature: jax.Array, tokens: jax.Array) -> tuple[jax.Array, jax.Array]:
    t = nn.LayerNorm(name="ln")(tokens)
    scores = nn.Dense(1, name="score")(nn.relu(nn.Dense(self.hidden, name="hidden")(t)))[..., 0]
    attention = jax.nn.softmax(scores, axis=-1)
    attended = jnp.einsum("bn,bnw->bw", attention, t)
    fine = nn.Dense(global_feature.shape[-1], name="fine")(attended)
    return jnp.concatenate([global_feature, fine], axis=-1), attention


class SmallCNN(nn.Module):
  """uint8-normalised images [B, H, W, 3] -> feature [B, out_dim] (and the last feature map as tokens).

  3x3 conv -> GroupNorm -> ReLU blocks, stride 2 except the last (a 48 px input
  leaves a 6 x 6 map for B2's attention), global average pool, Dense.
  """
  widths: Sequence[int] = (32, 64, 128, 128)
  out_dim: int = 128

  @nn.compact
  def __call__(self, images: jax.Array, *, return_tokens: bool = False):
    x = images
    for i, w in enumerate(self.widths):
      x = nn.Conv(w, (3, 3), strides=2 if i < len(self.widths) - 1 else 1, name=f"conv{i}")(x)
      x = nn.relu(nn.GroupNorm(num_groups=min(8, w), name=f"norm{i}")(x))
    pooled = nn.Dense(self.out_dim, name="out")(jnp.mean(x, axis=(1, 2)))
    return (pooled, x.reshape(x.shape[0], -1, x.shape[-1])) if return_tokens else pooled
