"""sgvu.rl: rewards (hand-computed), returns, Gaussian policy terms, PG / PPO losses, the PPO inner loop."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sgvu import rl


def test_retrieval_ranks_count_ties_against_the_target():
  sims = jnp.array([[0.9, 0.5, 0.7, 0.5],
                    [0.1, 0.2, 0.3, 0.4]])
  ranks = rl.retrieval_ranks(sims, jnp.array([2, 1]))
  np.testing.assert_array_equal(ranks, [2, 3])
  # A tie with another photo puts the target behind it (release convention).
  np.testing.assert_array_equal(rl.retrieval_ranks(sims[:1], jnp.array([1])), [4])


def test_local_rewards_by_name():
  ranks = jnp.array([1, 4, 6, 25])
  np.testing.assert_allclose(rl.local_reward("1/rank", ranks, 30), [1, 0.25, 1 / 6, 0.04])
  np.testing.assert_allclose(rl.local_reward("1/sqrt(rank)", ranks, 30), [1, 0.5, 6 ** -0.5, 0.2], rtol=1e-6)
  np.testing.assert_allclose(rl.local_reward("-rank", ranks, 30), [-1, -4, -6, -25])
  np.testing.assert_array_equal(rl.local_reward("rank<=5", ranks, 30), [1, 1, 0, 0])
  with pytest.raises(ValueError, match=r"1/rnak.*valid.*1/rank"):
    rl.local_reward("1/rnak", ranks, 30)


def test_global_reward_hand_computed():
  # Distances of 3 gallery items at 3 steps. L0 = (0, 1, 2); L1 swaps items 0 and 1 (1 of 3 pairs
  # discordant: tau = 1/3); L2 = (2, 1, 0) disagrees with L1 on pairs (0, 2) and (1, 2): tau = 2/3.
  d = jnp.array([[0.0, 1.0, 2.0], [1.0, 0.0, 2.0], [2.0, 1.0, 0.0]])
  r = rl.global_reward(d)
  chex.assert_shape(r, (3,))
  # t=0: no previous change -> 0; t=1: -max(0, 2/3 - 1/3); t=2: no next ranking -> 0.
  np.testing.assert_allclose(r, [0.0, -1 / 3, 0.0], atol=1e-6)
  # A shrinking change is not penalised: L2 = L1 gives tau(L1, L2) = 0 < tau(L0, L1).
  np.testing.assert_allclose(rl.global_reward(d.at[2].set(d[1])), [0.0, 0.0, 0.0], atol=1e-6)
  # Batched over leading axes, and a growing change at the first step is not penalised.
  batch = jnp.stack([d, d[::-1]])
  chex.assert_shape(rl.global_reward(batch), (2, 3))
  np.testing.assert_allclose(rl.global_reward(batch)[1], [0.0, 0.0, 0.0], atol=1e-6)


def test_discounted_returns_and_gae():
  rewards = jnp.array([[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]])
  np.testing.assert_allclose(rl.discounted_returns(rewards, 0.5), [[2.75, 3.5, 3.0], [0.25, 0.5, 1.0]])
  np.testing.assert_allclose(rl.discounted_returns(rewards, 0.0), rewards)
  values = jnp.array([[0.5, 1.0, -1.0], [2.0, 0.0, 0.0]])
  adv, ret = rl.gae(rewards, values, gamma=0.5, lam=1.0)
  # lam = 1: advantages are the discounted returns minus the values.
  np.testing.assert_allclose(adv, rl.discounted_returns(rewards, 0.5) - values, rtol=1e-6)
  np.testing.assert_allclose(ret, rl.discounted_returns(rewards, 0.5), rtol=1e-6)
  # lam = 0: one-step TD errors r_t + gamma V_t+1 - V_t (V after the end = 0).
  adv0, _ = rl.gae(rewards, values, gamma=0.5, lam=0.0)
  np.testing.assert_allclose(adv0[0], [1 + 0.5 * 1.0 - 0.5, 2 + 0.5 * -1.0 - 1.0, 3 + 1.0], rtol=1e-6)
  with pytest.raises(ValueError, match="differ"):
    rl.gae(rewards, values[:, :2], 0.5, 0.5)


def test_gaussian_log_prob_and_entropy():
  x = jnp.array([[0.3, -1.0, 2.0]])
  mean = jnp.array([[0.0, -0.5, 1.0]])
  log_std = jnp.array([0.0, -1.0, 0.5])
  expected = jnp.sum(jax.scipy.stats.norm.logpdf(x, mean, jnp.exp(log_std)), axis=-1)
  np.testing.assert_allclose(rl.gaussian_log_prob(x, mean, log_std), expected, rtol=1e-5)
  # Shared scalar log-std broadcasts over the dimensions.
  np.testing.assert_allclose(rl.gaussian_log_prob(x, mean, jnp.float32(-1.0)),
                             jnp.sum(jax.scipy.stats.norm.logpdf(x, mean, jnp.exp(-1.0)), axis=-1), rtol=1e-5)
  # Entropy of N(0, s^2) per dimension: 0.5 log(2 pi e s^2).
  np.testing.assert_allclose(rl.gaussian_entropy(log_std), np.sum(0.5 * np.log(2 * np.pi * np.e) + log_std),
                             rtol=1e-6)
  np.testing.assert_allclose(rl.gaussian_entropy(jnp.float32(0.0), dim=4), 2 * np.log(2 * np.pi * np.e), rtol=1e-6)


def test_ppo_clip_loss_value_and_gradient_hand_computed():
  old = jnp.zeros(4)
  new = jnp.log(jnp.array([1.5, 0.5, 1.5, 0.5]))
  adv = jnp.array([1.0, 1.0, -1.0, -1.0])
  loss, aux = rl.ppo_clip_loss(new, old, adv, clip_eps=0.2)
  # min(r A, clip(r) A): 1.2 (clipped), 0.5, -1.5, -0.8 (clipped); loss = -mean.
  np.testing.assert_allclose(loss, -(1.2 + 0.5 - 1.5 - 0.8) / 4, rtol=1e-6)
  np.testing.assert_allclose(aux["clip_fraction"], 1.0)
  assert aux["approx_kl"] > 0
  # Clipped terms carry no gradient; the others d/dlogp = -A r / 4.
  grad = jax.grad(lambda lp: rl.ppo_clip_loss(lp, old, adv, 0.2)[0])(new)
  np.testing.assert_allclose(grad, [0.0, -0.5 / 4, 1.5 / 4, 0.0], rtol=1e-6, atol=1e-7)
  # At r = 1 the surrogate's gradient is the policy gradient.
  lp = jnp.array([-1.0, -2.0, -0.5])
  a = jnp.array([0.3, -1.2, 2.0])
  np.testing.assert_allclose(jax.grad(lambda p: rl.ppo_clip_loss(p, lp, a, 0.2)[0])(lp),
                             jax.grad(lambda p: rl.policy_gradient_loss(p, a))(lp), rtol=1e-6)


def test_policy_gradient_and_value_losses():
  lp = jnp.array([-1.0, -2.0])
  adv = jnp.array([2.0, -1.0])
  np.testing.assert_allclose(rl.policy_gradient_loss(lp, adv), -(-2.0 + 2.0) / 2)
  # The advantage is a constant: no gradient flows into it.
  np.testing.assert_allclose(jax.grad(lambda a: rl.policy_gradient_loss(lp, a))(adv), [0.0, 0.0])
  np.testing.assert_allclose(rl.value_loss(jnp.array([1.0, 3.0]), jnp.array([0.0, 1.0])), 0.5 * (1 + 4) / 2)
  x = rl.normalize(jnp.array([1.0, 2.0, 3.0, 6.0]))
  np.testing.assert_allclose([x.mean(), x.std()], [0.0, 1.0], atol=1e-6)


def test_ppo_epochs_one_full_batch_step_is_one_gradient_step():
  rollout = {"x": jnp.arange(8.0).reshape(8, 1), "w": jnp.ones((8,))}
  loss_fn = lambda p, b: (jnp.mean(b["w"] * jnp.square(p["theta"] - b["x"][:, 0])), {"n": jnp.float32(len(b["w"]))})
  params = {"theta": jnp.float32(0.0)}
  new, metrics = rl.ppo_epochs(params, rollout, loss_fn, optax.sgd(0.1), epochs=1, num_minibatches=1,
                               rng=jax.random.key(0))
  # d/dtheta mean((theta - x)^2) at 0 = -2 mean(x) = -7.
  np.testing.assert_allclose(new["theta"], 0.7, rtol=1e-6)
  np.testing.assert_allclose(metrics["loss"], np.mean(np.arange(8.0) ** 2), rtol=1e-6)
  # Several epochs of minibatches: every update sees n / num_minibatches episodes and theta converges to the mean.
  new, metrics = rl.ppo_epochs(params, rollout, loss_fn, optax.sgd(0.1), epochs=30, num_minibatches=4,
                               rng=jax.random.key(1))
  np.testing.assert_allclose(metrics["n"], 2.0)
  np.testing.assert_allclose(new["theta"], 3.5, atol=0.3)
  with pytest.raises(ValueError, match="divisible"):
    rl.ppo_epochs(params, rollout, loss_fn, optax.sgd(0.1), epochs=1, num_minibatches=3, rng=jax.random.key(0))


def test_ppo_improves_a_gaussian_bandit_more_per_batch_than_one_pg_step():
  """Reward -|a - 2|^2 for a 1-d Gaussian policy: several clipped epochs per batch move the mean further
  than one policy-gradient step with the same learning rate, and stay inside the trust region."""
  key = jax.random.key(0)
  params = {"mean": jnp.zeros(1), "log_std": jnp.zeros(1)}
  actions = params["mean"] + jax.random.normal(key, (256, 1))
  rewards = -jnp.sum(jnp.square(actions - 2.0), -1)
  adv = rl.normalize(rewards)
  old_lp = rl.gaussian_log_prob(actions, params["mean"], params["log_std"])
  rollout = {"a": actions, "adv": adv, "old": old_lp}

  def ppo_loss(p, b):
    return rl.ppo_clip_loss(rl.gaussian_log_prob(b["a"], p["mean"], p["log_std"]), b["old"], b["adv"], 0.2)

  ppo, metrics = rl.ppo_epochs(params, rollout, ppo_loss, optax.sgd(0.05), epochs=8, num_minibatches=4,
                               rng=jax.random.key(1))
  pg, _ = rl.ppo_epochs(params, rollout, lambda p, b: (rl.policy_gradient_loss(
      rl.gaussian_log_prob(b["a"], p["mean"], p["log_std"]), b["adv"]), {}), optax.sgd(0.05), epochs=1,
      num_minibatches=1, rng=jax.random.key(1))
  assert 0.0 < float(pg["mean"][0]) < float(ppo["mean"][0]) < 2.0
  assert float(metrics["clip_fraction"]) > 0.0  # the trust region was reached
