"""On-the-fly fine-grained SBIR (seed 001, "Sketch Less for More"): retrieve while the sketch is drawn.

Every sketch is rendered at T completion levels (5%, 10%, ..., 100% of its
points, in drawing order). Stage 1 trains the FG-SBIR model on complete
sketches (B1, `sgvu.tasks.fg_sbir`); its backbone is then frozen, as in the
release: every level of every sketch becomes a backbone feature once, and the
photo galleries become fixed embeddings. Every other row learns only a sketch
head on those features, starting from B1's head: B3 triplet on all levels,
B4 one head per level, and the RL policies, a Gaussian over the embedding
trained on the episode's rewards by vanilla policy gradient or by PPO.
B2 is a second stage-1 model with DSSA-style spatial attention.

How PPO runs in the one training loop: a step of `train.fit` is one PPO
iteration, through the task's own update (`PolicyTask.make_update`): collect a
batch of episodes with the current policy, then `rl.ppo_update` runs epochs x
minibatches of clipped-surrogate steps with ONE optimizer state that the loop
carries across batches (and checkpoints); the logged loss is the surrogate.
Vanilla PG is an ordinary loss. The rows of the table are assembled by
`table()` and run by `sgvu.experiment`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sgvu import configs, evaluators, experiment, export, interrupt, optim, plots, rl, train
from sgvu.models.heads import EmbeddingHead, LevelHeads
from sgvu.models.level_query import LevelQuery
from sgvu.models.policy import GaussianPolicy, action_embedding, sample_actions
from sgvu.tasks import clip_pretrain, fg_sbir
from sgvu.tasks.base import Task
from sgvu.tasks.on_the_fly_data import LevelData, episode_iterator, level_data, level_fractions

METRICS = ["m@A", "m@B", "A@5", "A@10"]
KINDS = ("base", "head", "policy")
ALGORITHMS = ("pg", "ppo")
BASELINES = ("batch", "greedy")  # actor-only rows; actor-critic rows use GAE


@dataclasses.dataclass(frozen=True)
class Method:
  kind: str  # 'base': a stage-1 model as is | 'head': triplet-trained sketch head | 'policy': RL
  base: str = "B1"  # kind 'base': the fg_sbir method
  per_level: bool = False  # kind 'head': one head per completion level (B4)
  algorithm: str = "ppo"  # kind 'policy': 'pg' (REINFORCE) | 'ppo'
  reward: str = "1/rank"  # local reward, a key of rl.LOCAL_REWARDS
  global_term: bool = True  # add seed 001's Kendall-tau term (weight rl.global_weight)
  critic: bool = False  # actor-critic (GAE) instead of actor-only

  def __post_init__(self):
    if self.kind not in KINDS or self.algorithm not in ALGORITHMS:
      raise ValueError(f"Method(kind={self.kind!r}, algorithm={self.algorithm!r}); valid: {KINDS}, {ALGORITHMS}")


METHODS: dict[str, Method] = {
    "B1": Method("base", base="B1"),
    "B2": Method("base", base="B2"),
    "B3": Method("head"),
    "B4": Method("head", per_level=True),
    "vanilla-pg": Method("policy", algorithm="pg"),  # seed 001's reward, REINFORCE
    "ppo": Method("policy"),  # seed 001: PPO, actor-only, clipping, Eq. 4 reward
    "ppo-ac": Method("policy", critic=True),
    "release-pg": Method("policy", algorithm="pg", global_term=False),  # what the official code runs
    # Reward designs (PPO, local reward only).
    "reward-1/rank": Method("policy", global_term=False),
    "reward-rank<=1": Method("policy", reward="rank<=1", global_term=False),
    "reward-rank<=5": Method("policy", reward="rank<=5", global_term=False),
    "reward-rank<=10": Method("policy", reward="rank<=10", global_term=False),
    "reward--rank": Method("policy", reward="-rank", global_term=False),
    "reward-1/sqrt(rank)": Method("policy", reward="1/sqrt(rank)", global_term=False),
}


# ----------------------------------------------------------------------------
# Tasks on the frozen features.


class _FeatureTask(Task):
  """Shared by the head and policy tasks: frozen galleries, B1's head as init."""

  def __init__(self, config, method: Method, train_data: LevelData, test_data: LevelData, init_head):
    super().__init__(config)
    self.method, self.train_data, self.test_data = method, train_data, test_data
    self.photos = jnp.asarray(train_data.photos)
    self.labels = jnp.asarray(train_data.photo_labels)
    self.init_head = init_head  # flat {'proj/kernel': ..., ...} of B1's head, or None
    self.levels = train_data.features.shape[1]

  def train_iterator(self, batch_size, seed):
    return episode_iterator(self.train_data, batch_size, seed)

  def embed_levels(self, params, features):
    """Sketch features [N, T, F] at every completion level -> unit-norm embeddings [N, T, D]."""
    raise NotImplementedError

  def predict_fns(self):
    return {"embed_levels": self.embed_levels}


class HeadTask(_FeatureTask):
  """B3 (one head, all levels) and B4 (a head per level): triplet loss against the frozen photo embeddings."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    c = self.config.fg
    self.model = (LevelHeads(c.embed_dim, self.levels, c.head_hidden) if self.method.per_level
                  else EmbeddingHead(c.embed_dim, c.head_hidden))

  def init_params(self, rng):
    return self.model.init(rng, jnp.zeros((1, self.levels, self.train_data.features.shape[-1])))["params"]

  def pretrained(self):
    if self.init_head is None:
      return {}
    if self.method.per_level:  # every level's head starts as B1's
      return {f"heads/{k}": np.broadcast_to(v, (self.levels,) + v.shape) for k, v in self.init_head.items()}
    return dict(self.init_head)

  def embed_levels(self, params, features):
    return self.model.apply({"params": params}, features)

  def loss_fn(self, params, batch, rng):
    """Stage 1's loss (fg.loss) at every level against the frozen photo embeddings, averaged over levels."""
    del rng
    c = self.config.fg
    emb = self.embed_levels(params, batch["features"])  # [B, T, D]
    pos, neg = self.photos[batch["target"]], self.photos[batch["negative"]]
    labels = self.labels[batch["target"]]
    loss_of_level = lambda e: fg_sbir.LOSSES[c.loss](e, pos, neg, labels, c.margin, c.logit_scale)
    loss, aux = jax.vmap(loss_of_level, in_axes=1)(emb)
    return jnp.mean(loss), jax.tree.map(jnp.mean, aux)


class PolicyTask(_FeatureTask):
  """The RL rows: a Gaussian policy over the sketch embedding, episodes = sketches drawn over T levels."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    c, r = self.config.fg, self.config.rl
    self.model = GaussianPolicy(c.embed_dim, c.head_hidden, init_log_std=r.init_log_std, critic=self.method.critic)

  def init_params(self, rng):
    return self.model.init(rng, jnp.zeros((1, self.train_data.features.shape[-1])))["params"]

  def pretrained(self):
    return {} if self.init_head is None else {f"head/{k}": v for k, v in self.init_head.items()}

  def is_trainable(self, path):
    return self.config.rl.learn_std or path != "log_std"

  def embed_levels(self, params, features):
    return self.model.apply({"params": params}, features)[0]  # the mean action

  def episode_rewards(self, actions, targets, rng):
    """Rewards [B, T] (seed 001's Eq. 4 or the method's design) and ranks [B, T] of actions [B, T, D]."""
    r = self.config.rl
    sims = action_embedding(actions) @ self.photos.T  # [B, T, P]
    ranks = rl.retrieval_ranks(sims, jnp.broadcast_to(targets[:, None], sims.shape[:-1]))
    rewards = r.local_weight * rl.local_reward(self.method.reward, ranks, self.photos.shape[0])
    if self.method.global_term and r.global_weight:
      # Kendall tau is O(G^2): on big galleries a random subset of photos stands in for all of them.
      g = self.photos.shape[0]
      subset = sims if g <= r.tau_photos else sims[..., jax.random.choice(rng, g, (r.tau_photos,), replace=False)]
      rewards = rewards + r.global_weight * rl.global_reward(-subset)
    return rewards, ranks

  def rollout(self, params, batch, rng):
    """Samples one episode per sketch with `params` (held constant), scores it, computes advantages."""
    r = self.config.rl
    params = jax.lax.stop_gradient(params)
    k_act, k_tau = jax.random.split(rng)
    mean, log_std, value = self.model.apply({"params": params}, batch["features"])
    actions = sample_actions(k_act, mean, log_std)  # [B, T, D]
    rewards, ranks = self.episode_rewards(actions, batch["target"], k_tau)
    if self.method.critic:
      advantages, returns = rl.gae(rewards, value, r.gamma, r.gae_lambda)
    else:
      returns = rl.discounted_returns(rewards, r.gamma)
      if r.baseline == "greedy":  # self-critical: the same sketch's return with the mean action
        greedy, _ = self.episode_rewards(mean, batch["target"], k_tau)
        baseline = rl.discounted_returns(greedy, r.gamma)
      else:  # leave-one-out mean return of the batch at each level
        b = returns.shape[0]
        baseline = (jnp.sum(returns, 0, keepdims=True) - returns) / max(b - 1, 1)
      advantages = returns - baseline
    if r.normalize_advantages:
      advantages = rl.normalize(advantages)
    old_log_prob = rl.gaussian_log_prob(actions, mean, log_std)
    return ({"features": batch["features"], "actions": actions, "old_log_prob": old_log_prob,
             "advantages": advantages, "returns": returns},
            {"reward": jnp.mean(rewards), "mean_rank": jnp.mean(ranks.astype(jnp.float32)),
             "reciprocal_rank": jnp.mean(1.0 / ranks), "std": jnp.mean(jnp.exp(log_std))})

  def surrogate(self, params, episodes):
    """The policy's loss on collected episodes: PG or PPO's clipped surrogate, value and entropy terms."""
    r = self.config.rl
    mean, log_std, value = self.model.apply({"params": params}, episodes["features"])
    if not r.learn_std:  # a fixed exploration noise: no update inside the PPO epochs either
      log_std = jax.lax.stop_gradient(log_std)
    log_prob = rl.gaussian_log_prob(episodes["actions"], mean, log_std)
    if self.method.algorithm == "ppo":
      loss, aux = rl.ppo_clip_loss(log_prob, episodes["old_log_prob"], episodes["advantages"], r.clip_eps)
    else:
      loss, aux = rl.policy_gradient_loss(log_prob, episodes["advantages"]), {}
    if self.method.critic:
      aux["value_loss"] = rl.value_loss(value, episodes["returns"])
      loss = loss + r.value_weight * aux["value_loss"]
    if r.entropy_weight:
      loss = loss - r.entropy_weight * rl.gaussian_entropy(log_std)
    return loss, aux

  def loss_fn(self, params, batch, rng):
    """Vanilla policy gradient: one gradient step of the surrogate per batch of episodes."""
    k_roll, _ = jax.random.split(rng)  # the same split as PPO's update
    episodes, aux = self.rollout(params, batch, k_roll)
    loss, extra = self.surrogate(params, episodes)
    return loss, {**aux, **extra}

  def make_optimizer(self, config, params, *, total_steps):
    """PPO applies the optimizer epochs x minibatches times per step: its schedule spans all of them."""
    if self.method.algorithm == "ppo":
      total_steps *= self.config.rl.ppo_epochs * self.config.rl.num_minibatches
    return optim.make_optimizer(config, params, total_steps=total_steps)

  def make_update(self, tx):
    """PPO: a step collects a batch of episodes with the current policy and runs the clipped epochs
    with `tx`, whose state the loop carries across batches; logs the mean clipped surrogate as loss."""
    if self.method.algorithm != "ppo":
      return None  # vanilla PG: the loop's gradient step of loss_fn
    r = self.config.rl

    def update(params, frozen, opt_state, batch, rng):
      k_roll, k_epochs = jax.random.split(rng)
      episodes, aux = self.rollout(train.merge_params(params, frozen), batch, k_roll)
      surrogate = lambda p, minibatch: self.surrogate(train.merge_params(p, frozen), minibatch)
      params, opt_state, extra = rl.ppo_update(params, opt_state, episodes, surrogate, tx, epochs=r.ppo_epochs,
                                               num_minibatches=r.num_minibatches, rng=k_epochs)
      return params, opt_state, {**aux, **extra}

    return update


def method_train_config(config: ml_collections.ConfigDict, method: Method) -> ml_collections.ConfigDict:
  """The loop's config of a row: head_train for heads, rl_train for policies (PPO included: its
  rl_train.optim state is carried across batches by the loop, see PolicyTask.make_update)."""
  base = config.head_train if method.kind == "head" else config.rl_train
  return ml_collections.ConfigDict(base.to_dict())




def validate(config: ml_collections.ConfigDict) -> None:
  unknown = [m for m in config.methods if m not in METHODS]
  if unknown or not config.methods:
    raise ValueError(f"config.methods has unknown {unknown or '(empty)'}; valid: {sorted(METHODS)}")
  if config.get("baseline", "B1") not in METHODS:
    raise ValueError(f"config.baseline={config.baseline!r} is not a method; valid: {sorted(METHODS)}")
  evaluators.validate(config.evals)
  evaluators.validate(config.fg_evals, "config.fg_evals")
  if [spec.type for spec in config.evals.values()] != ["on_the_fly"]:
    raise ValueError(f"config.evals: the on-the-fly table is scored by one 'on_the_fly' evaluator, got "
                     f"{[spec.type for spec in config.evals.values()]}")
  fg_sbir.validate_base(config, ["B1"] + [m for m in config.methods if METHODS[m].kind == "base"])
  configs.check_positive(config, "rl_train_photos", allow_zero=True)
  if not isinstance(config.levels, int) or config.levels < 2:
    raise ValueError(f"config.levels={config.levels!r} must be an integer >= 2")
  r = config.rl
  configs.check_choice(config, "rl.baseline", BASELINES)
  configs.check_positive(config, "rl.gamma", "rl.gae_lambda", "rl.local_weight", "rl.global_weight",
                         "rl.entropy_weight", "rl.value_weight", allow_zero=True)
  configs.check_positive(config, "rl.clip_eps", "rl.ppo_epochs", "rl.num_minibatches", "rl.tau_photos")
  if not 0.0 <= r.gamma <= 1.0:
    raise ValueError(f"config.rl.gamma={r.gamma} must be in [0, 1]")
  if r.tau_photos < 2:
    raise ValueError(f"config.rl.tau_photos={r.tau_photos} must be >= 2 (Kendall tau compares pairs)")
  configs.validate_train(config.head_train)
  configs.validate_train(config.rl_train)
  if config.rl_train.batch_size % r.num_minibatches:
    raise ValueError(f"config.rl_train.batch_size={config.rl_train.batch_size} is not divisible by "
                     f"config.rl.num_minibatches={r.num_minibatches}")
  for m in config.methods:
    rl.check_reward(METHODS[m].reward)


# ----------------------------------------------------------------------------
# The table.


STAGE_KEYS = ("fg", "fg_train", "fg_evals", "data", "model", "clip_train", "levels", "rl_train_photos")


def stage_settings(config) -> dict:
  """What stage 1 (B1 and its frozen features) depends on."""
  return {k: config[k] for k in STAGE_KEYS if k in config}


def row_settings(config, name: str) -> dict:
  method = METHODS[name]
  extra = {"head": ("head_train",), "policy": ("rl", "rl_train")}.get(method.kind, ())
  return {"stage": stage_settings(config), "evals": config.evals, "method": name,
          **{k: config[k] for k in extra}}


@dataclasses.dataclass
class StageOne:
  """B1 trained on complete sketches, frozen: its features of both splits and its head."""
  task: Any  # fg_sbir.FGSBIRTask
  params: Any  # B1's host params
  train_data: LevelData
  test_data: LevelData
  trainable: int


def stage_one(config, directory: str, source, backbone, fractions) -> StageOne:
  """Trains B1 in DIRECTORY (or reuses it when its settings are unchanged) and caches its level features."""
  task = fg_sbir.FGSBIRTask(config, fg_sbir.METHODS["B1"], backbone, source)
  path = os.path.join(directory, "features.npz")
  if experiment.cached_stage(directory, stage_settings(config), code=experiment.code_version(config.task)):
    logging.info("stage 1: reusing %s", directory)
    with np.load(path) as z:
      params = train.unflatten({k[len("params/"):]: np.asarray(z[k]) for k in z.files if k.startswith("params/")})
      return StageOne(task, params, LevelData.load(z, "train"), LevelData.load(z, "test"), int(z["b1_trainable"]))
  task, params, result = fg_sbir.train_method(config, "B1", os.path.join(directory, "B1"), source, backbone,
                                              evals_config=config.fg_evals)
  interrupt.check("after training stage 1 (B1)")
  train_data = level_data(task, params, "train", fractions, max_photos=config.rl_train_photos,
                          seed=config.fg_train.seed)
  test_data = level_data(task, params, "test", fractions)
  if jax.process_index() == 0:
    arrays = {**train_data.arrays("train"), **test_data.arrays("test"),
              **{f"params/{k}": np.asarray(v) for k, v in train.flatten(params).items()},
              "b1_trainable": np.int64(result["trainable_params"])}
    np.savez(path + ".tmp.npz", **arrays)
    os.replace(path + ".tmp.npz", path)
    experiment.finish_stage(directory)
  return StageOne(task, params, train_data, test_data, int(result["trainable_params"]))


def seed_curves(workdir: str, method: str, seeds: int) -> list[dict]:
  """Each training seed's per-level curves of a row, from its result.json (the table row keeps seed 0's)."""
  out = []
  for seed in range(seeds):
    with open(os.path.join(experiment.row_dir(workdir, method, seed), experiment.RESULT_FILE)) as f:
      out.append(json.load(f)["curves"])
  return out


def table(config: ml_collections.ConfigDict, workdir: str) -> experiment.Table:
  """`python -m sgvu.main --config=experiments/on_the_fly.py`: seed 001's table and the per-level curves."""
  backbone = fg_sbir.load_backbone(config, ["B1"])
  source = fg_sbir.make_source(config, backbone.image_size)
  fractions = level_fractions(config.levels)
  stage = stage_one(config, os.path.join(workdir, "stage1"), source, backbone, fractions)
  fc = config.fg

  def evaluate_levels(embed_levels, params, levels: LevelData) -> dict:
    (evaluator,) = evaluators.build(config.evals, {"embed_levels": embed_levels}, levels=levels).values()
    return evaluator.run(params)

  def run_row(name: str, seed: int, directory: str) -> dict:
    method = METHODS[name]
    bundle_dir = os.path.join(directory, export.BUNDLE_DIR)
    if method.kind == "base":
      if method.base == "B1" and seed == 0:  # stage 1 itself
        task, params, trainable, levels = stage.task, stage.params, stage.trainable, stage.test_data
      else:
        task, params, result = fg_sbir.train_method(config, method.base, directory, source, backbone, seed,
                                                    evals_config=config.fg_evals)
        trainable, levels = result.get("trainable_params", 0), level_data(task, params, "test", fractions)
      head = EmbeddingHead(fc.embed_dim, fc.head_hidden)
      result = evaluate_levels(lambda p, f: head.apply({"params": p}, f), params["head"], levels)
      fg_sbir.export_bundle(config, task, params, name, seed, 0, bundle_dir)
      return {**result, "trainable_params": int(trainable)}
    cls = HeadTask if method.kind == "head" else PolicyTask
    head_init = {k: np.asarray(v) for k, v in train.flatten(stage.params["head"]).items()}
    task = cls(config, method, stage.train_data, stage.test_data, head_init)
    tc = method_train_config(config, method)
    tc.seed = tc.seed + seed
    setup = train.build(task, tc)
    params, records = train.fit(task, tc, directory, setup=setup,
                                evaluate=lambda p: evaluate_levels(task.embed_levels, p, stage.test_data))
    model = LevelQuery(backbone=stage.task.model, head=task.model)
    fg_sbir.export_bundle(config, stage.task, {"backbone": stage.params, "head": jax.device_get(params)}, name, seed,
                          tc.num_steps, bundle_dir, model=model,
                          query={"method": "__call__", "kwargs": {}, "levels": int(config.levels)})
    return {**{k: v for k, v in records[-1].items() if k != "step"}, "trainable_params": setup.num_trainable}

  def pictures(rows: dict) -> None:
    png = os.path.join(workdir, "on_the_fly_curves.png")
    plots.completion_curves({name: seed_curves(workdir, name, row["seeds"]) for name, row in rows.items()},
                            fractions, png, title=f"{config.name}: {len(stage.test_data.targets)} test sketches, "
                            f"gallery {len(stage.test_data.photos)} photos")
    logging.info("curves: %s", png)

  return experiment.Table(
      name=config.name, split="val" if config.data.holdout else "test", metrics=METRICS,
      methods=tuple(config.methods), run_row=run_row,
      settings=lambda name: row_settings(config, name),
      seeds=config.seeds, gallery_size=len(stage.test_data.photos),
      description=(f"{config.data.dataset}, {len(stage.test_data.targets)} test sketches x {config.levels} levels, "
                   f"gallery {len(stage.test_data.photos)} photos"),
      smoke_test=config.get("smoke_test", False), pictures=pictures,
      extra={"levels": list(fractions), **clip_pretrain.clip_extra(config, fg_sbir.needs_clip(config, ()))},
      fingerprint=experiment.table_fingerprint(config),
      code=experiment.code_version(config.task), baseline=config.get("baseline", "B1"))


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  started = time.perf_counter()  # the wall time includes shared stages (CLIP, data, stage 1)
  return experiment.run(table(config, workdir), workdir, started=started)
