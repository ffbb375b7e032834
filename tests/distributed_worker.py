"""One process of the 2-process CPU test (tests/test_distributed.py).

Started with SGVU_DISTRIBUTED=1 and SGVU_COORDINATOR / SGVU_NUM_PROCESSES /
SGVU_PROCESS_ID, exactly as a launcher would; trains the toy task over a mesh
spanning both processes and saves the final params from process 0.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from sgvu import sharding, train  # noqa: E402
from toy_task import ToyTask, toy_config  # noqa: E402


def main(workdir: str, out: str) -> None:
  sharding.maybe_initialize_distributed()
  assert jax.process_count() == 2, jax.process_count()
  config = toy_config(num_devices=0, steps=4)
  config.checkpoint_every = 0
  params, _ = train.fit(ToyTask(config), config, workdir)
  gathered = jax.experimental.multihost_utils.process_allgather(params, tiled=True)
  if jax.process_index() == 0:
    flat = train.flatten(jax.tree.map(np.asarray, gathered))
    np.savez(out, **flat)
  print(f"process {jax.process_index()}: done", flush=True)


if __name__ == "__main__":
  main(sys.argv[1], sys.argv[2])
