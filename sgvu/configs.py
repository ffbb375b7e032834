"""Validation helpers for experiment configs (JAX-free at import).

The config blocks themselves live in experiments/blocks.py.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import ml_collections


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
