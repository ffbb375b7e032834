"""sgvu.rl: rewards (hand-computed), returns, Gaussian policy terms, PG / PPO losses, the PPO inner loop."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sgvu import rl
from toy_task import DIM, toy_level_data


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


def test_ppo_update_carries_the_optimizer_state_and_ppo_epochs_restarts_it():
  rollout = {"x": jnp.arange(8.0).reshape(8, 1)}
  loss_fn = lambda p, b: (jnp.mean(jnp.square(p["theta"] - b["x"][:, 0])), {})
  params, tx = {"theta": jnp.float32(0.0)}, optax.adam(0.1)
  p1, s1, _ = rl.ppo_update(params, tx.init(params), rollout, loss_fn, tx, epochs=2, num_minibatches=2,
                            rng=jax.random.key(0))
  assert int(s1[0].count) == 4  # epochs x minibatches updates
  p2, s2, _ = rl.ppo_update(p1, s1, rollout, loss_fn, tx, epochs=2, num_minibatches=2, rng=jax.random.key(1))
  assert int(s2[0].count) == 8
  fresh, _ = rl.ppo_epochs(p1, rollout, loss_fn, tx, epochs=2, num_minibatches=2, rng=jax.random.key(1))
  assert float(fresh["theta"]) != float(p2["theta"])  # Adam's moments matter: carrying them is a change


# --- PPO in the training loop: the task's own update, one optimizer state across batches -----------




def _policy_task(method, num_devices):
  from experiments import on_the_fly as otf_config
  from sgvu.tasks import on_the_fly
  config = otf_config.get_config("small")
  config.fg.embed_dim = DIM
  config.rl.tau_photos = 16
  t = config.rl_train
  t.batch_size, t.num_steps, t.sharding.num_devices = 16, 2, num_devices
  t.optim.lr = 1e-2
  rng = np.random.default_rng(3)
  head = {"proj/kernel": (np.eye(DIM) + 0.9 * rng.normal(size=(DIM, DIM))).astype(np.float32),
          "proj/bias": np.zeros(DIM, np.float32)}
  task = on_the_fly.PolicyTask(config, on_the_fly.METHODS[method], toy_level_data(0, 64), toy_level_data(1, 16), head)
  return config, task, on_the_fly.method_train_config(config, task.method)


def _counts(opt_state):
  return sorted({int(x) for p, x in jax.tree_util.tree_flatten_with_path(opt_state)[0]
                 if "count" in jax.tree_util.keystr(p)})


def test_ppo_row_update_is_ppo_epochs_with_a_carried_optimizer_state_on_1_and_8_devices():
  from sgvu import sharding, train
  results = []
  for devices in (1, 8):
    config, task, tc = _policy_task("ppo", devices)
    assert tc.optim.to_dict() == config.rl_train.optim.to_dict()  # no SGD-at-lr-1 stand-in any more
    setup = train.build(task, tc)
    state = train.initial_state(task, setup, 0)
    r = config.rl
    per_step = r.ppo_epochs * r.num_minibatches
    params, frozen = jax.device_get(state.params), jax.device_get(state.frozen)
    opt_state = setup.tx.init(params)
    surrogate = lambda p, b: task.surrogate(train.merge_params(p, frozen), b)
    batches = task.train_iterator(16, tc.seed)
    for t in range(2):
      batch = next(batches)
      k_roll, k_epochs = jax.random.split(jax.random.fold_in(jax.random.key(tc.seed + 1), t))  # the loop's keys
      episodes, _ = task.rollout(train.merge_params(params, frozen), batch, k_roll)
      if t == 1:  # what the old loss did: a fresh optimizer state for every batch
        restarted, _ = rl.ppo_epochs(params, episodes, surrogate, setup.tx, epochs=r.ppo_epochs,
                                     num_minibatches=r.num_minibatches, rng=k_epochs)
      params, opt_state, expected = rl.ppo_update(params, opt_state, episodes, surrogate, setup.tx,
                                                  epochs=r.ppo_epochs, num_minibatches=r.num_minibatches,
                                                  rng=k_epochs)
      with jax.set_mesh(setup.mesh):
        state, metrics = setup.step(state, sharding.to_global(batch, setup.batch_sharding))
      got = jax.device_get(state.params)
      jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5), got, params)
      # The logged loss is the clipped surrogate itself, averaged over the step's updates.
      np.testing.assert_allclose(float(metrics["loss"]), float(expected["loss"]), rtol=1e-4, atol=1e-6)
      assert float(metrics["approx_kl"]) > 0 and "grad_norm" not in metrics
      assert _counts(state.opt_state) == [(t + 1) * per_step]  # one state, carried across batches
    diff = jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), params, restarted)
    assert max(jax.tree.leaves(diff)) > 1e-4  # carrying the state is not a no-op
    results.append(got)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5), results[0], results[1])


def test_vanilla_pg_stays_an_ordinary_loss():
  _, task, tc = _policy_task("vanilla-pg", 1)
  assert task.make_update(optax.sgd(0.1)) is None
  assert "grad_norm" in _step_metrics(task, tc)


def _step_metrics(task, tc):
  from sgvu import sharding, train
  setup = train.build(task, tc)
  state = train.initial_state(task, setup, 0)
  with jax.set_mesh(setup.mesh):
    _, metrics = setup.step(state, sharding.to_global(next(task.train_iterator(16, 0)), setup.batch_sharding))
  return metrics
