"""Launchers check their required variables and build the documented command."""

import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(__file__))


def _run(script, **env):
  base = {k: v for k, v in os.environ.items() if k not in ("TPU_NAME", "ZONE", "PROJECT", "CONFIG", "WORKDIR",
                                                        "SLURM_JOB_ID")}
  return subprocess.run(["bash", os.path.join(ROOT, "launch", script)], env={**base, **env},
                        capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("script,required", [
    ("tpu_vm.sh", ["TPU_NAME", "ZONE", "PROJECT", "CONFIG", "WORKDIR"]),
    ("slurm_gpu.sbatch", ["CONFIG", "WORKDIR"]),
])
def test_missing_variables_are_named(script, required):
  r = _run(script)
  assert r.returncode == 2
  for v in required:
    assert v in r.stderr


def test_tpu_dry_run_runs_main_on_all_workers():
  r = _run("tpu_vm.sh", TPU_NAME="t", ZONE="z", PROJECT="p", CONFIG="experiments/zs_sbir.py",
           WORKDIR="gs://b/run", DRY_RUN="1")
  assert r.returncode == 0, r.stderr
  assert "--worker=all" in r.stdout and "SGVU_DISTRIBUTED=1" in r.stdout
  assert "sgvu.main" in r.stdout and "gs://b/run" in r.stdout


def test_tpu_rejects_local_workdir():
  r = _run("tpu_vm.sh", TPU_NAME="t", ZONE="z", PROJECT="p", CONFIG="c.py", WORKDIR="/tmp/x", DRY_RUN="1")
  assert r.returncode == 2 and "gs://" in r.stderr


def test_slurm_outside_job_and_dry_run():
  r = _run("slurm_gpu.sbatch", CONFIG="experiments/zs_sbir.py", WORKDIR="/shared/r")
  assert r.returncode == 2 and "sbatch" in r.stderr
  r = _run("slurm_gpu.sbatch", CONFIG="experiments/zs_sbir.py", WORKDIR="/shared/r", DRY_RUN="1",
           EXTRA="--config.batch_size=64")
  assert r.returncode == 0, r.stderr
  assert "srun" in r.stdout and "SGVU_DISTRIBUTED=1" in r.stdout and "--config.batch_size=64" in r.stdout
