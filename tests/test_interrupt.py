"""Stop requests (sgvu.interrupt): a real Ctrl-C checkpoints at the next step and the same command finishes it;
the handlers nest, a second signal aborts, and a stop during evaluation is not swallowed."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import jax
import numpy as np
import pytest

from sgvu import interrupt, train
from toy_task import ToyTask, toy_config

ROOT = os.path.dirname(os.path.dirname(__file__))


def test_sigint_checkpoints_and_same_command_resumes(tmp_path):
  env = dict(os.environ, SGVU_CACHE=str(tmp_path / "cache"), JAX_PLATFORMS="cpu")
  cmd = [sys.executable, "-m", "sgvu.main", "--config=experiments/clip_pretrain.py:small",
         f"--workdir={tmp_path / 'wd'}", "--config.clip_train.num_steps=150", "--config.clip_train.log_every=1",
         "--config.clip_train.checkpoint_every=1000"]
  proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  metrics = next((tmp_path / "cache").glob("clip_synth/*/train"), None)
  deadline = time.time() + 240
  while time.time() < deadline:  # wait until training is under way
    metrics = next((tmp_path / "cache").glob("clip_synth/*/train/metrics.jsonl"), None)
    if metrics is not None and len(metrics.read_text().splitlines()) >= 3:
      break
    time.sleep(0.5)
  assert metrics is not None, "training never started"
  proc.send_signal(signal.SIGINT)
  out, _ = proc.communicate(timeout=120)
  assert proc.returncode != 0
  assert "run the same command again to resume" in out, out[-2000:]
  steps = [int(p.name) for p in (metrics.parent / "checkpoints").iterdir() if p.name.isdigit()]
  assert len(steps) == 1 and 3 <= steps[0] < 150, steps  # saved where it stopped, not at a checkpoint_every

  done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  logged = [json.loads(l)["step"] for l in metrics.read_text().splitlines() if '"loss"' in l]
  assert logged[-1] == 150 and min(s for s in logged if s > steps[0]) == steps[0] + 1


def _signal_self(signum=signal.SIGINT):
  os.kill(os.getpid(), signum)
  for _ in range(100):  # the Python-level handler runs at the next bytecode boundary
    time.sleep(0.001)


def test_handling_is_reentrant_and_restores_the_handlers():
  interrupt.reset()
  before = signal.getsignal(signal.SIGINT)
  with interrupt.handling():
    installed = signal.getsignal(signal.SIGINT)
    assert installed is not before
    with interrupt.handling():  # nested: no-op
      assert signal.getsignal(signal.SIGINT) is installed
      _signal_self(signal.SIGTERM)
    assert signal.getsignal(signal.SIGINT) is installed  # the inner exit keeps them
    assert interrupt.requested()
    with pytest.raises(interrupt.Stopped, match="stopped between rows; run the same command again to resume"):
      interrupt.check("between rows")
    assert issubclass(interrupt.Stopped, KeyboardInterrupt)
  assert signal.getsignal(signal.SIGINT) is before
  assert interrupt.requested()  # stays visible to whoever catches Stopped ...
  with interrupt.handling():
    assert not interrupt.requested()  # ... and a new outermost run starts afresh
  interrupt.reset()


def test_second_signal_aborts_at_once():
  interrupt.reset()
  with interrupt.handling():
    _signal_self()
    with pytest.raises(KeyboardInterrupt) as err:
      _signal_self()
    assert not isinstance(err.value, interrupt.Stopped)
  interrupt.reset()


def test_off_the_main_thread_it_does_nothing():
  before = signal.getsignal(signal.SIGINT)
  seen = []

  def worker():
    with interrupt.handling():
      seen.append(signal.getsignal(signal.SIGINT))
      interrupt.check("in a thread")  # no request: no-op

  t = threading.Thread(target=worker)
  t.start()
  t.join()
  assert seen == [before]


class _SignalDuringEval(ToyTask):
  """Sends itself SIGINT from inside evaluate() at the given steps (periodic or final evaluation)."""

  def __init__(self, config, at_steps):
    super().__init__(config)
    self.at_steps, self.calls = set(at_steps), 0

  def evaluate(self, params):
    self.calls += 1
    if self.calls in self.at_steps:
      _signal_self()
    return {"calls": float(self.calls)}


def test_fit_honours_a_stop_during_evaluation_and_resumes(tmp_path):
  """A Ctrl-C during a periodic evaluation stops at that step boundary with a checkpoint; one during
  the final evaluation is raised after it (not swallowed); the same call then finishes."""
  interrupt.reset()
  config = toy_config(steps=4, checkpoint_every=0, eval_every=2)
  full, _ = train.fit(ToyTask(config), config, str(tmp_path / "full"))

  task = _SignalDuringEval(config, at_steps={1})  # the periodic evaluation at step 2
  with pytest.raises(interrupt.Stopped, match="stopped at step 2; run the same command again to resume"):
    train.fit(task, config, str(tmp_path / "run"))
  assert os.listdir(tmp_path / "run" / "checkpoints") == ["2"]
  task = _SignalDuringEval(config, at_steps={1})  # now the final evaluation (the run resumes at 2)
  with pytest.raises(interrupt.Stopped, match="after the final evaluation at step 4"):
    train.fit(task, config, str(tmp_path / "run"))
  params, evals = train.fit(_SignalDuringEval(config, at_steps=()), config, str(tmp_path / "run"))
  assert [e["step"] for e in evals] == [4]  # restored at 4: only the final evaluation runs
  for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert not interrupt.requested()
