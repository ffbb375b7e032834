"""Multi-device without the devices: the real training step compiled for 8 simulated CPU devices carries the
collectives its mesh implies (benchmarks/collectives.py prints the full table; docs/performance.md has it)."""

import os
import sys

import jax
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))

import collectives  # pylint: disable=g-import-not-at-top,wrong-import-position


def test_count_collectives_counts_sync_and_async_forms_once():
  hlo = """
  %a = f32[8]{0} all-reduce(f32[8]{0} %x), replica_groups={}
  %b = (f32[8]{0}, f32[64]{0}) all-gather-start(f32[8]{0} %y), dimensions={0}
  %c = f32[64]{0} all-gather-done((f32[8]{0}, f32[64]{0}) %b)
  %d = f32[1]{0} reduce-scatter(f32[8]{0} %z), dimensions={0}
  %e = f32[8]{0} add(f32[8]{0} %a, f32[8]{0} %a)  // all-reduce mentioned in a comment is not an op
  """
  counts = collectives.count_collectives(hlo)
  assert (counts["all-reduce"], counts["all-gather"], counts["reduce-scatter"], counts["all-to-all"]) == (1, 1, 1, 0)


@pytest.mark.parametrize("mesh", ["data=8", "fsdp=8"])
def test_step_compiles_with_the_collectives_of_its_mesh(mesh):
  assert jax.device_count() >= 8, "conftest sets 8 fake CPU devices"
  counts = collectives.count_collectives(collectives.compiled_step_hlo(collectives.MESHES[mesh], 8))
  if mesh == "data=8":  # replicated parameters: gradients summed across the batch shards, nothing gathered
    assert counts["all-reduce"] >= 1 and counts["all-gather"] == 0
  else:  # parameters split along their width: gathered before use, gradients reduced back to shards
    assert counts["all-gather"] >= 1
    assert counts["reduce-scatter"] + counts["all-reduce"] + counts["all-to-all"] >= 1
