"""Optimizers from config: a registry, per-parameter-group learning rates, schedules.

config.optim:
  name: 'adam' | 'adamw' | 'sgd'
  lr: base learning rate; schedule: 'constant' | 'cosine'; warmup_steps
  weight_decay, b1, b2, momentum, grad_clip_norm (0 = off)
  param_lrs: ((regex, lr), ...) first full match of the '/'-joined parameter
    path wins (e.g. prompts at 1e-4, LayerNorms at 1e-6, as in seed 004).
"""

from __future__ import annotations

import re
from typing import Any

import jax
import ml_collections
import optax


def _adam(c, lr):
  return optax.adam(lr, b1=c.get("b1", 0.9), b2=c.get("b2", 0.999))


def _adamw(c, lr):
  return optax.adamw(lr, b1=c.get("b1", 0.9), b2=c.get("b2", 0.999), weight_decay=c.get("weight_decay", 1e-4))


def _sgd(c, lr):
  return optax.sgd(lr, momentum=c.get("momentum", 0.9) or None)


OPTIMIZERS = {"adam": _adam, "adamw": _adamw, "sgd": _sgd}
SCHEDULES = ("constant", "cosine")


def schedule(lr: float, c: ml_collections.ConfigDict, total_steps: int):
  warmup = int(c.get("warmup_steps", 0))
  name = c.get("schedule", "constant")
  if name not in SCHEDULES:
    raise ValueError(f"config.optim.schedule={name!r}; valid: {SCHEDULES}")
  if name == "cosine":
    return optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(total_steps, warmup + 1))
  if warmup:
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), optax.constant_schedule(lr)], [warmup])
  return lr


def param_groups(c: ml_collections.ConfigDict, params: Any) -> tuple[Any, dict[str, float]]:
  """Labels each parameter with its group; returns (label tree, {label: lr})."""
  rules = [(re.compile(p), float(lr)) for p, lr in (c.get("param_lrs") or ())]
  lrs = {"base": float(c.lr)}

  def label(path, _):
    name = "/".join(str(getattr(k, "key", k)) for k in path)
    for i, (rx, lr) in enumerate(rules):
      if rx.fullmatch(name):
        lrs[f"group{i}"] = lr
        return f"group{i}"
    return "base"

  labels = jax.tree_util.tree_map_with_path(label, params)
  return labels, lrs


def make_optimizer(c: ml_collections.ConfigDict, params: Any, *, total_steps: int) -> optax.GradientTransformation:
  if c.name not in OPTIMIZERS:
    raise ValueError(f"config.optim.name={c.name!r}; valid: {sorted(OPTIMIZERS)}")
  labels, lrs = param_groups(c, params)
  make = OPTIMIZERS[c.name]
  if len(lrs) == 1:
    tx = make(c, schedule(lrs["base"], c, total_steps))
  else:
    tx = optax.multi_transform({k: make(c, schedule(lr, c, total_steps)) for k, lr in lrs.items()}, labels)
  clip = c.get("grad_clip_norm", 0.0)
  return optax.chain(optax.clip_by_global_norm(clip), tx) if clip else tx
