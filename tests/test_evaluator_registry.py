"""Evaluators by name (sgvu/evaluators/__init__.py): the registry, the module convention, bad specs."""

import sys
import types

import pytest

from sgvu import evaluators
from sgvu.evaluators.retrieval import CategoryRetrieval


class _Toy:
  def __init__(self, predict_fns, *, scale=1.0):
    self.scale = scale

  def run(self, params):
    return {"toy": self.scale * params}


@pytest.fixture
def toy_module(monkeypatch):
  module = types.ModuleType("sgvu.evaluators.toy_eval")
  module.EVALUATOR = _Toy
  monkeypatch.setitem(sys.modules, "sgvu.evaluators.toy_eval", module)
  return module


def test_registered_names_resolve():
  assert evaluators.get("category_retrieval") is CategoryRetrieval


def test_a_module_named_like_the_type_is_found_without_registering(toy_module):
  assert "toy_eval" not in evaluators.EVALUATORS
  evals = evaluators.build({"t": {"type": "toy_eval", "scale": 2.0}}, {})
  assert evaluators.run_all(evals, 3.0) == {"toy": 6.0}
  with pytest.raises(ValueError, match=r"config.evals.t.scal: not an option of 'toy_eval'"):
    evaluators.validate({"t": {"type": "toy_eval", "scal": 2.0}})


@pytest.mark.parametrize("kind", ["no_such_evaluator", "../x", None, "retrieval"])
def test_unknown_types_name_the_key(kind):
  # 'retrieval' is a module of sgvu/evaluators without an EVALUATOR: not a type either.
  with pytest.raises(ValueError, match=r"config.evals.e.type="):
    evaluators.validate({"e": {"type": kind}})
