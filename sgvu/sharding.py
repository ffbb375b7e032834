"""Device mesh, logical-axis rules and multi-host start-up.

Models name their axes logically ('batch', 'embed', 'mlp', 'heads', ...);
`config.sharding.rules` maps those names onto the mesh axes ('data', 'fsdp',
'model'). The same model code then runs data-parallel on a laptop CPU,
FSDP on a TPU pod slice, or tensor-parallel for L/14, by config alone.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from absl import logging
import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

MESH_AXES = ("data", "fsdp", "model")

# Logical name -> mesh axis (or axes, or None = replicated). Batch is split over
# every data-like axis; parameters are sharded by fsdp along their model width
# and by `model` along MLP/heads/vocab (tensor parallelism).
DEFAULT_RULES: tuple[tuple[str, Any], ...] = (
    ("batch", ("data", "fsdp")),
    ("embed", "fsdp"),
    ("mlp", "model"),
    ("heads", "model"),
    ("kv", None),
    ("vocab", "model"),
    ("joint", None),
    ("length", None),
    ("patch", None),
)


def rules_from_config(rules: Sequence[Sequence[Any]] | None) -> tuple[tuple[str, Any], ...]:
  if not rules:
    return DEFAULT_RULES
  out = []
  for rule in rules:
    if len(rule) != 2:
      raise ValueError(f"config.sharding.rules: each rule is (logical_name, mesh_axis), got {rule!r}")
    name, axis = rule
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    for a in axes:
      if a is not None and a not in MESH_AXES:
        raise ValueError(f"config.sharding.rules: {name!r} maps to unknown mesh axis {a!r}; "
                         f"valid axes: {MESH_AXES}")
    out.append((name, tuple(axis) if isinstance(axis, list) else axis))
  return tuple(out)


def mesh_shape(spec: Mapping[str, int], num_devices: int) -> tuple[int, ...]:
  """Resolves {'data': -1, 'fsdp': 1, 'model': 1} against the device count."""
  unknown = set(spec) - set(MESH_AXES)
  if unknown:
    raise ValueError(f"config.sharding.mesh: unknown axes {sorted(unknown)}; valid: {MESH_AXES}")
  sizes = [int(spec.get(a, 1)) for a in MESH_AXES]
  if sizes.count(-1) > 1:
    raise ValueError(f"config.sharding.mesh: at most one axis may be -1, got {dict(spec)}")
  known = int(np.prod([s for s in sizes if s != -1]))
  if any(s == 0 or s < -1 for s in sizes):
    raise ValueError(f"config.sharding.mesh: sizes must be positive or -1, got {dict(spec)}")
  if -1 in sizes:
    if num_devices % known:
      raise ValueError(f"config.sharding.mesh {dict(spec)} does not divide {num_devices} devices")
    sizes[sizes.index(-1)] = num_devices // known
  if int(np.prod(sizes)) != num_devices:
    raise ValueError(f"config.sharding.mesh {dict(spec)} needs {int(np.prod(sizes))} devices, "
                     f"but {num_devices} are available")
  return tuple(sizes)


def make_mesh(spec: Mapping[str, int], devices: Sequence[jax.Device] | None = None,
              num_devices: int = 0) -> Mesh:
  """A ('data', 'fsdp', 'model') mesh; num_devices > 0 uses only the first ones."""
  devices = list(devices if devices is not None else jax.devices())
  if num_devices:
    if num_devices > len(devices):
      raise ValueError(f"config.sharding.num_devices={num_devices} but only {len(devices)} devices exist")
    devices = devices[:num_devices]
  shape = mesh_shape(spec, len(devices))
  try:
    device_array = jax.experimental.mesh_utils.create_device_mesh(shape, devices)
  except Exception:  # Non-TPU topologies (CPU, fake devices): plain reshape.
    device_array = np.asarray(devices).reshape(shape)
  return Mesh(device_array, MESH_AXES)


def data_sharding(mesh: Mesh, rules) -> NamedSharding:
  """Sharding of a batch: leading axis over the 'batch' rule's mesh axes."""
  return NamedSharding(mesh, nn.logical_to_mesh_axes(("batch",), rules))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def tree_shardings(abstract_boxed, mesh: Mesh, rules):
  """NamedShardings for a (possibly nn.LogicallyPartitioned-boxed) abstract tree.

  Leaves without logical names are replicated.
  """
  specs = nn.get_partition_spec(abstract_boxed)
  return nn.logical_to_mesh_sharding(specs, mesh, rules)


def batch_size_per_process(global_batch: int) -> int:
  if global_batch % jax.process_count():
    raise ValueError(f"batch size {global_batch} is not divisible by {jax.process_count()} processes")
  return global_batch // jax.process_count()


def to_global(batch: Mapping[str, np.ndarray], sharding: NamedSharding):
  """Turns this process's numpy batch into global jax.Arrays."""
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in batch.items()}


def maybe_initialize_distributed() -> None:
  """Starts jax.distributed when a launcher asked for it (never at import).

  Launchers set SGVU_DISTRIBUTED=1 plus either the standard cluster
  environment (Cloud TPU, SLURM: JAX auto-detects it) or explicit
  SGVU_COORDINATOR / SGVU_NUM_PROCESSES / SGVU_PROCESS_ID.
  """
  if os.environ.get("SGVU_DISTRIBUTED", "0") != "1":
    return
  # CPU-only hosts (and tests) need an explicit collectives backend.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  coordinator = os.environ.get("SGVU_COORDINATOR")
  if coordinator:
    missing = [v for v in ("SGVU_NUM_PROCESSES", "SGVU_PROCESS_ID") if v not in os.environ]
    if missing:
      raise RuntimeError(f"SGVU_COORDINATOR is set but {missing} are not")
    jax.distributed.initialize(coordinator_address=coordinator,
                               num_processes=int(os.environ["SGVU_NUM_PROCESSES"]),
                               process_id=int(os.environ["SGVU_PROCESS_ID"]))
  else:
    jax.distributed.initialize()  # Auto-detects Cloud TPU and SLURM.
  logging.info("jax.distributed: process %d of %d, %d local / %d global devices",
               jax.process_index(), jax.process_count(), jax.local_device_count(), jax.device_count())
