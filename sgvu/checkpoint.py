"""Checkpoints = train state + data iterator state (orbax + grain).

A run started again with the same command and workdir finds the latest
checkpoint, restores both, and continues with exactly the batches it would
have seen had it never stopped.

A step that cannot be read (truncated files, an empty iterator-state JSON, a
checkpoint of an older state layout) is skipped with one warning line and
moved aside to WORKDIR/checkpoints.unreadable/, and the next older step is
tried; when none is readable the caller starts over from init. Either way the
run ends where an uninterrupted one would.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

from absl import logging
import grain
import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Thin wrapper over an orbax CheckpointManager at WORKDIR/checkpoints."""

  def __init__(self, workdir: str, *, every: int, keep: int = 2, async_save: bool = True):
    self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    self.every = every
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=True, enable_async_checkpointing=async_save)
    self.manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state: Any, data_iterator: Any | None, *, force: bool = False) -> bool:
    if not force and (self.every <= 0 or step % self.every):
      return False
    if step in self.manager.all_steps():  # e.g. the final save right after a periodic one
      return False
    items = {"state": ocp.args.StandardSave(state)}
    if data_iterator is not None:
      items["data"] = grain.checkpoint.CheckpointSave(data_iterator)
    saved = self.manager.save(step, args=ocp.args.Composite(**items), force=True)
    if saved:
      logging.info("checkpoint: saving step %d to %s", step, self.directory)
    return saved

  def restore(self, step: int, abstract_state: Any, data_iterator: Any | None) -> Any:
    """Restores into `abstract_state` (ShapeDtypeStructs with shardings) and the iterator in place."""
    items = {"state": ocp.args.StandardRestore(abstract_state)}
    if data_iterator is not None:
      items["data"] = grain.checkpoint.CheckpointRestore(data_iterator)
    restored = self.manager.restore(step, args=ocp.args.Composite(**items))
    logging.info("checkpoint: restored step %d from %s", step, self.directory)
    return restored["state"]

  def restore_latest(self, abstract_state: Any, data_iterator: Any | None) -> tuple[int, Any] | None:
    """(step, state) of the newest readable checkpoint, or None when there is none.

    Unreadable steps are logged (one line each: step directory and error) and
    moved aside, so that later saves of those steps are not skipped. After None
    the data iterator may hold a skipped step's position: make a fresh one.
    """
    skipped = []
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        state = self.restore(step, abstract_state, data_iterator)
      except Exception as e:  # Any failure to read: not KeyboardInterrupt/Stopped.
        logging.warning("checkpoint: cannot restore %s (%s: %s); trying an older step",
                        os.path.join(self.directory, str(step)), type(e).__name__, _one_line(e))
        skipped.append(step)
        continue
      if skipped:
        self._set_aside(skipped)
        logging.warning("checkpoint: resumed from step %d instead of the unreadable step(s) %s", step, skipped)
      return step, state
    if skipped:
      self._set_aside(skipped)
      logging.warning("checkpoint: no readable checkpoint in %s (skipped steps %s); starting over from init",
                      self.directory, skipped)
    return None

  def _set_aside(self, steps) -> None:
    """Moves unreadable step directories to WORKDIR/checkpoints.unreadable/<step>[.<time>] (process 0)."""
    aside = self.directory + ".unreadable"
    if jax.process_index() == 0:
      os.makedirs(aside, exist_ok=True)
      for step in steps:
        src = os.path.join(self.directory, str(step))
        dst = os.path.join(aside, str(step))
        if os.path.exists(dst):
          dst += f".{time.strftime('%Y%m%d-%H%M%S')}"
        if os.path.exists(src):
          shutil.move(src, dst)
          logging.warning("checkpoint: moved unreadable step %d to %s", step, dst)
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      multihost_utils.sync_global_devices("sgvu_checkpoint_set_aside")
    self.manager.reload()

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


def _one_line(e: BaseException, limit: int = 300) -> str:
  lines = [l.strip() for l in str(e).splitlines() if l.strip()]
  text = lines[0] if lines else repr(e)
  return text if len(text) <= limit else text[:limit] + "..."


def abstract_with_shardings(tree: Any, shardings: Any) -> Any:
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)
