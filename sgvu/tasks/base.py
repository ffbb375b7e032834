"""The contract between a task (a paper's method) and the one training loop.

A task says what the model is, how to initialise and (optionally) load its
variables, which parameters train, what the loss is, where batches come
from and how to evaluate. `sgvu.train.fit` does everything else: sharding,
jit, optimizer, checkpoints, logging, NaN guard, resumption.

Beyond one gradient step of `loss_fn`, two opt-in extensions:
- Model state beside params (BatchNorm statistics): return more flax
  collections from `init_variables`, and override `loss_with_state`, which
  gets them and returns updated ones. `freeze_model_state` (or the train
  config's `freeze_model_state`) keeps them fixed.
- A learner that is not one gradient step (PPO's clipped epochs): return an
  update function from `make_update`; the loop jits, shards, checkpoints and
  NaN-guards it with the optimizer state it carries across steps.
"""

from __future__ import annotations

import abc
import re
from typing import Any, Callable, Iterator, Mapping, Sequence

import jax
import ml_collections
import optax

from sgvu import optim

Params = Any  # nested dict of arrays
ModelState = Mapping[str, Any]  # {collection name: nested dict}, e.g. {'batch_stats': ...}; {} for most tasks
Batch = Mapping[str, Any]
Metrics = Mapping[str, jax.Array]
# update(params, frozen, opt_state, batch, rng) -> (params, opt_state, metrics with a scalar 'loss')
UpdateFn = Callable[[Params, Params, Any, Batch, jax.Array], tuple[Params, Any, Metrics]]


class Task(abc.ABC):
  """One trainable method. Subclasses keep `__init__` cheap (no compute)."""

  # Keep the model state (e.g. BatchNorm statistics) fixed at its initial/pretrained value;
  # the train config's `freeze_model_state`, when present and not None, overrides this.
  freeze_model_state: bool = False

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config

  def init_params(self, rng: jax.Array) -> Params:
    """Random init; may return nn.LogicallyPartitioned-boxed leaves. Traced by eval_shape and jit.

    Define this, or `init_variables` when the model has state beside its params.
    """
    if type(self).init_variables is Task.init_variables:
      raise NotImplementedError(f"{type(self).__name__} must define init_params or init_variables")
    return self.init_variables(rng)["params"]

  def init_variables(self, rng: jax.Array) -> Mapping[str, Params]:
    """All flax collections of a random init: {'params': ..., 'batch_stats': ..., ...}.

    Every collection but 'params' is model state: sharded by its logical axes
    (replicated without), never differentiated, checkpointed with the state.
    """
    if type(self).init_params is Task.init_params:
      raise NotImplementedError(f"{type(self).__name__} must define init_params or init_variables")
    return {"params": self.init_params(rng)}

  def pretrained(self) -> Mapping[str, Any]:
    """Pretrained weights to overwrite the random init: {'/'-joined path: numpy array}.

    Paths name parameters ('img/conv1/kernel'); a path whose first part is a
    model-state collection ('batch_stats/img/bn1/mean') names model state.
    Every process returns the same full arrays; the loop places each one
    with its parameter's sharding (multi-host safe).
    """
    return {}

  def is_trainable(self, path: str) -> bool:
    """Whether the parameter at '/'-joined `path` trains. Default: all."""
    del path
    return True

  def loss_fn(self, params: Params, batch: Batch, rng: jax.Array) -> tuple[jax.Array, Metrics]:
    """Scalar loss and auxiliary scalar metrics, on global (sharded) arrays."""
    raise NotImplementedError(f"{type(self).__name__} must define loss_fn (or loss_with_state, or make_update)")

  def loss_with_state(self, params: Params, model_state: ModelState, batch: Batch, rng: jax.Array, *,
                      update_state: bool) -> tuple[jax.Array, Metrics, ModelState]:
    """`loss_fn` for models with state: (loss, metrics, new model state).

    `update_state` False: the statistics are frozen (e.g. BatchNorm with
    use_running_average=True); the loop then keeps the old state whatever
    is returned. Default: `loss_fn`, state passed through.
    """
    del update_state
    loss, aux = self.loss_fn(params, batch, rng)
    return loss, aux, model_state

  def make_optimizer(self, config: ml_collections.ConfigDict, params: Params, *,
                     total_steps: int) -> optax.GradientTransformation:
    """The optimizer whose state the loop carries (abstract trainable `params`). Default: from config.optim.

    A task whose update applies it several times per step (PPO's epochs x
    minibatches) scales `total_steps` so that schedules span the whole run.
    """
    return optim.make_optimizer(config, params, total_steps=total_steps)

  def make_update(self, tx: optax.GradientTransformation) -> UpdateFn | None:
    """None (default): each step is one gradient step of `loss_with_state` with `tx`.

    Otherwise the task's own learner,
    `update(params, frozen, opt_state, batch, rng) -> (params, opt_state, metrics)`:
    `params` the trainable parameters, `frozen` the others (read only),
    `opt_state` the state of `tx` carried from the previous step, `metrics`
    scalars including the objective as 'loss' (a non-finite one leaves the
    state untouched and stops the run). Traced once inside the loop's jit.
    Model state is not passed to a custom update (no task needs both yet).
    """
    del tx
    return None

  @abc.abstractmethod
  def train_iterator(self, batch_size: int, seed: int) -> Iterator[Batch]:
    """This process's batches (numpy); must support get_state()/set_state() (grain)."""

  def predict_fns(self) -> Mapping[str, Any]:
    """Pure functions (params, inputs) -> outputs that evaluators and exported bundles use, by the names
    `sgvu.evaluators` know: 'embed_sketch' / 'embed_photo' (uint8 images -> embeddings), 'embed_texts'
    (strings -> embeddings), 'embed_levels' (per-level features -> embeddings)."""
    return {}

  def evaluate(self, params: Params) -> Mapping[str, float]:
    """Evaluation metrics on the current params, when `fit` is given no `evaluate` (tests' toy tasks).
    Experiments evaluate through `sgvu.evaluators` built from `predict_fns` instead."""
    del params
    return {}

  def evaluate_with_state(self, params: Params, model_state: ModelState) -> Mapping[str, float]:
    """`evaluate` for models with state. Default: `evaluate(params)`."""
    del model_state
    return self.evaluate(params)

  def batch_axes(self, batch: Batch) -> Mapping[str, Any]:
    """Which batch entries are split over the batch axis (default: all)."""
    return {k: True for k in batch}


def regex_matcher(patterns: Sequence[str]):
  """is_trainable helper: a path trains if any regex fully matches it."""
  compiled = [re.compile(p) for p in patterns]
  return lambda path: any(c.fullmatch(path) for c in compiled)
