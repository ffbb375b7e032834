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
iteration. `loss_fn` collects a batch of episodes with the current policy,
runs `rl.ppo_epochs` (epochs x minibatches of clipped-surrogate updates with
the configured optimizer, jitted inside the step) and returns
0.5 * ||params - stop_gradient(new_params)||^2, whose gradient step with SGD at
learning rate 1 (set by `method_train_config`) is params = new_params.
Checkpoints, logging, the NaN guard and sharding stay the loop's.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from typing import Callable, Sequence

from absl import logging
import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sgvu import configs, metrics, optim, rl, train
from sgvu.data import pipeline
from sgvu.data.base import BadSample, DataError
from sgvu.metrics import on_the_fly as otf_metrics
from sgvu.models.heads import EmbeddingHead, LevelHeads
from sgvu.models.policy import GaussianPolicy, action_embedding, sample_actions
from sgvu.tasks import common, fg_sbir
from sgvu.tasks.base import Task

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


def slug(name: str) -> str:
  """A method name as a directory name: 'reward-1/sqrt(rank)' -> 'reward-1_sqrt_rank'."""
  name = name.replace("<=", "_le").replace("/", "_")
  return re.sub(r"[^A-Za-z0-9_.+-]+", "_", name).strip("_")


def level_fractions(levels: int) -> tuple[float, ...]:
  return tuple(round(k / levels, 6) for k in range(1, levels + 1))


# ----------------------------------------------------------------------------
# Frozen features of every completion level.


@dataclasses.dataclass
class LevelData:
  """One split through the frozen stage-1 model."""
  features: np.ndarray  # [N, T, F] sketch backbone features per level
  targets: np.ndarray  # [N] row of each sketch's photo in `photos`
  photos: np.ndarray  # [P, D] photo gallery embeddings (unit norm)
  photo_labels: np.ndarray  # [P] category of each photo (negatives come from the same one)

  def arrays(self, prefix: str) -> dict[str, np.ndarray]:
    return {f"{prefix}/{k}": v for k, v in dataclasses.asdict(self).items()}

  @classmethod
  def load(cls, arrays, prefix: str) -> "LevelData":
    return cls(**{f.name: np.asarray(arrays[f"{prefix}/{f.name}"]) for f in dataclasses.fields(cls)})


def encode_images(task: fg_sbir.FGSBIRTask, params, images: np.ndarray, kind: str, *,
                  features: bool = False) -> np.ndarray:
  """uint8 [n, S, S, 3] -> [n, *] with one compiled batch shape (the last batch is padded)."""
  jitted = task.jitted_encoder(kind, features)
  bs, out = task.config.eval_batch_size, []
  for start in range(0, len(images), bs):
    chunk = images[start:start + bs]
    out.append(np.asarray(jitted(params, common.pad_rows(chunk, bs)))[:len(chunk)])
  return np.concatenate(out)


def sketch_levels(task: fg_sbir.FGSBIRTask, params, split: str, items: Sequence[int], fractions: Sequence[float],
                  *, features: bool) -> tuple[np.ndarray, np.ndarray]:
  """[N, T, *] features (or embeddings) of sketches `items` at every level, and their item index [N]."""
  sp, size, chunk = task.source.split(split), task.image_size, max(1, 1024 // len(fractions))
  out, index = [], []
  for start in range(0, len(items), chunk):
    rendered = []
    for i in items[start:start + chunk]:
      try:
        rendered.append([pipeline.render_sketch(task.source, sp.sketches[i], size, f) for f in fractions])
        index.append(i)
      except BadSample as e:
        logging.warning("%s: skipping %s: %s", task.source.name, e.key, e.reason)
    if rendered:
      images = np.asarray(rendered).reshape((-1, size, size, 3))
      x = encode_images(task, params, images, "sketch", features=features)
      out.append(x.reshape((len(rendered), len(fractions)) + x.shape[1:]))
  if not out:
    raise DataError(f"{task.source.name}/{split}: no sketch could be rendered")
  return np.concatenate(out), np.asarray(index, np.int64)


def level_data(task: fg_sbir.FGSBIRTask, params, split: str, fractions: Sequence[float], *,
               max_photos: int = 0, seed: int = 0) -> LevelData:
  """A split through the frozen model; with max_photos, a random subset of its photos and their sketches."""
  t = time.perf_counter()
  sp = task.source.split(split)
  photo_items = np.arange(len(sp.photos))
  if max_photos and len(photo_items) > max_photos:
    photo_items = np.sort(np.random.default_rng(seed).permutation(len(photo_items))[:max_photos])
  photos, photo_index = [], []
  for i in photo_items:
    try:
      photos.append(pipeline.load_photo(task.source, sp.photos[i], task.image_size))
      photo_index.append(i)
    except BadSample as e:
      logging.warning("%s: skipping %s: %s", task.source.name, e.key, e.reason)
  photo_index = np.asarray(photo_index, np.int64)
  gallery = encode_images(task, params, np.stack(photos), "photo")
  wanted = set(photo_index.tolist())
  items = [i for i, s in enumerate(sp.sketches) if s.photo is not None and int(s.photo) in wanted]
  feats, sketch_index = sketch_levels(task, params, split, items, fractions, features=True)
  keep, targets = fg_sbir.gallery_targets(sp, sketch_index, photo_index)
  labels = np.asarray([sp.photos[int(i)].label for i in photo_index], np.int32)
  logging.info("%s: %d sketches x %d levels, gallery of %d photos (%.0fs)", split, len(keep), len(fractions),
               len(gallery), time.perf_counter() - t)
  return LevelData(feats[keep].astype(np.float32), targets, gallery.astype(np.float32), labels)


def score(embeds: np.ndarray, targets: np.ndarray, gallery: np.ndarray):
  """(m@A / m@B / A@K, per-level curves, ranks [N, T]) of per-level embeddings [N, T, D]."""
  n, t, d = embeds.shape
  ranks = fg_sbir.ranks(embeds.reshape(n * t, d), np.repeat(targets, t), gallery).reshape(n, t)
  result = otf_metrics.on_the_fly_metrics(ranks, len(gallery), ks=(1, 5, 10))
  curves = {k: v.tolist() for k, v in otf_metrics.on_the_fly_curves(ranks, len(gallery)).items()}
  return result, curves, ranks


class _Episodes:
  """sketch row -> {features [T, F], target, negative (another photo of the same category)}."""

  def __init__(self, data: LevelData):
    self.data = data
    self.by_label = {int(l): np.flatnonzero(data.photo_labels == l) for l in np.unique(data.photo_labels)}

  def __call__(self, i: int, rng: np.random.Generator):
    target = int(self.data.targets[i])
    same = self.by_label[int(self.data.photo_labels[target])]
    pool = same if len(same) > 1 else np.arange(len(self.data.photos))
    negative = target
    while negative == target:
      negative = int(pool[rng.integers(len(pool))])
    return {"features": self.data.features[i], "target": np.int32(target), "negative": np.int32(negative)}


def episode_iterator(data: LevelData, batch_size: int, seed: int):
  """Checkpointable grain iterator over this process's share of the sketches."""
  pi, pc = jax.process_index(), jax.process_count()
  ds = grain.MapDataset.range(len(data.targets)).shuffle(seed=seed).repeat()[pi::pc]
  ds = ds.random_map(_Episodes(data), seed=seed)
  return iter(ds.to_iter_dataset().batch(batch_size, drop_remainder=True))


# ----------------------------------------------------------------------------
# Tasks on the frozen features.


class _FeatureTask(Task):
  """Shared by the head and policy tasks: frozen galleries, B1's head as init, evaluation."""

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
    raise NotImplementedError

  def test_embeddings(self, params) -> np.ndarray:
    """[N, T, D] embeddings of every test sketch at every level."""
    if not hasattr(self, "_embed_jit"):
      self._embed_jit = jax.jit(self.embed_levels)
    return np.asarray(self._embed_jit(params, jnp.asarray(self.test_data.features)))

  def evaluate(self, params):
    return score(self.test_embeddings(params), self.test_data.targets, self.test_data.photos)[0]


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
    self.inner_tx = None
    if self.method.algorithm == "ppo":
      self.inner_tx = optim.make_optimizer(
          self.config.rl_train.optim, jax.eval_shape(self.init_params, jax.random.key(0)),
          total_steps=r.ppo_epochs * r.num_minibatches)

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
    k_roll, k_epochs = jax.random.split(rng)
    episodes, aux = self.rollout(params, batch, k_roll)
    if self.method.algorithm == "pg":
      loss, extra = self.surrogate(params, episodes)
      return loss, {**aux, **extra}
    r = self.config.rl
    new_params, extra = rl.ppo_epochs(jax.lax.stop_gradient(params), episodes, self.surrogate, self.inner_tx,
                                      epochs=r.ppo_epochs, num_minibatches=r.num_minibatches, rng=k_epochs)
    step = jax.tree.map(lambda p, q: jnp.sum(jnp.square(p - jax.lax.stop_gradient(q))), params, new_params)
    extra = {("surrogate" if k == "loss" else k): v for k, v in extra.items()}
    return 0.5 * sum(jax.tree.leaves(step)), {**aux, **extra}


def method_train_config(config: ml_collections.ConfigDict, method: Method) -> ml_collections.ConfigDict:
  """The loop's config of a row. PPO: SGD at lr 1 applies each step's PPO iteration (rl_train.optim runs inside)."""
  base = config.head_train if method.kind == "head" else config.rl_train
  c = ml_collections.ConfigDict(base.to_dict())
  if method.kind == "policy" and method.algorithm == "ppo":
    c.optim = configs.optim_config(name="sgd", lr=1.0, momentum=0.0)
  return c


# ----------------------------------------------------------------------------
# The experiment.


def validate(config: ml_collections.ConfigDict) -> None:
  unknown = [m for m in config.methods if m not in METHODS]
  if unknown or not config.methods:
    raise ValueError(f"config.methods has unknown {unknown or '(empty)'}; valid: {sorted(METHODS)}")
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
  if config.rl_train.optim.schedule != "constant" or config.rl_train.optim.warmup_steps:
    if any(METHODS[m].kind == "policy" and METHODS[m].algorithm == "ppo" for m in config.methods):
      raise ValueError("config.rl_train.optim.schedule must be 'constant' without warmup for PPO rows "
                       "(the optimizer restarts on every batch of episodes)")
  for m in config.methods:
    rl.check_reward(METHODS[m].reward)


def _stage_one(config, workdir, source, backbone, fractions):
  """B1's frozen features of both splits, its head and trainable count, cached in WORKDIR/features.npz."""
  path = os.path.join(workdir, "features.npz")
  if os.path.exists(path):
    logging.info("reusing %s", path)
    with np.load(path) as z:
      head = {k[len("head/"):]: np.asarray(z[k]) for k in z.files if k.startswith("head/")}
      return LevelData.load(z, "train"), LevelData.load(z, "test"), head, int(z["b1_trainable"])
  task, params, result = fg_sbir.train_method(config, "B1", os.path.join(workdir, "B1"), source, backbone)
  train_data = level_data(task, params, "train", fractions, max_photos=config.rl_train_photos,
                          seed=config.fg_train.seed)
  test_data = level_data(task, params, "test", fractions)
  head = {k: np.asarray(v) for k, v in train.flatten(params["head"]).items()}
  if jax.process_index() == 0:
    arrays = {**train_data.arrays("train"), **test_data.arrays("test"),
              **{f"head/{k}": v for k, v in head.items()}, "b1_trainable": np.int64(result["trainable_params"])}
    np.savez(path + ".tmp.npz", **arrays)
    os.replace(path + ".tmp.npz", path)
  return train_data, test_data, head, int(result["trainable_params"])


def head_embeddings(config, head_params, features: np.ndarray) -> np.ndarray:
  """A stage-1 model's sketch embeddings per level: its head on its frozen features."""
  model = EmbeddingHead(config.fg.embed_dim, config.fg.head_hidden)
  return np.asarray(jax.jit(model.apply)({"params": head_params}, jnp.asarray(features)))


def run_method(config, name, method_dir, train_data, test_data, head, stage_one, b1_trainable=0):
  """One row: (test embeddings per level [N, T, D], targets [N], gallery [G, D], trainable parameter count)."""
  method = METHODS[name]
  if method.kind == "base" and method.base == "B1":  # B1 itself: its head on its own features
    return head_embeddings(config, train.unflatten(head), test_data.features), test_data.targets, \
        test_data.photos, b1_trainable
  if method.kind == "base":
    source, backbone, fractions = stage_one
    task, params, result = fg_sbir.train_method(config, method.base, method_dir, source, backbone)
    data = level_data(task, params, "test", fractions)  # B2's own features and gallery
    return head_embeddings(config, params["head"], data.features), data.targets, data.photos, \
        result.get("trainable_params", 0)
  cls = HeadTask if method.kind == "head" else PolicyTask
  task = cls(config, method, train_data, test_data, head)
  tc = method_train_config(config, method)
  setup = train.build(task, tc)
  params, _ = train.fit(task, tc, method_dir, setup=setup)
  embeds = task.test_embeddings(params)
  return embeds, test_data.targets, test_data.photos, setup.num_trainable


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """`python -m sgvu.main --config=experiments/on_the_fly.py`: the table of seed 001 and the per-level curves."""
  t0 = time.perf_counter()
  backbone = fg_sbir.load_backbone(config, ["B1"])
  source = fg_sbir.make_source(config, backbone.image_size)
  fractions = level_fractions(config.levels)
  train_data, test_data, head, b1_trainable = _stage_one(config, workdir, source, backbone, fractions)
  rows, curves = [], {}
  for name in config.methods:
    method_dir = os.path.join(workdir, slug(name))
    row = fg_sbir.reuse_row(method_dir)
    if row is None:
      t = time.perf_counter()
      embeds, targets, gallery, trainable = run_method(config, name, method_dir, train_data, test_data, head,
                                                       (source, backbone, fractions), b1_trainable)
      result, method_curves, _ = score(embeds, targets, gallery)
      row = {"method": name, "split": "test", **{k: float(result[k]) for k in METRICS},
             "A@1": float(result["A@1"]), "trainable_params": int(trainable or 0),
             "seconds": round(time.perf_counter() - t, 1), "curves": method_curves}
      fg_sbir.save_row(method_dir, row)
    else:
      logging.info("%s: reusing %s/row.json", name, method_dir)
    curves[name] = row.pop("curves")
    rows.append(row)
    logging.info("%s: %s", name, " ".join(f"{k}={row[k]:.4f}" for k in METRICS))
    common.write_results(workdir, config.name, rows, levels=list(fractions), curves=curves)
  wall = time.perf_counter() - t0
  png = os.path.join(workdir, "on_the_fly_curves.png")
  if jax.process_index() == 0:
    plot_curves(curves, fractions, png, title=f"{config.name}: {len(test_data.targets)} test sketches, "
                f"gallery {len(test_data.photos)} photos")
  common.write_results(workdir, config.name, rows, levels=list(fractions), curves=curves,
                       wall_seconds=round(wall, 1))
  print(f"\n{config.name}: {config.data.dataset}, {len(test_data.targets)} test sketches x {config.levels} levels, "
        f"gallery {len(test_data.photos)} photos ({wall / 60:.1f} min)\n{common.format_table(rows, METRICS)}\n"
        f"curves: {png}\n")
  return {"rows": rows}


# ----------------------------------------------------------------------------
# Pictures.

_PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
            (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (0, 0, 0), (120, 200, 120),
            (200, 120, 200), (90, 90, 200)]


def plot_curves(curves: dict[str, dict[str, Sequence[float]]], fractions: Sequence[float], path: str, *,
                title: str = "") -> None:
  """PNG: ranking percentile and 1/rank against sketch completion, one line per method."""
  from PIL import Image, ImageDraw
  panels = [("percentile", "ranking percentile"), ("reciprocal_rank", "1 / rank")]
  w, h, left, bottom, top = 460, 330, 48, 36, 40
  legend_rows = (len(curves) + 2) // 3
  canvas = Image.new("RGB", (2 * w, h + 20 + 16 * legend_rows), "white")
  draw = ImageDraw.Draw(canvas)
  draw.text((8, 4), title, fill=(0, 0, 0))
  xs = [100.0 * f for f in fractions]
  for p, (key, label) in enumerate(panels):
    x0, y0, x1, y1 = p * w + left, top, p * w + w - 12, h - bottom
    values = [v for c in curves.values() for v in c[key]]
    lo = 0.0 if key == "reciprocal_rank" else min(values, default=0.0)
    hi = max(values, default=1.0)
    lo, hi = (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)
    sx = lambda x: x0 + (x - 0.0) / 100.0 * (x1 - x0)
    sy = lambda y: y1 - (y - lo) / (hi - lo) * (y1 - y0)
    draw.rectangle([x0, y0, x1, y1], outline=(0, 0, 0))
    for tick in (0, 25, 50, 75, 100):
      draw.line([sx(tick), y1, sx(tick), y1 + 4], fill=(0, 0, 0))
      draw.text((sx(tick) - 10, y1 + 6), f"{tick}%", fill=(0, 0, 0))
    for i in range(5):
      y = lo + i * (hi - lo) / 4
      draw.line([x0 - 4, sy(y), x0, sy(y)], fill=(0, 0, 0))
      draw.text((p * w + 4, sy(y) - 6), f"{y:.2f}", fill=(0, 0, 0))
    draw.text((x0 + 4, y0 - 14), f"{label} vs sketch completion", fill=(0, 0, 0))
    for n, c in enumerate(curves.values()):
      pts = [(sx(x), sy(y)) for x, y in zip(xs, c[key])]
      draw.line(pts, fill=_PALETTE[n % len(_PALETTE)], width=2)
  for n, name in enumerate(curves):
    x, y = 12 + (n % 3) * (2 * w // 3), h + 12 + 16 * (n // 3)
    draw.rectangle([x, y + 3, x + 18, y + 7], fill=_PALETTE[n % len(_PALETTE)])
    draw.text((x + 24, y), name, fill=(0, 0, 0))
  canvas.save(path)


def progressive_figure(strokes: Sequence[np.ndarray], embed_sketches: Callable[[np.ndarray], np.ndarray],
                       gallery_embeds: np.ndarray, gallery_images: Callable[[int], np.ndarray], path: str, *,
                       image_size: int, target: int | None = None, rows: int = 6, k: int = 5,
                       title: str = "") -> list[list[int]]:
  """Draws how the top-k changes as the sketch's strokes arrive: one row per stroke count.

  strokes: the sketch (float [n_i, 2] arrays on the 256 canvas, drawing order);
  embed_sketches: uint8 [R, S, S, 3] -> [R, D]; gallery_images(j): uint8 photo j
  (only the shown ones are loaded); target: gallery row of the true photo
  (framed green, the others red; without it every hit is framed grey).
  Returns each row's top-k gallery rows. `python -m sgvu.tools.search
  --progressive` draws the same figure from a trained workdir.
  """
  from sgvu import viz
  counts, partial, _ = viz.progressive_queries(strokes, image_size, rows)
  top, _ = metrics.topk(np.asarray(embed_sketches(partial)), gallery_embeds, k)
  hits = [[gallery_images(int(j)) for j in row] for row in top]
  correct = [[None if target is None else int(j) == target for j in row] for row in top]
  n = counts[-1]
  viz.retrieval_grid(list(partial), hits, correct, path, labels=[f"{c}/{n}" for c in counts],
                     title=title or f"top-{k} after {', '.join(map(str, counts))} of {n} strokes")
  return [[int(j) for j in row] for row in top]
