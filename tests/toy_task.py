"""A tiny regression task used to test the training loop (single, sharded, multi-process)."""

import flax.linen as nn
import grain
import jax
import jax.numpy as jnp
import numpy as np

from experiments import blocks
from sgvu.tasks.base import Task


class MLP(nn.Module):
  @nn.compact
  def __call__(self, x):
    dense = lambda f, names, name: nn.Dense(
        f, name=name, kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), names),
        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, names[1:]))
    x = nn.with_logical_constraint(x, ("batch", "embed"))
    h = nn.gelu(dense(32, ("embed", "mlp"), "fc1")(x))
    h = nn.LayerNorm(name="ln")(h)
    return dense(1, ("mlp", None), "fc2")(h)[:, 0]


class ToyTask(Task):
  """Noisy regression on fixed random data; 'ln' can be frozen."""

  def __init__(self, config, nan_at_index=None, freeze_ln=False):
    super().__init__(config)
    self.model = MLP()
    rng = np.random.default_rng(0)
    self.x = rng.normal(size=(64, 16)).astype(np.float32)
    self.y = (self.x @ rng.normal(size=16)).astype(np.float32)
    if nan_at_index is not None:
      self.x[nan_at_index] = np.nan
    self.freeze_ln = freeze_ln

  def init_params(self, rng):
    return self.model.init(rng, jnp.zeros((1, 16)))["params"]

  def is_trainable(self, path):
    return not (self.freeze_ln and path.startswith("ln/"))

  def loss_fn(self, params, batch, rng):
    pred = self.model.apply({"params": params}, batch["x"])
    noise = 0.01 * jax.random.normal(rng, pred.shape)  # uses the step rng: resumption must replay it
    return jnp.mean((pred + noise - batch["y"]) ** 2), {"mean_pred": pred.mean()}

  def train_iterator(self, batch_size, seed):
    # Every process reads the same global batches and keeps its own slice, so
    # the global batch does not depend on the number of processes.
    n, p = jax.process_count(), jax.process_index()
    ds = grain.MapDataset.range(len(self.x)).shuffle(seed=seed).repeat()
    ds = ds.map(lambda i: {"x": self.x[i], "y": self.y[i]}).batch(batch_size * n)
    ds = ds.map(lambda b: {k: v[p * batch_size:(p + 1) * batch_size] for k, v in b.items()})
    return iter(ds.to_iter_dataset())


def toy_config(num_devices=1, steps=6, **kw):
  c = blocks.train_config()
  c.batch_size = 8
  c.num_steps = steps
  c.log_every = 1
  c.checkpoint_every = 2
  c.sharding.num_devices = num_devices
  c.optim.lr = 1e-2
  c.update(kw)
  return c


# Toy on-the-fly data (tests of the head / policy tasks and of PPO in the loop).
LEVELS, DIM, PHOTOS = 5, 8, 24


def toy_level_data(seed, sketches):
  """Sketch features = the true photo's embedding + noise that shrinks as the drawing completes."""
  from sgvu.tasks.on_the_fly_data import LevelData
  rng = np.random.default_rng(seed)
  photos = rng.normal(size=(PHOTOS, DIM)).astype(np.float32)
  photos /= np.linalg.norm(photos, axis=1, keepdims=True)
  targets = rng.integers(PHOTOS, size=sketches).astype(np.int32)
  noise = np.linspace(1.2, 0.2, LEVELS)[None, :, None]
  features = photos[targets][:, None] + noise * rng.normal(size=(sketches, LEVELS, DIM)) / np.sqrt(DIM)
  return LevelData(features.astype(np.float32), targets, photos, np.zeros(PHOTOS, np.int32))
