"""Entry point: python -m sgvu.main --config=experiments/NAME.py[:variant] [--workdir=DIR] [--config.key=value ...]

The config is locked, so a misspelt override fails at parse time; the
experiment's `validate` then checks names and consistency before any compute.
A user mistake (bad key, method, variant, workdir, missing weights or data)
ends in one line `error: ...` on stderr with exit code 2; Ctrl-C ends in one
line `stopped: ...` with exit code 130. `--verbose` shows the traceback.
XLA compiles are cached across runs (sgvu.compile_cache; `--nocompile_cache`).
"""

from __future__ import annotations

import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from sgvu import compile_cache
from sgvu import sharding
from sgvu.tasks import registry
from sgvu.data.base import DataError

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file (experiments/*.py[:variant]).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and results go "
                               "(default: runs/<config.name>). Re-running with the same workdir resumes.")
_VERBOSE = flags.DEFINE_bool("verbose", False, "On an error, show the traceback instead of one line.")
_COMPILE_CACHE = flags.DEFINE_bool("compile_cache", True, "Reuse XLA compiles across runs from "
                                   "$SGVU_CACHE/xla (~/.cache/sgvu/xla); SGVU_COMPILE_CACHE=0 also turns it off.")

# Errors that mean "the command or its inputs are wrong", not "sgvu has a bug": one line, exit code 2.
USER_ERRORS = (ValueError, KeyError, DataError, FileNotFoundError, NotADirectoryError, FileExistsError,
               IsADirectoryError, PermissionError, flags.Error, app.UsageError)
USAGE_EXIT, STOP_EXIT = 2, 130


class UserError(Exception):
  """A mistake on the command line."""


def run(config, workdir: str) -> dict:
  """Validates, then runs the experiment named by config.task. Importable for tests."""
  experiment = registry.get_experiment(config.task)
  experiment.validate(config)
  make_workdir(workdir)
  logging.info("workdir: %s", os.path.abspath(workdir))
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(config.to_json_best_effort(indent=2))
  return experiment.run(config, workdir)


def make_workdir(workdir: str) -> None:
  try:
    os.makedirs(workdir, exist_ok=True)
  except (FileExistsError, NotADirectoryError) as e:
    raise NotADirectoryError(f"--workdir={workdir}: cannot create this directory ({e.strerror}: {e.filename})") from e
  except PermissionError as e:
    raise PermissionError(f"--workdir={workdir}: cannot create it ({e.strerror}: {e.filename})") from e


def message(e: BaseException) -> str:
  """One line saying what went wrong, without the wrappers flags and config_flags put around it."""
  # config_flags reports an exception inside a config file as a traceback dump: use the original.
  if "Traceback (most recent call last)" in str(e):
    while e.__cause__ is not None or (e.__context__ is not None and not e.__suppress_context__):
      e = e.__cause__ or e.__context__
  while e.args and isinstance(e.args[0], BaseException):  # AttributeError(KeyError(...)) of a misspelt key
    e = e.args[0]
  if isinstance(e, KeyError) and len(e.args) == 1 and isinstance(e.args[0], str):
    text = e.args[0]  # str(KeyError) would quote it again
    if "Did you mean" in text or not any(c.isspace() for c in text.strip("'")):  # a bare key: ml_collections'
      text = "config has no key " + (text if text.startswith("'") else repr(text))
  else:
    text = str(e) or type(e).__name__
  return " ".join("; ".join(l.strip() for l in text.strip().splitlines() if l.strip()).split())


def _exit(prefix: str, e: BaseException, code: int) -> None:
  sys.stderr.flush()
  print(f"{prefix}: {message(e)}", file=sys.stderr, flush=True)
  sys.exit(code)


def _verbose_requested(argv) -> bool:
  return any(a.split("=")[0] in ("--verbose", "-verbose") and not a.endswith(("=false", "=False", "=0"))
             for a in argv)


def _parse_flags(argv):
  """absl's parsing, with a command-line mistake (flags, config file, variant, override) in one line."""
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # pylint: disable=broad-except  (anything here is about the command line)
    if _verbose_requested(argv):
      raise
    _exit("error", e, USAGE_EXIT)


class _QuietLibraries:
  """Drops INFO chatter of checkpoint/data libraries so progress lines stay readable."""

  NOISY = ("/orbax/", "/grain/", "/etils/")

  def filter(self, record) -> bool:
    return record.levelno >= 30 or not any(n in record.pathname for n in self.NOISY)


def _main(argv) -> None:
  if len(argv) > 1:
    raise UserError(f"unexpected arguments: {argv[1:]}")
  config = _CONFIG.value
  if config is None:
    raise UserError("--config=experiments/NAME.py is required")
  try:
    task = config.task  # a config file that failed to load raises here
  except (OSError, AttributeError) as e:  # e.g. "[Errno 2] No such file or directory: 'experiments/x.py'"
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    raise UserError(f"--config: {lines[-1] if lines else type(e).__name__}") from e
  logging.get_absl_handler().addFilter(_QuietLibraries())
  if _COMPILE_CACHE.value:
    compile_cache.enable()
  sharding.maybe_initialize_distributed()
  workdir = _WORKDIR.value or os.path.join("runs", config.get("name", task))
  run(config, workdir)  # the runner prints the table
  print(f"results: {os.path.join(workdir, 'results.json')}")


def main(argv) -> None:
  try:
    _main(argv)
  except KeyboardInterrupt as e:  # also sgvu.interrupt.Stopped, whose message says how to resume
    if _VERBOSE.value:
      raise
    text = message(e) if str(e) else "interrupted"
    print(f"stopped: {text}", file=sys.stderr, flush=True)
    sys.exit(STOP_EXIT)
  except (UserError,) + USER_ERRORS as e:
    if _VERBOSE.value:
      raise
    _exit("error", e, USAGE_EXIT)


def cli() -> None:
  app.run(main, flags_parser=_parse_flags)


if __name__ == "__main__":
  cli()
