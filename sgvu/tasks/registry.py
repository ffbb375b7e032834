"""Registry of experiments runnable by `python -m sgvu.main`.

Each entry is a module with `validate(config)` (raises before any compute on
a bad setting, naming the key) and `run(config, workdir) -> results dict`.
Modules are imported on demand so one experiment's imports never slow another.
This file is left out of every code hash (sgvu.experiment.REGISTRIES): adding
an experiment here must not invalidate another's tables or the shipped CLIP.
"""

from __future__ import annotations

import importlib
from types import ModuleType

EXPERIMENTS: dict[str, str] = {
    "clip_pretrain": "sgvu.tasks.clip_pretrain",
    "context": "sgvu.tasks.context",
    "cstbir": "sgvu.tasks.cstbir",
    "duet": "sgvu.tasks.duet",
    "fg_sbir": "sgvu.tasks.fg_sbir",
    "localization": "sgvu.tasks.localization",
    "on_the_fly": "sgvu.tasks.on_the_fly",
    "zs_sbir": "sgvu.tasks.zs_sbir",
}


def module_name(task: str) -> str:
  if task not in EXPERIMENTS:
    raise ValueError(f"config.task={task!r} is not a known experiment; valid: {sorted(EXPERIMENTS)}")
  return EXPERIMENTS[task]


def get_experiment(task: str) -> ModuleType:
  return importlib.import_module(module_name(task))
