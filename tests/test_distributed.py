"""Two processes on 127.0.0.1 (CPU) through jax.distributed, equal to one process."""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from sgvu import train
from toy_task import ToyTask, toy_config

HERE = os.path.dirname(__file__)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_process_step_equals_single_process(tmp_path):
  port = _free_port()
  procs = []
  for pid in range(2):
    env = dict(os.environ, SGVU_DISTRIBUTED="1", SGVU_COORDINATOR=f"127.0.0.1:{port}",
               SGVU_NUM_PROCESSES="2", SGVU_PROCESS_ID=str(pid), JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=1")
    procs.append(subprocess.Popen(
        [sys.executable, os.path.join(HERE, "distributed_worker.py"), str(tmp_path / "shared_workdir"),
         str(tmp_path / "params.npz")], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
  outputs = []
  for p in procs:
    try:
      out, _ = p.communicate(timeout=240)
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      pytest.fail("distributed workers timed out")
    outputs.append(out)
  if any("cpu_collectives" in o and "not" in o.lower() and p.returncode for o, p in zip(outputs, procs)):
    pytest.skip("this JAX cannot run multi-process CPU collectives: " + outputs[0][-500:])
  for o, p in zip(outputs, procs):
    assert p.returncode == 0, o[-3000:]

  config = toy_config(num_devices=2, steps=4)
  config.checkpoint_every = 0
  single, _ = train.fit(ToyTask(config), config, str(tmp_path / "single"))
  expected = train.flatten(single)
  got = np.load(tmp_path / "params.npz")
  assert set(got.files) == set(expected)
  for k, v in expected.items():
    np.testing.assert_allclose(got[k], np.asarray(v), atol=1e-5, rtol=1e-5, err_msg=k)
