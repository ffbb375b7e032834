"""Entry point: python -m sgvu.main --config=experiments/NAME.py[:variant] [--workdir=DIR] [--config.key=value ...]

The config is locked, so a misspelt override fails at parse time; the
experiment's `validate` then checks names and consistency before any compute.
"""

from __future__ import annotations

import json
import os

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from sgvu import sharding
from sgvu import tasks

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file (experiments/*.py[:variant]).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and results go "
                               "(default: runs/<config.name>). Re-running with the same workdir resumes.")


def run(config, workdir: str) -> dict:
  """Validates, then runs the experiment named by config.task. Importable for tests."""
  experiment = tasks.get_experiment(config.task)
  experiment.validate(config)
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(config.to_json_best_effort(indent=2))
  return experiment.run(config, workdir)


class _QuietLibraries:
  """Drops INFO chatter of checkpoint/data libraries so progress lines stay readable."""

  NOISY = ("/orbax/", "/grain/", "/etils/")

  def filter(self, record) -> bool:
    return record.levelno >= 30 or not any(n in record.pathname for n in self.NOISY)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  config = _CONFIG.value
  if config is None:
    raise app.UsageError("--config=experiments/NAME.py is required")
  logging.get_absl_handler().addFilter(_QuietLibraries())
  sharding.maybe_initialize_distributed()
  workdir = _WORKDIR.value or os.path.join("runs", config.get("name", config.task))
  logging.info("workdir: %s", os.path.abspath(workdir))
  results = run(config, workdir)
  print(json.dumps(results.get("rows", results), indent=1))


if __name__ == "__main__":
  app.run(main)
