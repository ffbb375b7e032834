"""The task contract beyond one gradient step of a loss: model state beside params (BatchNorm
statistics, updated or frozen, checkpointed, sharded), one compiled step for every seed, and padded
variable-size targets with masks through the sharded loop."""

import flax.linen as nn
import grain
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sgvu import interrupt, sharding, train
from sgvu.data import padding
from sgvu.tasks.base import Task
from toy_task import ToyTask, toy_config


def _np(tree):
  return jax.tree.map(np.asarray, jax.device_get(tree))


def _assert_equal(a, b):
  jax.tree.map(np.testing.assert_array_equal, _np(a), _np(b))


def _assert_close(a, b, tol=1e-5):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=tol, rtol=tol), _np(a), _np(b))


def _dense(features, names, name, use_bias=True):
  return nn.Dense(features, name=name, use_bias=use_bias,
                  kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), names),
                  bias_init=nn.with_logical_partitioning(nn.initializers.zeros, names[1:]))


# --- model state: BatchNorm statistics -------------------------------------------------------------


class BNNet(nn.Module):
  """Dense -> BatchNorm -> Dense, plus a hand-made statistic sharded over 'mlp' (a logical axis)."""

  @nn.compact
  def __call__(self, x, train: bool):
    x = nn.with_logical_constraint(x, ("batch", "embed"))
    # No bias before BatchNorm: its gradient is 0 up to rounding, which Adam would amplify into noise.
    h = _dense(32, ("embed", "mlp"), "fc1", use_bias=False)(x)
    h = nn.BatchNorm(use_running_average=not train, momentum=0.8, name="bn")(h)
    ema = self.variable("batch_stats", "hidden_ema",
                        nn.with_logical_partitioning(lambda: jnp.zeros((32,), jnp.float32), ("mlp",)))
    if train and not self.is_initializing():
      ema.value = 0.8 * ema.value + 0.2 * jnp.mean(h, axis=0)
    return _dense(1, ("mlp", None), "fc2")(nn.gelu(h))[:, 0]


class BNTask(Task):
  """ToyTask's regression with a BatchNorm model: model state through init_variables/loss_with_state."""

  def __init__(self, config):
    super().__init__(config)
    self.toy = ToyTask(config)
    self.model = BNNet()

  def init_variables(self, rng):
    return self.model.init(rng, jnp.zeros((1, 16)), train=False)

  def loss_with_state(self, params, model_state, batch, rng, *, update_state):
    variables = {"params": params, **model_state}
    if update_state:
      pred, model_state = self.model.apply(variables, batch["x"], train=True, mutable=["batch_stats"])
    else:  # frozen statistics: normalise with the stored ones (a detector's FrozenBatchNorm)
      pred = self.model.apply(variables, batch["x"], train=False)
    noise = 0.01 * jax.random.normal(rng, pred.shape)
    return jnp.mean((pred + noise - batch["y"]) ** 2), {}, model_state

  def train_iterator(self, batch_size, seed):
    return self.toy.train_iterator(batch_size, seed)

  def evaluate_with_state(self, params, model_state):
    pred = self.model.apply({"params": params, **model_state}, self.toy.x, train=False)
    return {"mse": float(jnp.mean((pred - self.toy.y) ** 2))}


def test_init_params_still_works_and_model_state_is_separate():
  task = BNTask(toy_config())
  params = jax.eval_shape(task.init_params, jax.random.key(0))  # the default: init_variables()['params']
  assert set(params) == {"fc1", "bn", "fc2"}
  setup = train.build(task, toy_config())
  assert set(setup.abstract_state.model_state) == {"batch_stats"}
  assert set(setup.abstract_state.model_state["batch_stats"]["bn"]) == {"mean", "var"}
  assert "batch_stats" not in setup.abstract_state.params
  with pytest.raises(NotImplementedError, match="init_params or init_variables"):
    type("Bare", (Task,), {"train_iterator": lambda *a: None})(None).init_variables(jax.random.key(0))


@pytest.mark.parametrize("switch", ["update", "config", "task"])
def test_model_state_updates_or_stays_bitwise_fixed(tmp_path, switch):
  """Frozen by the train config's freeze_model_state or by the task's attribute (config None: task decides)."""
  freeze = switch != "update"
  config = toy_config(steps=3, freeze_model_state=(switch == "config") if switch != "task" else None)
  task = BNTask(config)
  task.freeze_model_state = switch == "task"
  setup = train.build(task, config)
  init = _np(train.initial_state(task, setup, config.seed))
  state, evals = train.fit(task, config, str(tmp_path), setup=setup, return_state=True)
  stats, init_stats = _np(state.model_state["batch_stats"]), init.model_state["batch_stats"]
  assert np.isfinite(evals[-1]["mse"])
  assert np.any(_np(state.params)["fc1"]["kernel"] != init.params["fc1"]["kernel"])  # params train either way
  if freeze:
    _assert_equal(stats, init_stats)
  else:
    for key in ("mean", "var"):
      assert np.max(np.abs(stats["bn"][key] - init_stats["bn"][key])) > 1e-3, key
    assert np.max(np.abs(stats["hidden_ema"])) > 1e-3
  assert set(train.variables(state)) == {"params", "batch_stats"}


def test_model_state_resumes_bitwise_and_8_devices_equal_1(tmp_path):
  config = toy_config(steps=4)
  task = BNTask(config)
  setup = train.build(task, config)
  full, _ = train.fit(task, config, str(tmp_path / "full"), setup=setup, return_state=True)
  with pytest.raises(interrupt.Stopped, match="stopped at step 2"):
    train.fit(task, config, str(tmp_path / "resumed"), setup=setup, stop_after=2)
  resumed, _ = train.fit(task, config, str(tmp_path / "resumed"), setup=setup, return_state=True)
  _assert_equal(train.variables(full), train.variables(resumed))
  _assert_equal(full.opt_state, resumed.opt_state)

  config8 = toy_config(num_devices=8, steps=4)
  config8.sharding.mesh = {"data": 2, "fsdp": 2, "model": 2}
  eight, _ = train.fit(BNTask(config8), config8, str(tmp_path / "eight"), return_state=True)
  _assert_close(train.variables(full), train.variables(eight))
  # Model state is sharded by its logical axes like params ('mlp' -> model), replicated without.
  assert eight.model_state["batch_stats"]["hidden_ema"].sharding.spec == jax.sharding.PartitionSpec("model")
  assert eight.model_state["batch_stats"]["bn"]["mean"].sharding.is_fully_replicated


# --- one compiled step for every seed --------------------------------------------------------------


def test_the_step_is_the_same_program_for_every_seed():
  texts, rngs = [], []
  for seed in (0, 1):
    config = toy_config(seed=seed)
    task = ToyTask(config)
    setup = train.build(task, config)
    abstract = train.ckpt_lib.abstract_with_shardings(setup.abstract_state, setup.state_shardings)
    batch = {"x": jax.ShapeDtypeStruct((8, 16), jnp.float32, sharding=setup.batch_sharding),
             "y": jax.ShapeDtypeStruct((8,), jnp.float32, sharding=setup.batch_sharding)}
    texts.append(setup.step.lower(abstract, batch).as_text())
    rngs.append(np.asarray(train.initial_state(task, setup, seed).rng))
  assert texts[0] == texts[1]
  # The seed lives in the state instead: step t draws from fold_in(key(seed + 1), t).
  np.testing.assert_array_equal(rngs[1], jax.random.key_data(jax.random.key(2)))
  assert not np.array_equal(rngs[0], rngs[1])


# --- padded variable-size targets ------------------------------------------------------------------


def test_pad_targets_shapes_mask_and_errors():
  boxes = [np.ones((2, 4)), np.zeros((0, 4)), 2 * np.ones((3, 4))]
  padded, mask = padding.pad_targets(boxes, 4, fill=-1.0)
  assert padded.shape == (3, 4, 4) and mask.shape == (3, 4) and mask.dtype == bool
  np.testing.assert_array_equal(mask.sum(1), [2, 0, 3])
  np.testing.assert_array_equal(padded[0, 2:], -1.0)
  np.testing.assert_array_equal(padded[2, :3], 2.0)
  with pytest.raises(ValueError, match=r"item 2 has 3 entries, more than max_len=2"):
    padding.pad_targets(boxes, 2)
  with pytest.raises(ValueError, match=r"item 1 has shape \(1, 5\)"):
    padding.pad_targets([np.ones((1, 4)), np.ones((1, 5))], 3)
  np.testing.assert_allclose(padding.masked_mean(np.array([[1.0, np.nan], [3.0, 5.0]]),
                                                 np.array([[True, False], [True, True]])), 3.0)


NUM_IMAGES = 64


def _boxes(i):
  """Image i's ground truth: i % 4 boxes (0 to 3), fixed random coordinates."""
  return np.random.default_rng(100 + i).uniform(size=(i % 4, 4)).astype(np.float32)


class BoxNet(nn.Module):
  @nn.compact
  def __call__(self, x):
    x = nn.with_logical_constraint(x, ("batch", "embed"))
    return _dense(4, ("mlp", None), "out")(nn.gelu(_dense(32, ("embed", "mlp"), "hidden")(x)))


class BoxTask(Task):
  """Regress every image's boxes from its features: targets padded to max_len with a mask."""

  def __init__(self, config, max_len):
    super().__init__(config)
    self.max_len, self.model = max_len, BoxNet()
    self.x = np.random.default_rng(0).normal(size=(NUM_IMAGES, 16)).astype(np.float32)

  def init_params(self, rng):
    return self.model.init(rng, jnp.zeros((1, 16)))["params"]

  def loss_fn(self, params, batch, rng):
    del rng
    pred = self.model.apply({"params": params}, batch["x"])  # [B, 4]
    boxes = nn.with_logical_constraint(batch["boxes"], ("batch", None, None))  # [B, M, 4]
    err = jnp.sum(jnp.square(pred[:, None, :] - boxes), axis=-1)  # [B, M]
    return padding.masked_mean(err, batch["mask"], jnp), {"boxes": jnp.sum(batch["mask"].astype(jnp.float32))}

  def record(self, i):
    boxes, mask = padding.pad_to(_boxes(i), self.max_len, name=f"image {i}")
    return {"x": self.x[i], "boxes": boxes, "mask": mask}

  def train_iterator(self, batch_size, seed):
    ds = grain.MapDataset.range(NUM_IMAGES).shuffle(seed=seed).repeat().map(self.record).batch(batch_size)
    return iter(ds.to_iter_dataset())


def test_padded_boxes_train_sharded_and_the_loss_ignores_the_padding_length(tmp_path):
  losses = []
  for max_len in (3, 9):
    config = toy_config(steps=1)
    task = BoxTask(config, max_len)
    setup = train.build(task, config)
    params = train.initial_state(task, setup, 0).params
    batch = next(task.train_iterator(16, 0))
    assert batch["boxes"].shape == (16, max_len, 4) and batch["mask"].shape == (16, max_len)
    losses.append(float(jax.jit(task.loss_fn)(params, batch, jax.random.key(0))[0]))
  np.testing.assert_allclose(losses[0], losses[1], rtol=1e-6)

  one = toy_config(steps=4)
  p1, _ = train.fit(BoxTask(one, 3), one, str(tmp_path / "one"))
  eight = toy_config(num_devices=8, steps=4)
  eight.sharding.mesh = {"data": 4, "fsdp": 1, "model": 2}
  task8 = BoxTask(eight, 9)
  setup8 = train.build(task8, eight)
  b = sharding.to_global(next(task8.train_iterator(8, 0)), setup8.batch_sharding)
  assert b["boxes"].sharding.spec[0] == ("data", "fsdp") and len(b["boxes"].addressable_shards) == 8
  p8, _ = train.fit(task8, eight, str(tmp_path / "eight"), setup=setup8)
  _assert_close(p1, p8)
  with pytest.raises(ValueError, match="image 3 has 3 entries, more than max_len=2"):
    BoxTask(one, 2).record(3)
