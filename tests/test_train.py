"""The training loop: sharding equivalence, exact resumption, no recompiles, NaN guard, frozen params."""

import json
import os

import chex
import jax
import numpy as np
import pytest

from sgvu import sharding as sharding_lib
from sgvu import train
from toy_task import ToyTask, toy_config


def _params_np(params):
  return jax.tree.map(np.asarray, jax.device_get(params))


def test_sharded_step_equals_single_device(tmp_path):
  assert jax.device_count() >= 8, "conftest sets 8 fake CPU devices"
  single = toy_config(num_devices=1, steps=4)
  sharded = toy_config(num_devices=8, steps=4)
  sharded.sharding.mesh = {"data": 2, "fsdp": 2, "model": 2}
  p1, _ = train.fit(ToyTask(single), single, str(tmp_path / "one"))
  p8, _ = train.fit(ToyTask(sharded), sharded, str(tmp_path / "eight"))
  chex.assert_trees_all_close(_params_np(p1), _params_np(p8), atol=1e-5, rtol=1e-5)
  # The fc1 kernel really is sharded over fsdp (embed) x model (mlp).
  assert p8["fc1"]["kernel"].sharding.spec == jax.sharding.PartitionSpec("fsdp", "model")


def test_resume_is_bitwise_equal(tmp_path):
  config = toy_config(steps=6)
  full, _ = train.fit(ToyTask(config), config, str(tmp_path / "full"))
  with pytest.raises(KeyboardInterrupt, match="stopped at step 3"):
    train.fit(ToyTask(config), config, str(tmp_path / "resumed"), stop_after=3)
  assert os.path.isdir(tmp_path / "resumed" / "checkpoints" / "3")
  resumed, _ = train.fit(ToyTask(config), config, str(tmp_path / "resumed"))
  chex.assert_trees_all_equal(_params_np(full), _params_np(resumed))


def test_no_recompilation_after_first_step(tmp_path):
  config = toy_config(steps=5)
  task = ToyTask(config)
  task.loss_fn = chex.assert_max_traces(task.loss_fn, n=1)
  train.fit(task, config, str(tmp_path))


def test_nan_loss_stops_with_step_and_keeps_good_state(tmp_path):
  config = toy_config(steps=200, checkpoint_every=1)
  config.batch_size = 64  # every batch holds the NaN row, so step 1 is already non-finite
  task = ToyTask(config, nan_at_index=5)
  with pytest.raises(train.NonFiniteLossError, match="at step 1"):
    train.fit(task, config, str(tmp_path))
  assert not os.path.exists(tmp_path / "checkpoints" / "1")


def test_frozen_params_get_no_optimizer_state_and_do_not_move(tmp_path):
  config = toy_config(steps=3)
  task = ToyTask(config, freeze_ln=True)
  setup = train.build(task, config)
  assert setup.num_frozen == 64  # LayerNorm scale + bias of width 32
  state = train.initial_state(task, setup, seed=0)
  assert "ln" not in state.params and "ln" in state.frozen
  opt_paths = ["/".join(str(getattr(k, "key", k)) for k in p)
               for p, _ in jax.tree_util.tree_flatten_with_path(state.opt_state)[0]]
  assert not any("ln" in p for p in opt_paths), opt_paths
  before = _params_np(state.frozen)
  params, _ = train.fit(task, config, str(tmp_path), setup=setup)
  chex.assert_trees_all_equal(before["ln"], _params_np(params)["ln"])


def test_metrics_jsonl_and_progress(tmp_path):
  config = toy_config(steps=4)
  train.fit(ToyTask(config), config, str(tmp_path))
  lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
  records = [json.loads(l) for l in lines]
  assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4]
  assert all(np.isfinite(r["loss"]) and r["steps_per_s"] > 0 for r in records if "loss" in r)


def test_mesh_errors_name_the_problem():
  with pytest.raises(ValueError, match="unknown axes"):
    sharding_lib.mesh_shape({"dta": 2}, 8)
  with pytest.raises(ValueError, match="needs 4 devices"):
    sharding_lib.mesh_shape({"data": 2, "model": 2}, 8)
