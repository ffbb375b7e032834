"""The on-the-fly retrieval policy of seed 001: a Gaussian over the sketch embedding.

pi(a | f_t) = N(mean(f_t), diag(exp(log_std))^2), f_t the frozen backbone feature of
the sketch at completion level t; mean = EmbeddingHead(f_t) (unit norm, the
same head as the supervised model's, so it can start from it); the retrieval
embedding is the sampled action, L2-normalised (the mean at test time). An
optional critic V(f_t) (actor-critic); seed 001's best variant is actor-only.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from sgvu.losses import l2_normalize
from sgvu.models.heads import EmbeddingHead


class GaussianPolicy(nn.Module):
  """features [..., F] -> (mean [..., dim], log_std [dim], value [...] or None)."""
  dim: int
  hidden: int = 0  # residual MLP width of the mean head (0: linear, as the release)
  init_log_std: float = -3.0
  critic: bool = False
  critic_hidden: int = 64

  @nn.compact
  def __call__(self, features: jax.Array):
    mean = EmbeddingHead(self.dim, self.hidden, name="head")(features)
    log_std = self.param("log_std", nn.initializers.constant(self.init_log_std), (self.dim,))
    value = None
    if self.critic:
      h = nn.relu(nn.Dense(self.critic_hidden, name="critic_in")(l2_normalize(features)))
      value = nn.Dense(1, name="critic_out")(h)[..., 0]
    return mean, log_std, value


def sample_actions(rng: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
  """a = mean + exp(log_std) * eps, eps ~ N(0, I)."""
  return mean + jnp.exp(log_std) * jax.random.normal(rng, mean.shape, mean.dtype)


def action_embedding(actions: jax.Array) -> jax.Array:
  """The retrieval embedding of an action: its direction."""
  return l2_normalize(actions)
