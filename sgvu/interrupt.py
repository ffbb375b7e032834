"""One process-wide stop request (Ctrl-C / SIGTERM), honoured at the next safe point.

The first SIGINT or SIGTERM inside `handling()` only records the request; code
that can stop cleanly (the training loop at a step boundary, after saving a
checkpoint; the table runner between rows; evaluation and pictures between
stages) calls `check(where)`, which raises `Stopped` once a stop was asked for.
A second signal aborts at once with a plain KeyboardInterrupt.

    with interrupt.handling():        # the whole run (re-entrant: fit enters it too)
      for row in rows:
        interrupt.check(f"before row {row}")
        train.fit(...)                 # checkpoints and raises Stopped at a step boundary

`Stopped` is a KeyboardInterrupt, so callers that treat Ctrl-C as "end the run"
need no new except clause; its message says how to resume.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

from absl import logging

RESUME_HINT = "run the same command again to resume"
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(KeyboardInterrupt):
  """A requested stop reached a safe point; the same command resumes."""


class _State:
  requested = False
  depth = 0
  old_handlers: dict = {}


_state = _State()
_lock = threading.Lock()


def _handler(signum, frame):
  del frame
  if _state.requested:  # Second signal: give up at once, and let a third one behave as before.
    signal.signal(signum, _state.old_handlers.get(signum, signal.SIG_DFL))
    raise KeyboardInterrupt(f"signal {signum} received twice: aborted without a checkpoint")
  _state.requested = True
  logging.warning("signal %d: will stop at the next safe point and save what is needed to resume "
                  "(send it again to abort at once)", signum)


@contextlib.contextmanager
def handling() -> Iterator[None]:
  """Installs the SIGINT/SIGTERM handlers for the duration; nested uses are no-ops.

  The outermost entry clears an earlier request (a new run starts) and its exit
  restores the previous handlers. Off the main thread (where Python cannot set
  signal handlers) it does nothing and signals keep their usual behaviour.
  """
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  with _lock:
    outermost = _state.depth == 0
    if outermost:
      _state.requested = False
      _state.old_handlers = {s: signal.signal(s, _handler) for s in _SIGNALS}
    _state.depth += 1
  try:
    yield
  finally:
    with _lock:
      _state.depth -= 1
      if _state.depth == 0:
        for s, h in _state.old_handlers.items():
          signal.signal(s, h)
        _state.old_handlers = {}


def requested() -> bool:
  """Whether a stop was requested (and not yet cleared by a new outermost `handling()` or `reset()`)."""
  return _state.requested


def request() -> None:
  """Asks for a stop as a signal would (for callers and tests that are not signal handlers)."""
  _state.requested = True


def check(where: str) -> None:
  """Raises `Stopped("stopped <where>; run the same command again to resume")` if a stop was requested."""
  if _state.requested:
    raise Stopped(f"stopped {where}; {RESUME_HINT}")


def reset() -> None:
  """Clears the request (tests; a long-lived process that starts a new run without `handling()`)."""
  _state.requested = False
