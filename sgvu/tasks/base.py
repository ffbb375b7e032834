"""The contract between a task (a paper's method) and the one training loop.

A task says what the model is, how to initialise and (optionally) load its
parameters, which parameters train, what the loss is, where batches come
from and how to evaluate. `sgvu.train.fit` does everything else: sharding,
jit, optimizer, checkpoints, logging, NaN guard, resumption.
"""

from __future__ import annotations

import abc
import re
from typing import Any, Iterator, Mapping, Sequence

import jax
import ml_collections

Params = Any  # nested dict of arrays
Batch = Mapping[str, Any]


class Task(abc.ABC):
  """One trainable method. Subclasses keep `__init__` cheap (no compute)."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config

  @abc.abstractmethod
  def init_params(self, rng: jax.Array) -> Params:
    """Random init; may return nn.LogicallyPartitioned-boxed leaves. Traced by eval_shape and jit."""

  def pretrained(self) -> Mapping[str, Any]:
    """Pretrained weights to overwrite the random init: {'/'-joined path: numpy array}.

    Every process returns the same full arrays; the loop places each one
    with its parameter's sharding (multi-host safe).
    """
    return {}

  def is_trainable(self, path: str) -> bool:
    """Whether the parameter at '/'-joined `path` trains. Default: all."""
    del path
    return True

  @abc.abstractmethod
  def loss_fn(self, params: Params, batch: Batch, rng: jax.Array) -> tuple[jax.Array, Mapping[str, jax.Array]]:
    """Scalar loss and auxiliary scalar metrics, on global (sharded) arrays."""

  @abc.abstractmethod
  def train_iterator(self, batch_size: int, seed: int) -> Iterator[Batch]:
    """This process's batches (numpy); must support get_state()/set_state() (grain)."""

  def evaluate(self, params: Params) -> Mapping[str, float]:
    """Evaluation metrics on the current params (called on every process)."""
    del params
    return {}

  def batch_axes(self, batch: Batch) -> Mapping[str, Any]:
    """Which batch entries are split over the batch axis (default: all)."""
    return {k: True for k in batch}


def regex_matcher(patterns: Sequence[str]):
  """is_trainable helper: a path trains if any regex fully matches it."""
  compiled = [re.compile(p) for p in patterns]
  return lambda path: any(c.fullmatch(path) for c in compiled)
