"""The one training loop. Every task plugs in through `sgvu.tasks.base.Task`.

Shapes first (`jax.eval_shape`), shardings from the model's logical axes, a
jitted init with `out_shardings`, then a `jax.jit` step with explicit
shardings and a donated state. Frozen parameters live outside the optimizer
(no state, no gradient computation). A non-finite loss leaves the state
untouched and stops the run, so the last checkpoint is always a good one.

The state also carries the model state (BatchNorm statistics; see
`Task.init_variables`) and the raw key of the step randomness: step t uses
fold_in(key(seed + 1), t), so a resumed run replays it, and the step does not
depend on the seed as a constant: every seed of a row runs one compiled step.
A stop request (`sgvu.interrupt`) checkpoints at the next step boundary.
"""

from __future__ import annotations

import dataclasses
import json
import os
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
from sgvu import event_files
from sgvu import interrupt
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
  model_state: Any  # {collection: nested dict} beside params (e.g. 'batch_stats'); {} for most tasks
  rng: jax.Array  # raw key data (uint32) of the step randomness: step t uses fold_in(rng, t)


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


def variables(state: TrainState) -> dict[str, Any]:
  """The flax variables of a state: {'params': merged params, **model_state}."""
  return {"params": merge_params(state.params, state.frozen), **state.model_state}


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
  init: Callable[[jax.Array], TrainState]  # init(int32 seed) -> sharded TrainState
  step: Callable[[TrainState, Any], tuple[TrainState, Any]]
  abstract_state: Any
  num_trainable: int
  num_frozen: int
  tx: optax.GradientTransformation | None = None


def _split_collections(tree):
  tree = dict(tree)
  if "params" not in tree:
    raise ValueError(f"init_variables must return a 'params' collection, got {sorted(tree)}")
  return tree.pop("params"), tree


def build(task: Task, config: ml_collections.ConfigDict, mesh=None) -> Setup:
  """Shapes, shardings, optimizer and the jitted init/step for `task`."""
  mesh = mesh or sharding_lib.make_mesh(dict(config.sharding.mesh),
                                       num_devices=config.sharding.get("num_devices", 0))
  rules = sharding_lib.rules_from_config(config.sharding.get("rules"))
  rep = sharding_lib.replicated(mesh)

  with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
    boxed = jax.eval_shape(task.init_variables, jax.random.key(0))
  param_shardings, model_state_shard = _split_collections(sharding_lib.tree_shardings(boxed, mesh, rules))
  abstract_params, _ = _split_collections(nn.unbox(boxed))
  train_abs, frozen_abs = split_params(abstract_params, task.is_trainable)
  if not flatten(train_abs):
    raise ValueError(f"task {type(task).__name__}: no parameter is trainable")
  tx = task.make_optimizer(config.optim, train_abs, total_steps=config.num_steps)
  custom_update = task.make_update(tx)
  if custom_update is not None and flatten(model_state_shard):
    raise NotImplementedError(f"task {type(task).__name__}: a custom update with model state "
                              f"{sorted(model_state_shard)} is not supported")
  freeze_state = config.get("freeze_model_state", None)  # None or absent: the task decides
  freeze_state = bool(task.freeze_model_state if freeze_state is None else freeze_state)

  train_shard, frozen_shard = split_params(param_shardings, task.is_trainable)
  opt_abs = jax.eval_shape(tx.init, train_abs)
  # Optimizer moments mirror their parameter's sharding; scalars replicate.
  opt_shard = _opt_state_shardings(opt_abs, train_abs, train_shard, mesh)
  state_shardings = TrainState(step=rep, params=train_shard, frozen=frozen_shard, opt_state=opt_shard,
                               model_state=model_state_shard, rng=rep)

  def init_fn(seed):
    with nn.logical_axis_rules(rules):
      params, model_state = _split_collections(nn.unbox(task.init_variables(jax.random.key(seed))))
    trainable, frozen = split_params(params, task.is_trainable)
    return TrainState(step=jnp.zeros((), jnp.int32), params=trainable, frozen=frozen,
                      opt_state=tx.init(trainable), model_state=model_state,
                      rng=jax.random.key_data(jax.random.key(seed + 1)))

  def gradient_update(state: TrainState, batch, rng):
    def loss_of(trainable):
      with nn.logical_axis_rules(rules):
        loss, aux, new_ms = task.loss_with_state(merge_params(trainable, state.frozen), state.model_state,
                                                 batch, rng, update_state=not freeze_state)
      return loss, (aux, new_ms)

    (loss, (aux, new_ms)), grads = jax.value_and_grad(loss_of, has_aux=True)(state.params)
    finite = jnp.isfinite(loss)
    new_ms = state.model_state if freeze_state else {k: flax.core.unfreeze(new_ms[k]) for k in state.model_state}

    def apply(params, opt_state, ms_new, ms_old):
      del ms_old
      updates, opt_state = tx.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), opt_state, ms_new

    def keep(params, opt_state, ms_new, ms_old):
      del ms_new
      return params, opt_state, ms_old

    # A cond, not a select over every leaf: a non-finite step costs nothing and
    # a finite one skips a full pass over parameters and moments.
    params, opt_state, ms = jax.lax.cond(finite, apply, keep, state.params, state.opt_state, new_ms,
                                         state.model_state)
    return params, opt_state, ms, {"loss": loss, "grad_norm": optax.tree.norm(grads), **aux}

  def task_update(state: TrainState, batch, rng):
    with nn.logical_axis_rules(rules):
      params, opt_state, metrics = custom_update(state.params, state.frozen, state.opt_state, batch, rng)
    if "loss" not in metrics:
      raise KeyError(f"{type(task).__name__}.make_update: the update's metrics need a 'loss', got {sorted(metrics)}")
    params, opt_state = jax.lax.cond(jnp.isfinite(metrics["loss"]), lambda new, old: new, lambda new, old: old,
                                     (params, opt_state), (state.params, state.opt_state))
    return params, opt_state, state.model_state, dict(metrics)

  update = gradient_update if custom_update is None else task_update

  def step_fn(state: TrainState, batch):
    rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    params, opt_state, model_state, metrics = update(state, batch, rng)
    finite = jnp.isfinite(metrics["loss"])
    new_state = state.replace(step=state.step + finite.astype(jnp.int32), params=params, opt_state=opt_state,
                              model_state=model_state)
    return new_state, {**metrics, "finite": finite}

  batch_sharding = sharding_lib.data_sharding(mesh, rules)
  init = jax.jit(init_fn, out_shardings=state_shardings)
  step = jax.jit(step_fn, in_shardings=(state_shardings, batch_sharding), out_shardings=(state_shardings, rep),
                 donate_argnums=0)
  abstract_state = jax.eval_shape(init_fn, jnp.int32(0))
  return Setup(mesh=mesh, rules=rules, state_shardings=state_shardings, batch_sharding=batch_sharding,
               init=init, step=step, abstract_state=abstract_state, num_trainable=count_params(train_abs),
               num_frozen=count_params(frozen_abs), tx=tx)


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
  state = setup.init(jnp.int32(seed))
  overrides = dict(task.pretrained())
  if not overrides:
    return state
  flat = flatten(variables(state))
  keyed = {(p if p.split("/", 1)[0] in state.model_state else f"params/{p}"): (p, v) for p, v in overrides.items()}
  unknown = sorted(p for k, (p, _) in keyed.items() if k not in flat)
  if unknown:
    raise KeyError(f"pretrained weights name parameters the model does not have: {unknown[:10]}")
  for key, (path, value) in keyed.items():
    target = flat[key]
    value = np.asarray(value, dtype=target.dtype)
    if value.shape != target.shape:
      raise ValueError(f"pretrained weight {path}: shape {value.shape}, model expects {target.shape}")
    flat[key] = jax.make_array_from_callback(value.shape, target.sharding, lambda idx, v=value: v[idx])
  params, model_state = _split_collections(unflatten(flat))
  trainable, frozen = split_params(params, task.is_trainable)
  return state.replace(params=trainable, frozen=frozen, model_state=model_state)


def _format_eta(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class MetricsWriter:
  """Appends one JSON line per record to WORKDIR/metrics.jsonl and the same scalars to TensorBoard event
  files in WORKDIR (an 'eval' record's metrics as eval/<name>; process 0 only)."""

  def __init__(self, workdir: str, name: str = "metrics.jsonl"):
    self.path = os.path.join(workdir, name)
    self.enabled = jax.process_index() == 0
    self.events = event_files.EventWriter(workdir, enabled=self.enabled)
    if self.enabled:
      os.makedirs(workdir, exist_ok=True)

  def write(self, record: Mapping[str, Any]) -> None:
    if self.enabled:
      with open(self.path, "a") as f:
        f.write(json.dumps({k: _jsonable(v) for k, v in record.items()}) + "\n")
      evals = record.get("eval")
      flat = {f"eval/{k}": v for k, v in evals.items()} if isinstance(evals, Mapping) else {}
      self.events.scalars({**{k: v for k, v in record.items() if k != "eval"}, **flat})

  def close(self) -> None:
    self.events.close()


def _jsonable(v):
  if isinstance(v, (np.generic, jax.Array, np.ndarray)):
    v = np.asarray(v)
    return v.item() if v.ndim == 0 else v.tolist()
  return v


def fit(task: Task, config: ml_collections.ConfigDict, workdir: str, *, mesh=None,
        setup: Setup | None = None, stop_after: int | None = None, return_state: bool = False,
        evaluate: Callable[[Any], Mapping[str, Any]] | None = None):
  """Trains `task` for config.num_steps, resuming from WORKDIR/checkpoints.

  Returns (final merged params as global arrays, eval records); with
  `return_state`, the final TrainState instead of the params (model state,
  optimizer state; `variables(state)` gives the flax variables).
  A stop request (Ctrl-C, SIGTERM: `sgvu.interrupt`) saves a checkpoint at
  the next step boundary and raises `interrupt.Stopped`; one during the
  final evaluation raises it after. `stop_after` ends the loop at that step
  the same way (used by the resume tests). `evaluate(params)` (evaluators
  built by the caller) scores the model at eval_every and at the end;
  default: the task's own `evaluate_with_state`.
  """
  with interrupt.handling():
    state, evals = _fit(task, config, workdir, mesh=mesh, setup=setup, stop_after=stop_after, evaluate=evaluate)
  return (state if return_state else merge_params(state.params, state.frozen)), evals


def _fit(task, config, workdir, *, mesh, setup, stop_after, evaluate):
  setup = setup or build(task, config, mesh)
  logging.info("%s: %s trainable / %s frozen parameters", type(task).__name__,
               f"{setup.num_trainable:,}", f"{setup.num_frozen:,}")
  writer = MetricsWriter(workdir)
  try:
    checkpointer = ckpt_lib.Checkpointer(workdir, every=config.checkpoint_every,
                                         keep=config.get("keep_checkpoints", 2))
    local_batch = sharding_lib.batch_size_per_process(config.batch_size)
    data = task.train_iterator(local_batch, config.seed)

    restored = None
    if checkpointer.latest_step() is not None:
      abstract = ckpt_lib.abstract_with_shardings(setup.abstract_state, setup.state_shardings)
      restored = checkpointer.restore_latest(abstract, data)
      if restored is None:  # Nothing readable: start over, with an iterator no failed restore touched.
        data = task.train_iterator(local_batch, config.seed)
    if restored is not None:
      state = restored[1]
      logging.info("resuming at step %d", restored[0])
    else:
      state = initial_state(task, setup, config.seed)
    step = int(replicated_to_host(state.step))
    interrupt.check(f"at step {step}")

    evals = []
    eval_every = config.get("eval_every", 0)
    total = config.num_steps
    t_start, step_start = time.perf_counter(), step
    pending = None  # Metrics of the previous step, read one step late to keep dispatch ahead.
    log = lambda p: _check_and_log(p, writer, config, total, t_start, step_start)
    # The mesh is set around the step only: evaluation code (metrics, embedding)
    # may use other devices than a mesh built from a subset of them.
    while step < total:
      batch = sharding_lib.to_global(next(data), setup.batch_sharding)
      with jax.set_mesh(setup.mesh):
        state, metrics = setup.step(state, batch)
      step += 1
      if pending is not None:
        log(pending)
      pending = (step, metrics)
      # Checkpoints and evals happen on confirmed-finite state only.
      if checkpointer.every and step % checkpointer.every == 0 or (eval_every and step % eval_every == 0):
        log(pending)
        pending = None
        checkpointer.save(step, state, data)
        if eval_every and step % eval_every == 0 and step < total:
          evals.append(_evaluate(task, state, step, writer, evaluate))
      if interrupt.requested() or (stop_after is not None and step >= stop_after):
        if pending is not None:
          log(pending)
        checkpointer.save(step, state, data, force=True)
        checkpointer.close()
        raise interrupt.Stopped(f"stopped at step {step}; {interrupt.RESUME_HINT}")
    if pending is not None:
      log(pending)
    checkpointer.save(step, state, data, force=True)
    checkpointer.close()
    interrupt.check(f"at step {step} before the final evaluation")
    evals.append(_evaluate(task, state, step, writer, evaluate))
    interrupt.check(f"after the final evaluation at step {step}")
    return state, evals
  finally:
    writer.close()  # flushes the event file, also when a stop or an error ends the run


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
    writer.write({"step": step, **scalars, "steps_per_s": rate, **_learning_rate(config, step)})


def _learning_rate(config, step: int) -> dict[str, float]:
  """{'lr': the base learning rate the optimizer used at `step`}, from the schedule on the host (for the logs)."""
  c = config.get("optim")
  if c is None or c.get("lr") is None:
    return {}
  lr = optim_lib.schedule(float(c.lr), c, config.num_steps)  # a float for a constant rate
  return {"lr": float(lr(max(step - 1, 0)) if callable(lr) else lr)}


def _evaluate(task, state, step, writer, evaluate):
  t = time.perf_counter()
  params = merge_params(state.params, state.frozen)
  result = dict(evaluate(params) if evaluate is not None else task.evaluate_with_state(params, state.model_state))
  if result:
    logging.info("eval at step %d (%.1fs): %s", step, time.perf_counter() - t,
                 " ".join(f"{k}={v:.4f}" for k, v in result.items() if isinstance(v, float)))
    writer.write({"step": step, "eval": result})
  return {"step": step, **result}
