"""The one training loop. Every task plugs in through `sgvu.tasks.base.Task`.

Shapes first (`jax.eval_shape`), shardings from the model's logical axes, a
jitted init with `out_shardings`, then a `jax.jit` step with explicit
shardings and a donated state. Frozen parameters live outside the optimizer
(no state, no gradient computation). A non-finite loss leaves the state
untouched and stops the run, so the last checkpoint is always a good one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time
from typing import Any, Callable, Mapping

from absl import logging
import flax
import flax.linen as nn
from flax import struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from sgvu import checkpoint as ckpt_lib
from sgvu import optim as optim_lib
from sgvu import sharding as sharding_lib
from sgvu.tasks.base import Task


class NonFiniteLossError(RuntimeError):
  pass


@struct.dataclass
class TrainState:
  step: jax.Array
  params: Any  # trainable parameters only (nested dict)
  frozen: Any  # everything else (nested dict); never differentiated
  opt_state: Any


def flatten(tree) -> dict[str, Any]:
  return flax.traverse_util.flatten_dict(tree, sep="/") if tree else {}


def unflatten(flat: Mapping[str, Any]):
  return flax.traverse_util.unflatten_dict(dict(flat), sep="/")


def split_params(params, is_trainable: Callable[[str], bool]):
  flat = flatten(params)
  train = {k: v for k, v in flat.items() if is_trainable(k)}
  frozen = {k: v for k, v in flat.items() if not is_trainable(k)}
  return unflatten(train), unflatten(frozen)


def merge_params(trainable, frozen):
  return unflatten({**flatten(frozen), **flatten(trainable)})


def replicated_to_host(tree):
  """numpy copy of replicated arrays; works when they span several processes."""
  return jax.tree.map(lambda a: np.asarray(a.addressable_data(0)), tree)


def count_params(tree) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


@dataclasses.dataclass
class Setup:
  """Everything `fit` builds before the first step; tests use it directly."""
  mesh: jax.sharding.Mesh
  rules: Any
  state_shardings: Any
  batch_sharding: Any
  init: Callable[[jax.Array], TrainState]
  step: Callable[[TrainState, Any], tuple[TrainState, Any]]
  abstract_state: Any
  num_trainable: int
  num_frozen: int


def build(task: Task, config: ml_collections.ConfigDict, mesh=None) -> Setup:
  """Shapes, shardings, optimizer and the jitted init/step for `task`."""
  mesh = mesh or sharding_lib.make_mesh(dict(config.sharding.mesh),
                                       num_devices=config.sharding.get("num_devices", 0))
  rules = sharding_lib.rules_from_config(config.sharding.get("rules"))

  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    boxed = jax.eval_shape(task.init_params, jax.random.key(0))
  param_shardings = sharding_lib.tree_shardings(boxed, mesh, rules)
  abstract_params = nn.unbox(boxed)
  train_abs, frozen_abs = split_params(abstract_params, task.is_trainable)
  if not flatten(train_abs):
    raise ValueError(f"task {type(task).__name__}: no parameter is trainable")
  tx = optim_lib.make_optimizer(config.optim, train_abs, total_steps=config.num_steps)

  train_shard, frozen_shard = split_params(param_shardings, task.is_trainable)
  opt_abs = jax.eval_shape(tx.init, train_abs)
  # Optimizer moments mirror their parameter's sharding; scalars replicate.
  opt_shard = _opt_state_shardings(opt_abs, train_abs, train_shard, mesh)
  state_shardings = TrainState(step=sharding_lib.replicated(mesh), params=train_shard,
                               frozen=frozen_shard, opt_state=opt_shard)

  def init_fn(rng):
    with nn.logical_axis_rules(rules):
      params = nn.unbox(task.init_params(rng))
    trainable, frozen = split_params(params, task.is_trainable)
    return TrainState(step=jnp.zeros((), jnp.int32), params=trainable, frozen=frozen,
                      opt_state=tx.init(trainable))

  seed = int(config.seed)

  def step_fn(state: TrainState, batch):
    # The step's randomness is a function of (seed, step) only: a resumed run replays it.
    rng = jax.random.fold_in(jax.random.key(seed + 1), state.step)

    def loss_of(trainable):
      with nn.logical_axis_rules(rules):
        return task.loss_fn(merge_params(trainable, state.frozen), batch, rng)

    (loss, aux), grads = jax.value_and_grad(loss_of, has_aux=True)(state.params)
    finite = jnp.isfinite(loss)

    def update(params, opt_state):
      updates, opt_state = tx.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), opt_state

    # A cond, not a select over every leaf: a non-finite step costs nothing and
    # a finite one skips a full pass over parameters and moments.
    params, opt_state = jax.lax.cond(finite, update, lambda p, o: (p, o), state.params, state.opt_state)
    new_state = state.replace(step=state.step + finite.astype(jnp.int32), params=params, opt_state=opt_state)
    metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), "finite": finite, **aux}
    return new_state, metrics

  batch_sharding = sharding_lib.data_sharding(mesh, rules)
  init = jax.jit(init_fn, out_shardings=state_shardings)
  step = jax.jit(step_fn, in_shardings=(state_shardings, batch_sharding),
                 out_shardings=(state_shardings, sharding_lib.replicated(mesh)), donate_argnums=0)
  abstract_state = jax.eval_shape(init_fn, jax.random.key(0))
  return Setup(mesh=mesh, rules=rules, state_shardings=state_shardings, batch_sharding=batch_sharding,
               init=init, step=step, abstract_state=abstract_state,
               num_trainable=count_params(train_abs), num_frozen=count_params(frozen_abs))


def _opt_state_shardings(opt_abs, train_abs, train_shard, mesh):
  """Each optimizer leaf (a moment) takes the sharding of the parameter whose
  dict path ends its own key path (this sees through multi_transform/masked
  wrappers); counters and other scalars are replicated."""
  by_path = {}
  for (path, leaf), shard in zip(jax.tree_util.tree_flatten_with_path(train_abs)[0], jax.tree.leaves(train_shard)):
    by_path[_dict_keys(path)] = (leaf.shape, shard)

  def assign(path, leaf):
    keys = _dict_keys(path)
    for i in range(len(keys)):
      hit = by_path.get(keys[i:])
      if hit is not None and hit[0] == leaf.shape:
        return hit[1]
    return sharding_lib.replicated(mesh)

  return jax.tree_util.tree_map_with_path(assign, opt_abs)


def _dict_keys(path) -> tuple[str, ...]:
  return tuple(k.key for k in path if isinstance(k, jax.tree_util.DictKey))


def initial_state(task: Task, setup: Setup, seed: int) -> TrainState:
  """Random init (jitted, sharded), then the task's pretrained weights placed shard by shard."""
  state = setup.init(jax.random.key(seed))
  overrides = dict(task.pretrained())
  if not overrides:
    return state
  params = flatten(merge_params(state.params, state.frozen))
  unknown = sorted(set(overrides) - set(params))
  if unknown:
    raise KeyError(f"pretrained weights name parameters the model does not have: {unknown[:10]}")
  for path, value in overrides.items():
    target = params[path]
    value = np.asarray(value, dtype=target.dtype)
    if value.shape != target.shape:
      raise ValueError(f"pretrained weight {path}: shape {value.shape}, model expects {target.shape}")
    params[path] = jax.make_array_from_callback(value.shape, target.sharding, lambda idx, v=value: v[idx])
  trainable, frozen = split_params(unflatten(params), task.is_trainable)
  return state.replace(params=trainable, frozen=frozen)


class _StopRequest:
  """First SIGINT/SIGTERM asks the loop to checkpoint and stop at the next step boundary."""

  def __init__(self):
    self.requested = False
    self._old = {}

  def __enter__(self):
    def handler(signum, frame):
      if self.requested:  # Second signal: give up at once.
        signal.signal(signum, self._old.get(signum, signal.SIG_DFL))
        raise KeyboardInterrupt
      self.requested = True
      logging.warning("signal %d: will checkpoint and stop after this step (again to abort)", signum)
    try:
      for s in (signal.SIGINT, signal.SIGTERM):
        self._old[s] = signal.signal(s, handler)
    except ValueError:  # Not the main thread: no signal handling.
      pass
    return self

  def __exit__(self, *exc):
    for s, h in self._old.items():
      signal.signal(s, h)


def _format_eta(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class MetricsWriter:
  """Appends one JSON line per record to WORKDIR/metrics.jsonl (process 0 only)."""

  def __init__(self, workdir: str, name: str = "metrics.jsonl"):
    self.path = os.path.join(workdir, name)
    self.enabled = jax.process_index() == 0
    if self.enabled:
      os.makedirs(workdir, exist_ok=True)

  def write(self, record: Mapping[str, Any]) -> None:
    if self.enabled:
      with open(self.path, "a") as f:
        f.write(json.dumps({k: _jsonable(v) for k, v in record.items()}) + "\n")


def _jsonable(v):
  if isinstance(v, (np.generic, jax.Array, np.ndarray)):
    v = np.asarray(v)
    return v.item() if v.ndim == 0 else v.tolist()
  return v


def fit(task: Task, config: ml_collections.ConfigDict, workdir: str, *, mesh=None,
        setup: Setup | None = None, stop_after: int | None = None) -> tuple[Any, list[dict]]:
  """Trains `task` for config.num_steps, resuming from WORKDIR/checkpoints.

  Returns the final merged params (global arrays) and the eval records.
  `stop_after` ends the loop early at that step with a checkpoint, as an
  interruption would (used by the resume tests).
  """
  setup = setup or build(task, config, mesh)
  logging.info("%s: %s trainable / %s frozen parameters", type(task).__name__,
               f"{setup.num_trainable:,}", f"{setup.num_frozen:,}")
  writer = MetricsWriter(workdir)
  checkpointer = ckpt_lib.Checkpointer(workdir, every=config.checkpoint_every,
                                       keep=config.get("keep_checkpoints", 2))
  local_batch = sharding_lib.batch_size_per_process(config.batch_size)
  data = task.train_iterator(local_batch, config.seed)

  latest = checkpointer.latest_step()
  if latest is not None:
    abstract = ckpt_lib.abstract_with_shardings(setup.abstract_state, setup.state_shardings)
    state = checkpointer.restore(latest, abstract, data)
    logging.info("resuming at step %d", latest)
  else:
    state = initial_state(task, setup, config.seed)
  step = int(replicated_to_host(state.step))

  evals = []
  eval_every = config.get("eval_every", 0)
  total = config.num_steps
  t_start, step_start = time.perf_counter(), step
  pending = None  # Metrics of the previous step, read one step late to keep dispatch ahead.
  # The mesh is set around the step only: evaluation code (metrics, embedding)
  # may use other devices than a mesh built from a subset of them.
  with _StopRequest() as stop:
    while step < total:
      batch = sharding_lib.to_global(next(data), setup.batch_sharding)
      with jax.set_mesh(setup.mesh):
        state, metrics = setup.step(state, batch)
      step += 1
      if pending is not None:
        _check_and_log(pending, writer, config, total, t_start, step_start)
      pending = (step, metrics)
      # Checkpoints and evals happen on confirmed-finite state only.
      if checkpointer.every and step % checkpointer.every == 0 or (eval_every and step % eval_every == 0):
        _check_and_log(pending, writer, config, total, t_start, step_start)
        pending = None
        checkpointer.save(step, state, data)
        if eval_every and step % eval_every == 0 and step < total:
          evals.append(_evaluate(task, state, step, writer))
      if stop.requested or (stop_after is not None and step >= stop_after):
        if pending is not None:
          _check_and_log(pending, writer, config, total, t_start, step_start)
          pending = None
        checkpointer.save(step, state, data, force=True)
        checkpointer.close()
        raise KeyboardInterrupt(f"stopped at step {step}; run the same command again to resume")
    if pending is not None:
      _check_and_log(pending, writer, config, total, t_start, step_start)
    checkpointer.save(step, state, data, force=True)
    checkpointer.close()
    evals.append(_evaluate(task, state, step, writer))
  return merge_params(state.params, state.frozen), evals


def _check_and_log(pending, writer, config, total, t_start, step_start):
  step, metrics = pending
  metrics = replicated_to_host(metrics)
  if not bool(metrics["finite"]):
    raise NonFiniteLossError(
        f"non-finite loss {float(metrics['loss'])} at step {step}; the state was not updated and the "
        f"last checkpoint is intact")
  log_every = config.get("log_every", 50)
  if step % log_every == 0 or step == total:
    elapsed = time.perf_counter() - t_start
    rate = (step - step_start) / max(elapsed, 1e-9)
    eta = _format_eta((total - step) / max(rate, 1e-9))
    scalars = {k: float(v) for k, v in metrics.items() if k != "finite"}
    extra = " ".join(f"{k}={v:.4g}" for k, v in scalars.items() if k != "loss")
    logging.info("step %d/%d loss=%.4f %s | %.2f steps/s ETA %s", step, total, scalars["loss"], extra, rate, eta)
    writer.write({"step": step, **scalars, "steps_per_s": rate})


def _evaluate(task, state, step, writer):
  t = time.perf_counter()
  result = dict(task.evaluate(merge_params(state.params, state.frozen)))
  if result:
    logging.info("eval at step %d (%.1fs): %s", step, time.perf_counter() - t,
                 " ".join(f"{k}={v:.4f}" for k, v in result.items() if isinstance(v, float)))
    writer.write({"step": step, "eval": result})
  return {"step": step, **result}
