"""CLIP text tower: causal transformer pooled at the end-of-text token."""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from sgvu.models import layers
from sgvu.models.configs import TowerConfig
from sgvu.models.layers import constrain, param_with_axes

TEXT_POOLS = ("eos", "argmax")


@dataclasses.dataclass(frozen=True)
class TextConfig(TowerConfig):
  """Everything `TextTransformer` needs; the shared settings (embed_dim,
  layer_norm_eps, activation, remat, dtype, attention) are keyword-only (TowerConfig)."""
  vocab_size: int
  context_length: int
  width: int
  layers: int
  heads: int
  mlp_dim: int
  eos_token_id: int
  # 'eos': pool at the first eos_token_id of each row; 'argmax': at the
  # highest id (legacy OpenAI rule, which transformers applies when a
  # checkpoint's eos_token_id == 2).
  pool: str = "eos"

  def problems(self) -> list[str]:
    problems = []
    if self.width % self.heads:
      problems.append(f"width {self.width} is not divisible by heads "
                      f"{self.heads}")
    if self.pool not in TEXT_POOLS:
      problems.append(f"pool {self.pool!r} not in {TEXT_POOLS}")
    if not 0 <= self.eos_token_id < self.vocab_size:
      problems.append(f"eos_token_id {self.eos_token_id} outside the "
                      f"vocabulary [0, {self.vocab_size})")
    return problems


def pool_positions(tokens: jax.Array, eos_token_id: int,
                   pool: str) -> jax.Array:
  """Index [B] of the token each row is pooled at."""
  if pool == "eos":
    # argmax of a boolean gives its FIRST True (0 if the row has no EOT).
    return jnp.argmax(tokens == eos_token_id, axis=-1)
  if pool == "argmax":
    return jnp.argmax(tokens, axis=-1)
  raise ValueError(f"Unknown text pool {pool!r}; valid: ['argmax', 'eos']")


class TextTransformer(nn.Module):
  """OpenAI-CLIP text tower: token + position embeddings, causal pre-LN
  blocks, ln_final, the EOT token's bias-free projection to config.embed_dim."""
  config: TextConfig

  @nn.compact
  def __call__(self, tokens: jax.Array, *,
               input_embeds: jax.Array | None = None,
               return_tokens: bool = False):
    """Embeds int32 tokens [B, L] (L <= context_length; any pad after EOT).

    Args:
      input_embeds: optional [B, L, D] used instead of the token embedding
        lookup (e.g. pseudo-word or learned prompt tokens); `tokens` still
        decides the pooling position, so keep the EOT id where it belongs.
      return_tokens: also return the final-LayerNormed tokens [B, L, D].

    Returns:
      [B, E] projected, unnormalised embedding at each row's EOT token.
    """
    tc = self.config
    if not isinstance(tc, TextConfig):
      raise TypeError(f"TextTransformer takes a TextConfig (a CLIPConfig's "
                      f".text), got {type(tc).__name__}")
    dtype = tc.compute_dtype
    if tokens.ndim != 2 or tokens.shape[1] > tc.context_length:
      raise ValueError(f"tokens must be [B, L<={tc.context_length}]; got "
                       f"{tokens.shape}")
    length = tokens.shape[1]
    embedding = self.param("token_embedding", param_with_axes(
        nn.initializers.normal(stddev=0.02), ("vocab", "embed")),
                           (tc.vocab_size, tc.width))
    pos = self.param("pos_embedding", param_with_axes(
        nn.initializers.normal(stddev=0.01), (None, "embed")),
                     (tc.context_length, tc.width))
    if input_embeds is None:
      x = jnp.take(embedding, tokens, axis=0)
    else:
      if input_embeds.shape != tokens.shape + (tc.width,):
        raise ValueError(f"input_embeds must be {tokens.shape + (tc.width,)}"
                         f"; got {input_embeds.shape}")
      x = input_embeds
    x = (x + pos[:length]).astype(dtype)

    block = layers.block_class(tc.remat)
    for i in range(tc.layers):
      x = block(tc.heads, tc.mlp_dim, causal=True, activation=tc.activation,
                layer_norm_eps=tc.layer_norm_eps, dtype=dtype,
                attention=tc.attention, name=f"block_{i}")(x)
    x = layers.layer_norm(tc.layer_norm_eps, dtype, "ln_final")(x)
    x = constrain(x, ("batch", "length", "embed"))

    where = pool_positions(tokens, tc.eos_token_id, tc.pool)
    pooled = jnp.take_along_axis(x, where[:, None, None], axis=1)[:, 0]
    proj = self.param("proj", param_with_axes(
        nn.initializers.normal(stddev=tc.width ** -0.5), ("embed", "joint")),
                      (tc.width, tc.embed_dim))
    out = pooled @ proj.astype(pooled.dtype)
    return (out, x) if return_tokens else out
