"""Reinforcement learning for on-the-fly retrieval (seed 001): rewards, returns, policy-gradient and PPO.

Pure functions of arrays (jittable, vmappable). An episode is one sketch drawn
over T completion levels; the time axis is the last one of rewards, ranks,
values and returns ([..., T]). Ranks are 1-indexed.

Seed 001's reward (its Eq. 4): R_t = g1 * R_t^local + g2 * R_t^global with
R_t^local = 1 / rank_t and R_t^global = -max(0, tau(L_t, L_t+1) - tau(L_t-1, L_t)),
tau the normalised Kendall-tau distance between consecutive rankings of the
gallery: a step is penalised when the ranking changes more than it did at the
previous step (an "explosive" re-ranking).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from sgvu.metrics.on_the_fly import kendall_tau_distance

Array = jax.Array

# Local rewards of seed 001's reward-design table, by name: f(rank, gallery_size).
LOCAL_REWARDS: dict[str, Callable[[Array, int], Array]] = {
    "1/rank": lambda r, g: 1.0 / r,
    "1/sqrt(rank)": lambda r, g: jax.lax.rsqrt(r),
    "-rank": lambda r, g: -r,
    "rank<=1": lambda r, g: (r <= 1).astype(jnp.float32),
    "rank<=5": lambda r, g: (r <= 5).astype(jnp.float32),
    "rank<=10": lambda r, g: (r <= 10).astype(jnp.float32),
}


def local_reward(name: str, ranks: Array, gallery_size: int) -> Array:
  """The named local reward of 1-indexed `ranks` (any shape), float32."""
  check_reward(name)
  return LOCAL_REWARDS[name](jnp.asarray(ranks, jnp.float32), gallery_size).astype(jnp.float32)


def retrieval_ranks(similarities: Array, targets: Array) -> Array:
  """1-indexed rank of the target among [..., G] similarities: photos scoring >= the target's.

  As seed 001's release counts it (ties count against the target), int32 [...].
  """
  target_sim = jnp.take_along_axis(similarities, targets[..., None], axis=-1)
  return jnp.sum(similarities >= target_sim, axis=-1, dtype=jnp.int32)


def global_reward(distances: Array) -> Array:
  """R_t^global = -max(0, tau(L_t, L_t+1) - tau(L_t-1, L_t)) for an episode of rankings.

  `distances` [..., T, G]: each step's distance (or any lower-is-better score)
  from the query to every gallery item; L_t is the ranking it induces.
  Returns [..., T]. Where a neighbour ranking does not exist the term is 0:
  the first step has no previous change to compare with, the last no next one.
  """
  if distances.shape[-2] < 2:
    return jnp.zeros(distances.shape[:-1], jnp.float32)
  tau = kendall_tau_distance(distances[..., :-1, :], distances[..., 1:, :])  # [..., T-1]: tau(L_t, L_t+1)
  zero = jnp.zeros_like(tau[..., :1])
  tau_next = jnp.concatenate([tau, zero], axis=-1)  # last step: no next ranking -> no penalty
  tau_prev = jnp.concatenate([tau[..., :1], tau], axis=-1)  # first step: compared with itself -> 0
  return -jax.nn.relu(tau_next - tau_prev).astype(jnp.float32)


def discounted_returns(rewards: Array, gamma: float) -> Array:
  """G_t = sum_k>=t gamma^(k-t) r_k over the last axis (the episode ends at T)."""
  def step(carry, r):
    carry = r + gamma * carry
    return carry, carry
  moved = jnp.moveaxis(rewards, -1, 0)
  _, out = jax.lax.scan(step, jnp.zeros_like(moved[0]), moved, reverse=True)
  return jnp.moveaxis(out, 0, -1)


def gae(rewards: Array, values: Array, gamma: float, lam: float) -> tuple[Array, Array]:
  """Generalised advantage estimation over the last axis; V after the last step is 0 (terminal).

  Returns (advantages, returns = advantages + values).
  """
  if rewards.shape != values.shape:
    raise ValueError(f"rewards {rewards.shape} and values {values.shape} differ")
  next_values = jnp.concatenate([values[..., 1:], jnp.zeros_like(values[..., :1])], axis=-1)
  deltas = rewards + gamma * next_values - values
  advantages = discounted_returns(deltas, gamma * lam)
  return advantages, advantages + values


def normalize(x: Array, eps: float = 1e-8) -> Array:
  """Zero mean, unit standard deviation over all entries (advantage normalisation)."""
  return (x - jnp.mean(x)) / (jnp.std(x) + eps)


def gaussian_log_prob(x: Array, mean: Array, log_std: Array) -> Array:
  """log N(x; mean, diag(exp(log_std))^2), summed over the last axis."""
  z = (x - mean) * jnp.exp(-log_std)
  per_dim = -0.5 * jnp.square(z) - log_std - 0.5 * jnp.log(2.0 * jnp.pi)
  return jnp.sum(jnp.broadcast_to(per_dim, jnp.broadcast_shapes(x.shape, mean.shape, jnp.shape(log_std))), axis=-1)


def gaussian_entropy(log_std: Array, dim: int | None = None) -> Array:
  """Entropy of a diagonal Gaussian; `dim` when log_std is shared (scalar) over dim dimensions."""
  per_dim = 0.5 + 0.5 * jnp.log(2.0 * jnp.pi) + log_std
  return jnp.sum(per_dim) if dim is None else dim * per_dim


def policy_gradient_loss(log_prob: Array, advantages: Array) -> Array:
  """REINFORCE: -mean(log pi(a) * A), the advantages held constant."""
  return -jnp.mean(log_prob * jax.lax.stop_gradient(advantages))


def ppo_clip_loss(log_prob: Array, old_log_prob: Array, advantages: Array,
                  clip_eps: float) -> tuple[Array, dict[str, Array]]:
  """PPO's clipped surrogate, negated: -mean(min(r A, clip(r, 1 - eps, 1 + eps) A)), r = pi / pi_old.

  Returns (loss, {clip_fraction, approx_kl}); old log-probs and advantages are constants.
  """
  old_log_prob = jax.lax.stop_gradient(old_log_prob)
  advantages = jax.lax.stop_gradient(advantages)
  log_ratio = log_prob - old_log_prob
  ratio = jnp.exp(log_ratio)
  unclipped = ratio * advantages
  clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
  loss = -jnp.mean(jnp.minimum(unclipped, clipped))
  aux = {"clip_fraction": jnp.mean((jnp.abs(ratio - 1.0) > clip_eps).astype(jnp.float32)),
         # (r - 1) - log r >= 0: the low-variance KL estimator (Schulman's k3).
         "approx_kl": jnp.mean(jax.lax.stop_gradient((ratio - 1.0) - log_ratio))}
  return loss, aux


def value_loss(values: Array, returns: Array) -> Array:
  return 0.5 * jnp.mean(jnp.square(values - jax.lax.stop_gradient(returns)))


def ppo_update(params: Any, opt_state: Any, rollout: Mapping[str, Array],
               loss_fn: Callable[[Any, Mapping[str, Array]], tuple[Array, dict[str, Array]]],
               tx: optax.GradientTransformation, *, epochs: int, num_minibatches: int,
               rng: Array) -> tuple[Any, Any, dict[str, Array]]:
  """Several epochs of minibatch updates over one batch of episodes (PPO's inner loop).

  `rollout` holds arrays with a leading episode axis (divisible by
  `num_minibatches`); each epoch visits them in a fresh random order.
  `loss_fn(params, minibatch) -> (loss, aux)`. `opt_state` is `tx`'s state,
  carried from the previous batch (the caller keeps it across batches).
  Returns the updated params and optimizer state, and the mean of loss and
  aux over all epochs x num_minibatches updates.
  """
  rollout = {k: jnp.asarray(v) for k, v in rollout.items()}
  sizes = {k: v.shape[0] for k, v in rollout.items()}
  n = next(iter(sizes.values()))
  if any(s != n for s in sizes.values()):
    raise ValueError(f"rollout arrays disagree on the episode axis: {sizes}")
  if epochs < 1 or num_minibatches < 1 or n % num_minibatches:
    raise ValueError(f"need epochs >= 1 and {n} episodes divisible by num_minibatches={num_minibatches} "
                     f"(got epochs={epochs})")
  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

  def update(carry, minibatch):
    p, state = carry
    (loss, aux), grads = grad_fn(p, minibatch)
    updates, state = tx.update(grads, state, p)
    return (optax.apply_updates(p, updates), state), {"loss": loss, **aux}

  def epoch(carry, key):
    order = jax.random.permutation(key, n)
    shuffled = {k: v[order].reshape((num_minibatches, n // num_minibatches) + v.shape[1:])
                for k, v in rollout.items()}
    return jax.lax.scan(update, carry, shuffled)

  (params, opt_state), metrics = jax.lax.scan(epoch, (params, opt_state), jax.random.split(rng, epochs))
  return params, opt_state, jax.tree.map(jnp.mean, metrics)


def ppo_epochs(params: Any, rollout: Mapping[str, Array],
               loss_fn: Callable[[Any, Mapping[str, Array]], tuple[Array, dict[str, Array]]],
               tx: optax.GradientTransformation, *, epochs: int, num_minibatches: int,
               rng: Array) -> tuple[Any, dict[str, Array]]:
  """`ppo_update` with a fresh `tx` state for this batch: (params, mean metrics)."""
  params, _, metrics = ppo_update(params, tx.init(params), rollout, loss_fn, tx, epochs=epochs,
                                  num_minibatches=num_minibatches, rng=rng)
  return params, metrics


def check_reward(name: str) -> None:
  """Raises naming the valid local rewards (for config validation, before any compute)."""
  if name not in LOCAL_REWARDS:
    raise ValueError(f"unknown local reward {name!r}; valid: {sorted(LOCAL_REWARDS)}")


__all__ = ["LOCAL_REWARDS", "check_reward", "discounted_returns", "gae", "gaussian_entropy",
           "gaussian_log_prob", "global_reward", "local_reward", "normalize", "policy_gradient_loss",
           "ppo_clip_loss", "ppo_epochs", "ppo_update", "retrieval_ranks", "value_loss"]
