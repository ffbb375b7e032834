"""JAX's persistent compilation cache, on by default, so a re-run (of an experiment, a tool or the tests) skips
the XLA compiles an earlier run already did.

Where: `$SGVU_CACHE/xla` (default `~/.cache/sgvu/xla`); delete the folder to clear it. Every program is cached,
however small or quick to compile (on a 2-core CPU the many small ones add up). Off: `--nocompile_cache` on
`python -m sgvu.main`, or `SGVU_COMPILE_CACHE=0` in the environment (every entry point).

This module imports JAX only when `enable` is called.
"""

from __future__ import annotations

import os

from absl import logging

ENV = "SGVU_COMPILE_CACHE"


def default_directory() -> str:
  root = os.environ.get("SGVU_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "sgvu")
  return os.path.join(root, "xla")


def disabled_by_env() -> bool:
  return os.environ.get(ENV, "1").strip().lower() in ("0", "false", "no", "off")


def enable(directory: str | None = None) -> str | None:
  """Turns the cache on in `directory` (default: where it already is on, else default_directory()).

  Returns the directory, or None when SGVU_COMPILE_CACHE=0 or the directory
  cannot be created (a warning: the run goes on without the cache).
  Call it before the first compile; calling it again moves the cache.
  """
  if disabled_by_env():
    return None
  if directory is None:
    import jax  # pylint: disable=g-import-not-at-top
    if jax.config.jax_compilation_cache_dir:  # already on (the test session, JAX_COMPILATION_CACHE_DIR): keep it
      return jax.config.jax_compilation_cache_dir
  directory = os.path.abspath(os.path.expanduser(directory or default_directory()))
  try:
    os.makedirs(directory, exist_ok=True)
  except OSError as e:
    logging.warning("compilation cache off: cannot create %s (%s)", directory, e)
    return None
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update("jax_compilation_cache_dir", directory)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)  # -1: no size limit, no overrides
  _reset()
  return directory


def disable() -> None:
  import jax  # pylint: disable=g-import-not-at-top
  jax.config.update("jax_compilation_cache_dir", None)
  _reset()


def _reset() -> None:
  """Makes JAX read the settings again if a compile already looked at them (it does so once per process)."""
  from jax._src import compilation_cache as state  # pylint: disable=g-import-not-at-top
  from jax.experimental.compilation_cache import compilation_cache  # pylint: disable=g-import-not-at-top
  if getattr(state, "_cache_initialized", True) or getattr(state, "_cache_checked", True):
    compilation_cache.reset_cache()
