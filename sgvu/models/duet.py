"""The sketch and text duet (seed 002): composed sketch + text photo retrieval with pseudo-words.

A sketch S goes through the CLIP image tower V to s [B, E]; `VisualToWord` (C_v2w) maps s to a
pseudo-word token s^w [B, W] in the text tower's token-embedding space. The frozen text tower T reads
[P^L ; s^w ; words] (sgvu.models.pseudo_words splices s^w and the prompt tokens P^L into the real
embedding sequence). `UNetDecoder` (G) reconstructs the photo from the sketch conditioned on the
composed query. The pure helpers below are the pieces of the losses the task assembles:
region-aware matching, the text-text distillation, the neutral-text regulariser and the L1
reconstruction.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from sgvu.losses import cosine_distance, l2_normalize


class VisualToWord(nn.Module):
  """C_v2w, Pic2Word's IM2TEXT mapping: 2 x [Dense(hidden), Dropout, ReLU] + Dense(width).

  width: the text tower's token width W. hidden: the middle width (None: W, as Pic2Word's
  middle_dim = its output dim for ViT-B).
  """
  width: int
  hidden: int | None = None
  dropout: float = 0.1

  @nn.compact
  def __call__(self, x: jax.Array, *, deterministic: bool) -> jax.Array:
    """[B, E] image embeddings -> [B, W] pseudo-word tokens; dropout only when not deterministic
    (then it needs a 'dropout' rng)."""
    hidden = self.hidden or self.width
    for i in range(2):
      x = nn.Dense(hidden, name=f"fc_{i}")(x)
      x = nn.Dropout(self.dropout, deterministic=deterministic)(x)
      x = nn.relu(x)
    return nn.Dense(self.width, name="fc_out")(x)


def _norm(channels: int, name: str) -> nn.GroupNorm:
  return nn.GroupNorm(num_groups=math.gcd(8, channels), name=name)


class _ConvBlock(nn.Module):
  """3x3 conv (stride 1 or 2) + GroupNorm + ReLU."""
  channels: int
  stride: int = 1

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = nn.Conv(self.channels, (3, 3), strides=self.stride, padding="SAME", name="conv")(x)
    return nn.relu(_norm(self.channels, "norm")(x))


class UNetDecoder(nn.Module):
  """G: photo reconstruction from a sketch and the composed query (a small conditional UNet).

  Encoder: a 3x3 stem of `width` channels at S, then `levels` stride-2 conv blocks doubling the
  channels (S / 2^levels at the bottleneck). The condition [B, E] (layer-normed, since CLIP
  embeddings are unnormalised) is injected at the bottleneck by FiLM, h * (1 + gamma) + beta, then one
  more conv block mixes it spatially. Decoder: per level a nearest 2x upsample, concatenation with
  the encoder's skip at that resolution, and a conv block. Every conv block is Conv + GroupNorm
  (gcd(8, channels) groups) + ReLU. A 1x1 conv and a sigmoid give the photo in [0, 1] (the target is
  a [0, 1] photo: undo CLIP normalisation before `reconstruction_loss`).
  At S = 48, width 32, levels 3 (E = 128): about 1.6 M parameters, 6x6 at the bottleneck.
  """
  size: int
  width: int = 32
  levels: int = 3

  @nn.compact
  def __call__(self, sketch_images: jax.Array, cond: jax.Array) -> jax.Array:
    """sketch_images float [B, S, S, 3] ([0, 1] or CLIP-normalised), cond [B, E] -> [B, S, S, 3] in (0, 1)."""
    if self.levels < 1 or self.size % (2 ** self.levels):
      raise ValueError(f"size {self.size} must be a multiple of 2^levels = {2 ** self.levels} (levels >= 1)")
    if sketch_images.ndim != 4 or sketch_images.shape[1:] != (self.size, self.size, 3):
      raise ValueError(f"sketch_images must be [B, {self.size}, {self.size}, 3]; got {sketch_images.shape}")
    if cond.ndim != 2 or cond.shape[0] != sketch_images.shape[0]:
      raise ValueError(f"cond must be [B={sketch_images.shape[0]}, E]; got {cond.shape}")
    x = _ConvBlock(self.width, name="stem")(sketch_images)
    skips = []
    for i in range(self.levels):
      skips.append(x)
      x = _ConvBlock(self.width * 2 ** (i + 1), stride=2, name=f"down_{i}")(x)
    channels = x.shape[-1]
    c = nn.LayerNorm(name="cond_norm")(cond.astype(x.dtype))
    gamma, beta = jnp.split(nn.Dense(2 * channels, name="film")(c), 2, axis=-1)
    x = x * (1.0 + gamma[:, None, None]) + beta[:, None, None]
    x = _ConvBlock(channels, name="bottleneck")(x)
    for i in reversed(range(self.levels)):
      skip = skips[i]
      x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)  # nearest 2x upsample
      x = _ConvBlock(skip.shape[-1], name=f"up_{i}")(jnp.concatenate([x, skip], axis=-1))
    return nn.sigmoid(nn.Conv(3, (1, 1), name="out")(x))


def _pool_regions(cos: jax.Array, temperature: float) -> jax.Array:
  weights = jax.nn.softmax(cos / temperature, axis=-1)
  return jnp.sum(weights * cos, axis=-1)


def region_similarity(query: jax.Array, region_tokens: jax.Array, temperature: float = 0.1) -> jax.Array:
  """Region-aware matching score of each query with its own photo: [B, E], [B, T, E] -> [B].

  The cosine of the query with every region token of the photo, pooled by a softmax over regions
  at `temperature`: sum_t softmax(cos / temperature)_t * cos_t. As temperature -> 0 it is the best
  region's cosine (the query matches the part of the photo it describes); as it grows it tends to
  the mean cosine over regions. 0.1 puts most weight on the few best-matching regions while every
  region still gets a gradient. The score lies in [-1, 1].
  """
  cos = jnp.einsum("be,bte->bt", l2_normalize(query), l2_normalize(region_tokens))
  return _pool_regions(cos, temperature)


def region_similarity_matrix(query: jax.Array, region_tokens: jax.Array,
                             temperature: float = 0.1) -> jax.Array:
  """`region_similarity` of every query with every photo: [Q, E], [G, T, E] -> [Q, G].

  Its diagonal (Q = G, paired rows) equals region_similarity; the off-diagonal entries are the
  negatives of the region-aware triplet.
  """
  cos = jnp.einsum("qe,gte->qgt", l2_normalize(query), l2_normalize(region_tokens))
  return _pool_regions(cos, temperature)


def text_text_loss(learned: jax.Array, handcrafted: jax.Array) -> jax.Array:
  """Mean 1 - cos of the learned-prompt query [B, E] with the handcrafted-prompt one [B, E].

  The handcrafted side (e.g. "a photo of" + the words) is a fixed target: stop_gradient, so only the
  learned prompt tokens / converter move towards it.
  """
  return jnp.mean(cosine_distance(learned, jax.lax.stop_gradient(handcrafted)))


def neutral_regulariser(with_neutral: jax.Array, without: jax.Array) -> jax.Array:
  """Mean 1 - cos of the query with a neutral text appended (e.g. "a photo") [B, E] and without it.

  Appending a neutral text must not move the query: the query without it is the reference
  (stop_gradient), so the regulariser pulls the neutral variant back rather than dragging the
  retrieval query itself.
  """
  return jnp.mean(cosine_distance(with_neutral, jax.lax.stop_gradient(without)))


def reconstruction_loss(pred: jax.Array, target: jax.Array) -> jax.Array:
  """Mean absolute error (L1) between the reconstructed and the real photo, same shape."""
  if pred.shape != target.shape:
    raise ValueError(f"pred {pred.shape} and target {target.shape} differ in shape")
  return jnp.mean(jnp.abs(pred - target))
