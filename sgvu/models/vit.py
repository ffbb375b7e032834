"""CLIP image tower (ViT) with optional shallow and deep visual prompts."""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from sgvu.models import layers
from sgvu.models.configs import TowerConfig
from sgvu.models.layers import constrain, param_with_axes

STEMS = ("patch", "conv")


@dataclasses.dataclass(frozen=True)
class VisionConfig(TowerConfig):
  """Everything `VisionTransformer` needs; the shared settings (embed_dim,
  layer_norm_eps, activation, remat, dtype, attention) are keyword-only (TowerConfig)."""
  image_size: int
  patch_size: int
  width: int
  layers: int
  heads: int
  mlp_dim: int
  # 'patch': OpenAI CLIP's single patch convolution (what HF checkpoints hold).
  # 'conv': log2(patch_size) stride-2 3x3 convolutions ("early convolutions"),
  # far more sample-efficient for the small from-scratch SynthSketch CLIP.
  stem: str = "patch"
  # 'conv' stem only: residual 3x3 convolutions after each stride-2 one but the last (more
  # non-linear depth where it is cheap, at low width and high resolution).
  stem_depth: int = 0

  @property
  def num_patches(self) -> int:
    return (self.image_size // self.patch_size) ** 2

  def problems(self) -> list[str]:
    problems = []
    if self.image_size % self.patch_size:
      problems.append(f"image_size {self.image_size} is not a multiple of "
                      f"patch_size {self.patch_size}")
    if self.width % self.heads:
      problems.append(f"width {self.width} is not divisible by heads "
                      f"{self.heads}")
    if self.stem_depth < 0 or (self.stem_depth and self.stem != "conv"):
      problems.append(f"stem_depth {self.stem_depth} needs stem 'conv' and must be >= 0")
    if self.stem not in STEMS:
      problems.append(f"stem {self.stem!r} not in {STEMS}")
    if self.stem == "conv" and (self.patch_size & (self.patch_size - 1) or
                                self.patch_size < 2):
      problems.append(f"stem 'conv' needs a power-of-two patch_size, got "
                      f"{self.patch_size}")
    return problems


def _batched_prompts(prompts: jax.Array, batch: int, what: str) -> jax.Array:
  """[P, D] or [B, P, D] -> [B, P, D]."""
  if prompts.ndim == 2:
    return jnp.broadcast_to(prompts[None], (batch,) + prompts.shape)
  if prompts.ndim == 3 and prompts.shape[0] == batch:
    return prompts
  raise ValueError(f"{what} must be [P, D] or [B={batch}, P, D]; "
                   f"got shape {prompts.shape}")


def _conv_stem(images: jax.Array, width: int, patch_size: int, dtype, depth: int = 0) -> jax.Array:
  """Stride-2 3x3 convolutions down to one token per patch (Xiao et al., 2021).

  Channels double up to `width`; the last layer is a bias-free linear map
  like the patch convolution it replaces. `depth` residual 3x3 convolutions
  follow each stride-2 one but the last.
  """
  steps = patch_size.bit_length() - 1
  x = images
  for i in range(steps):
    last = i == steps - 1
    channels = width if last else max(width >> (steps - 1 - i), 16)
    x = nn.Conv(channels, (3, 3), strides=2, padding="SAME", use_bias=not last, dtype=dtype,
                name=f"stem_{i}", kernel_init=param_with_axes(
                    nn.initializers.lecun_normal(),
                    (None, None, None, "embed" if last else None)))(x)
    if not last:
      x = nn.gelu(x)
      for j in range(depth):
        x = x + nn.gelu(nn.Conv(channels, (3, 3), padding="SAME", dtype=dtype, name=f"stem_{i}_res{j}")(x))
  return x


class PatchEmbed(nn.Module):
  """The bias-free p x p stride-p patch convolution, computed as one matmul.

  Same parameter as `nn.Conv` (`kernel` [p, p, 3, width], same init), same
  output [B, H/p, W/p, width]; XLA:CPU runs the strided convolution at half
  the matmul's speed, forward and backward.
  """
  width: int
  patch_size: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    p = self.patch_size
    b, h, w, c = images.shape
    kernel = self.param("kernel", param_with_axes(
        nn.initializers.lecun_normal(), (None, None, None, "embed")),
                        (p, p, c, self.width))
    images, kernel = nn.dtypes.promote_dtype(images, kernel, dtype=self.dtype)
    patches = images.reshape(b, h // p, p, w // p, p, c).transpose(
        0, 1, 3, 2, 4, 5).reshape(b, h // p, w // p, p * p * c)
    return patches @ kernel.reshape(p * p * c, self.width)


class VisionTransformer(nn.Module):
  """OpenAI-CLIP ViT: conv patches (no bias), CLS, positions, ln_pre,
  pre-LN blocks, ln_post on CLS, bias-free projection to config.embed_dim."""
  config: VisionConfig

  @nn.compact
  def __call__(self, images: jax.Array, *, prompts: jax.Array | None = None,
               deep_prompts: jax.Array | None = None,
               return_tokens: bool = False):
    """Embeds CLIP-normalised float images [B, H, W, 3].

    Args:
      prompts: [P, D] or [B, P, D] shallow prompt tokens, appended after
        [CLS + patches + positions] (no positions of their own), before ln_pre
        (as in the Sketch_LVM release).
      deep_prompts: [L, P, D] or [B, L, P, D] (VPT-deep): at the input of block
        l the P prompt positions are replaced by deep_prompts[l]; block 0's
        replace the shallow prompts, which may then be omitted.
      return_tokens: also return the tokens after the last block [B, T, D]
        (T = 1 + patches + P; before ln_post).

    Returns:
      [B, E] projected, unnormalised CLS embedding (and tokens if asked).
    """
    vc = self.config
    if not isinstance(vc, VisionConfig):
      raise TypeError(f"VisionTransformer takes a VisionConfig (a CLIPConfig's "
                      f".vision), got {type(vc).__name__}")
    dtype = vc.compute_dtype
    batch = images.shape[0]
    if images.ndim != 4 or images.shape[1:] != (vc.image_size,
                                                vc.image_size, 3):
      raise ValueError(
          f"images must be [B, {vc.image_size}, {vc.image_size}, 3]; got "
          f"{images.shape}")

    if vc.stem == "conv":
      x = _conv_stem(images, vc.width, vc.patch_size, dtype, vc.stem_depth)
    else:
      x = PatchEmbed(vc.width, vc.patch_size, dtype=dtype,
                     name="patch_embed")(images)
    x = x.reshape(batch, -1, vc.width)
    scale = vc.width ** -0.5
    cls = self.param("class_embedding", param_with_axes(
        nn.initializers.normal(stddev=scale), ("embed",)), (vc.width,))
    pos = self.param("pos_embedding", param_with_axes(
        nn.initializers.normal(stddev=scale), (None, "embed")),
                     (vc.num_patches + 1, vc.width))
    cls = jnp.broadcast_to(cls.astype(x.dtype), (batch, 1, vc.width))
    x = jnp.concatenate([cls, x], axis=1) + pos.astype(x.dtype)

    num_prompts = 0
    if deep_prompts is not None:
      if deep_prompts.ndim == 3:
        deep_prompts = jnp.broadcast_to(deep_prompts[None],
                                        (batch,) + deep_prompts.shape)
      if deep_prompts.ndim != 4 or deep_prompts.shape[0] != batch or (
          deep_prompts.shape[1] != vc.layers) or (
              deep_prompts.shape[3] != vc.width):
        raise ValueError(
            f"deep_prompts must be [L={vc.layers}, P, D={vc.width}] or "
            f"[B={batch}, L, P, D]; got {deep_prompts.shape}")
      num_prompts = deep_prompts.shape[2]
    if prompts is not None:
      prompts = _batched_prompts(prompts, batch, "prompts")
      if prompts.shape[-1] != vc.width:
        raise ValueError(f"prompts width {prompts.shape[-1]} != vision width "
                         f"{vc.width}")
      if num_prompts and prompts.shape[1] != num_prompts:
        raise ValueError(f"prompts has {prompts.shape[1]} tokens but "
                         f"deep_prompts has {num_prompts}")
      num_prompts = prompts.shape[1]
    elif num_prompts:
      # Placeholders; block 0 overwrites them with deep_prompts[:, 0].
      prompts = jnp.zeros((batch, num_prompts, vc.width), x.dtype)
    if prompts is not None:
      x = jnp.concatenate([x, prompts.astype(x.dtype)], axis=1)

    x = layers.layer_norm(vc.layer_norm_eps, dtype, "ln_pre")(x)
    block = layers.block_class(vc.remat)
    for i in range(vc.layers):
      if deep_prompts is not None:
        x = x.at[:, -num_prompts:].set(deep_prompts[:, i].astype(x.dtype))
      x = block(vc.heads, vc.mlp_dim, causal=False, activation=vc.activation,
                layer_norm_eps=vc.layer_norm_eps, dtype=dtype,
                attention=vc.attention, name=f"block_{i}")(x)
    tokens = constrain(x, ("batch", "length", "embed"))

    pooled = layers.layer_norm(vc.layer_norm_eps, dtype, "ln_post")(
        tokens[:, 0])
    proj = self.param("proj", param_with_axes(
        nn.initializers.normal(stddev=scale), ("embed", "joint")),
                      (vc.width, vc.embed_dim))
    out = pooled @ proj.astype(pooled.dtype)
    return (out, tokens) if return_tokens else out
