"""Evaluators by name, configured under `config.evals` (in the spirit of big_vision's evaluators/).

  c.evals.retrieval = ConfigDict({"type": "category_retrieval", "ks": (100, 200)})

Each evaluator is built from a task's predict functions (`embed_sketch`,
`embed_photo`, `embed_text`, `embed_levels`: pure functions of
(params, inputs)) and the data it scores on; `run(params)` returns metrics
(fractions, plus non-scalar extras such as curves). No metric is written here:
they all come from `sgvu.metrics`.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable, Mapping

from sgvu.evaluators.on_the_fly import OnTheFly
from sgvu.evaluators.retrieval import CategoryRetrieval, InstanceRetrieval
from sgvu.evaluators.zero_shot import ZeroShot

EVALUATORS: dict[str, type] = {
    "category_retrieval": CategoryRetrieval,
    "instance_retrieval": InstanceRetrieval,
    "on_the_fly": OnTheFly,
    "zero_shot": ZeroShot,
}


def get(kind: str) -> type | None:
  """The evaluator class of `type: kind`: from EVALUATORS, else by convention from the module
  sgvu/evaluators/<kind>.py's EVALUATOR, so a new evaluator needs no edit here (an edit here changes
  the code hash of every table). The task using it imports that module, so its tables hash it."""
  if kind in EVALUATORS:
    return EVALUATORS[kind]
  if not isinstance(kind, str) or not kind.isidentifier():
    return None
  try:
    module = importlib.import_module(f"sgvu.evaluators.{kind}")
  except ModuleNotFoundError as e:
    if e.name != f"sgvu.evaluators.{kind}":
      raise
    return None
  return getattr(module, "EVALUATOR", None)


def _options(spec: Mapping[str, Any]) -> dict[str, Any]:
  options = spec.to_dict() if hasattr(spec, "to_dict") else dict(spec)
  options.pop("type", None)
  return options


def validate(evals: Mapping[str, Any], where: str = "config.evals") -> None:
  """Raises naming the evaluator and key on an unknown type or option (before any compute)."""
  if not evals:
    raise ValueError(f"{where} is empty: name at least one evaluator")
  for name, spec in evals.items():
    kind = spec.get("type") if hasattr(spec, "get") else None
    cls = get(kind)
    if cls is None:
      raise ValueError(f"{where}.{name}.type={kind!r}; valid: {sorted(EVALUATORS)} or a module "
                       "sgvu/evaluators/<type>.py defining EVALUATOR")
    accepted = inspect.signature(cls.__init__).parameters
    for key in _options(spec):
      if key not in accepted or accepted[key].kind is not inspect.Parameter.KEYWORD_ONLY:
        valid = sorted(k for k, p in accepted.items() if p.kind is inspect.Parameter.KEYWORD_ONLY)
        raise ValueError(f"{where}.{name}.{key}: not an option of {kind!r}; valid: {valid}")


def build(evals: Mapping[str, Any], predict_fns: Mapping[str, Callable], **data) -> dict[str, Any]:
  """{name: evaluator} from config.evals; `data` holds what evaluators score on (source, image_size, levels)
  and defaults (batch_size, strict) that an evaluator's own options override."""
  validate(evals)
  out = {}
  for name, spec in evals.items():
    cls = get(spec["type"])
    wanted = inspect.signature(cls.__init__).parameters
    given = {k: v for k, v in data.items() if k in wanted}
    out[name] = cls(predict_fns, **{**given, **_options(spec)})  # the config's options win
  return out


def run_all(evaluators: Mapping[str, Any], params) -> dict[str, Any]:
  """Every evaluator's metrics, merged (names must not collide)."""
  merged: dict[str, Any] = {}
  for name, evaluator in evaluators.items():
    result = evaluator.run(params)
    clash = sorted(set(result) & set(merged))
    if clash:
      raise ValueError(f"evaluator {name!r} reports {clash}, already reported by another evaluator")
    merged.update(result)
  return merged
