"""A real Ctrl-C: the run checkpoints at the next step and the same command finishes it."""

import json
import os
import signal
import subprocess
import sys
import time

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
