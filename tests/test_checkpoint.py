"""Corrupt checkpoints: restore falls back to the newest readable step, or starts the row over,
names what it skipped, and the run ends bitwise where an uninterrupted one does."""

import glob
import logging
import os

import chex
import jax
import numpy as np
import pytest

from sgvu import interrupt, train
from toy_task import ToyTask, toy_config


def _np(params):
  return jax.tree.map(np.asarray, jax.device_get(params))


def _truncate_state_files(step_dir):
  """Halves every file of the step's train state (orbax: state/_METADATA, manifest.ocdbt, d/<hash>, ...)."""
  files = [f for f in glob.glob(os.path.join(step_dir, "state", "**"), recursive=True) if os.path.isfile(f)]
  assert any("/d/" in f for f in files), files  # the OCDBT data files are among them
  for f in files:
    with open(f, "r+b") as fh:
      fh.truncate(os.path.getsize(f) // 2)


def _empty_iterator_json(step_dir):
  (path,) = glob.glob(os.path.join(step_dir, "data", "process_*.json"))  # grain's iterator state
  open(path, "w").close()


@pytest.fixture(scope="module")
def toy():
  config = toy_config(steps=6)  # checkpoints every 2 steps, keeps 2
  task = ToyTask(config)
  setup = train.build(task, config)  # one compiled step for every run below
  return config, task, setup


@pytest.fixture(scope="module")
def uninterrupted(toy, tmp_path_factory):
  config, task, setup = toy
  params, _ = train.fit(task, config, str(tmp_path_factory.mktemp("full")), setup=setup)
  return _np(params)


def _interrupted_at_4(toy, workdir):
  config, task, setup = toy
  with pytest.raises(interrupt.Stopped, match="stopped at step 4"):
    train.fit(task, config, str(workdir), setup=setup, stop_after=4)
  assert sorted(os.listdir(workdir / "checkpoints")) == ["2", "4"]


@pytest.mark.parametrize("corrupt", [_truncate_state_files, _empty_iterator_json])
def test_unreadable_newest_step_falls_back_to_the_previous_one(toy, uninterrupted, tmp_path, caplog, corrupt):
  config, task, setup = toy
  _interrupted_at_4(toy, tmp_path)
  corrupt(str(tmp_path / "checkpoints" / "4"))
  with caplog.at_level(logging.WARNING):
    params, _ = train.fit(task, config, str(tmp_path), setup=setup)
  chex.assert_trees_all_equal(uninterrupted, _np(params))
  warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
  skipped = [w for w in warnings if "cannot restore" in w]
  assert len(skipped) == 1 and str(tmp_path / "checkpoints" / "4") in skipped[0], warnings
  assert "\n" not in skipped[0]  # one line, not a traceback
  assert any("resumed from step 2" in w for w in warnings), warnings
  # The bad step was moved aside (and step 4 was saved again on the way to 6).
  assert os.path.isdir(tmp_path / "checkpoints.unreadable" / "4")
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["4", "6"]


def test_no_readable_step_starts_the_row_over(toy, uninterrupted, tmp_path, caplog):
  config, task, setup = toy
  _interrupted_at_4(toy, tmp_path)
  _truncate_state_files(str(tmp_path / "checkpoints" / "4"))
  _empty_iterator_json(str(tmp_path / "checkpoints" / "2"))
  with caplog.at_level(logging.WARNING):
    params, _ = train.fit(task, config, str(tmp_path), setup=setup)
  chex.assert_trees_all_equal(uninterrupted, _np(params))
  warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
  assert any("no readable checkpoint" in w and "[4, 2]" in w and "starting over" in w for w in warnings), warnings
  assert sorted(os.listdir(tmp_path / "checkpoints.unreadable")) == ["2", "4"]
