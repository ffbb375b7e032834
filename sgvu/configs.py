"""Validation helpers for experiment configs (JAX-free at import).

The config blocks themselves live in experiments/blocks.py. `optim_config`
and `train_config` below are kept only because sgvu.tasks still builds
configs with them (sgvu cannot import experiments/); keep them identical to
experiments.blocks' (tests/test_configs.py checks) until they go.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import ml_collections


def optim_config(**overrides) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.name = "adam"
  c.lr = 1e-3
  c.schedule = "constant"
  c.warmup_steps = 0
  c.weight_decay = 0.0
  c.b1 = 0.9
  c.b2 = 0.999
  c.momentum = 0.9
  c.grad_clip_norm = 0.0
  c.param_lrs = ()  # ((regex, lr), ...)
  c.update(overrides)
  return c


def train_config() -> ml_collections.ConfigDict:
  """Keys the training loop reads (sgvu.train.fit)."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.batch_size = 32
  c.num_steps = 100
  c.log_every = 50
  c.checkpoint_every = 500
  c.keep_checkpoints = 2
  c.eval_every = 0
  c.optim = optim_config()
  c.sharding = ml_collections.ConfigDict()
  # Mesh axis sizes; -1 takes the remaining devices. data x fsdp x model = devices.
  c.sharding.mesh = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "model": 1})
  c.sharding.num_devices = 0  # 0 = all devices; >0 = the first N (tests, debugging)
  c.sharding.rules = ()  # ((logical_name, mesh_axis), ...); empty = sharding.DEFAULT_RULES
  return c


def check_choice(config: ml_collections.ConfigDict, key: str, choices: Iterable[str]) -> None:
  """Raises naming `key` and the valid choices if config[key] is not one of them."""
  value = _get(config, key)
  choices = sorted(choices)
  if value not in choices:
    raise ValueError(f"config.{key}={value!r} is not valid; choose one of {choices}")


def check_positive(config: ml_collections.ConfigDict, *keys: str, allow_zero: bool = False) -> None:
  for key in keys:
    value = _get(config, key)
    if not isinstance(value, (int, float)) or value < 0 or (value == 0 and not allow_zero):
      raise ValueError(f"config.{key}={value!r} must be {'>= 0' if allow_zero else '> 0'}")


def _get(config: Any, dotted: str) -> Any:
  node = config
  for part in dotted.split("."):
    if not isinstance(node, (Mapping, ml_collections.ConfigDict)) or part not in node:
      raise KeyError(f"config has no key {dotted!r}")
    node = node[part]
  return node


def validate_train(config: ml_collections.ConfigDict) -> None:
  """Checks the training-loop keys before any compute."""
  from sgvu import optim, sharding  # local: keep config files importable without JAX start-up
  check_choice(config, "optim.name", optim.OPTIMIZERS)
  check_choice(config, "optim.schedule", optim.SCHEDULES)
  check_positive(config, "batch_size")
  check_positive(config, "num_steps", "log_every", "checkpoint_every", "eval_every", allow_zero=True)
  unknown = set(config.sharding.mesh) - set(sharding.MESH_AXES)
  if unknown:
    raise ValueError(f"config.sharding.mesh has unknown axes {sorted(unknown)}; valid: {sharding.MESH_AXES}")
  sharding.rules_from_config(config.sharding.rules)
