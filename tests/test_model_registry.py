"""Models rebuilt from JSON (sgvu.models.registry), the on-the-fly query encoder, and no import cycles in sgvu/."""

import ast
import json
import os
import pathlib
import subprocess
import sys

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from sgvu.models import registry
from sgvu.models.clip import CLIP, get_preset
from sgvu.models.fg_sbir import FGSBIRModel
from sgvu.models.heads import EmbeddingHead, LevelHeads, SmallCNN
from sgvu.models.level_query import LevelQuery, level_of_fraction
from sgvu.models.policy import GaussianPolicy
from sgvu.models.prompted import PromptedImageEncoder
from sgvu.models.text import TextTransformer
from sgvu.models.vit import VisionTransformer

ROOT = pathlib.Path(__file__).resolve().parents[1]
CFG = get_preset("tiny")
BACKBONE = FGSBIRModel("cnn", cnn_widths=(8, 16), feature_dim=12, embed_dim=6)

EXAMPLES = {
    "clip": [CLIP(CFG), CLIP(get_preset("synth-s", dtype="bfloat16", remat=True))],
    "vision_transformer": [VisionTransformer(CFG.vision)],
    "text_transformer": [TextTransformer(CFG.text.replace(pool="argmax"))],
    "prompted_image_encoder": [PromptedImageEncoder(CFG.vision, prompts="deep", num_prompts=2, linear_head=True)],
    "fg_sbir": [BACKBONE, FGSBIRModel("clip", CFG.vision, num_prompts=0, use_head=False, attention=True),
                FGSBIRModel("cnn", cnn_widths=(4, 8, 16), shared=False)],
    "small_cnn": [SmallCNN((8, 16), 10)],
    "embedding_head": [EmbeddingHead(8, hidden=16)],
    "level_heads": [LevelHeads(8, levels=5)],
    "gaussian_policy": [GaussianPolicy(8, init_log_std=-2.0, critic=True)],
    "level_query": [LevelQuery(BACKBONE, LevelHeads(8, 5, 4)), LevelQuery(BACKBONE, EmbeddingHead(8)),
                    LevelQuery(FGSBIRModel("clip", CFG.vision), GaussianPolicy(8))],
}


def test_every_model_round_trips_through_json():
  assert set(EXAMPLES) == set(registry.MODELS)
  for name, models in EXAMPLES.items():
    for model in models:
      spec = registry.describe(model)
      assert spec["name"] == name
      text = json.dumps(spec)  # JSON-able as is
      again = registry.build(json.loads(text))
      assert again == model, (name, spec)
      assert type(again) is type(model) and registry.describe(again) == spec
  spec = registry.describe(EXAMPLES["fg_sbir"][2])["config"]
  assert spec["cnn_widths"] == [4, 8, 16] and spec["vision"] is None
  nested = registry.describe(EXAMPLES["level_query"][2])["config"]
  assert nested["backbone"]["config"]["vision"]["embed_dim"] == CFG.embed_dim
  assert nested["head"] == {"name": "gaussian_policy", "config": {
      "dim": 8, "hidden": 0, "init_log_std": -3.0, "critic": False, "critic_hidden": 64}}


def test_rebuilt_model_computes_the_same():
  model = EXAMPLES["fg_sbir"][2]  # unshared CNNs: the photo branch has its own weights
  x = jax.random.uniform(jax.random.key(1), (2, 24, 24, 3))
  params = model.init(jax.random.key(0), x, x, method=FGSBIRModel.embed_both)["params"]
  again = registry.build(json.loads(json.dumps(registry.describe(model))))
  chex.assert_trees_all_equal(again.apply({"params": params}, x, "photo"), model.apply({"params": params}, x, "photo"))


def test_registry_errors_name_the_problem():
  with pytest.raises(ValueError, match=r"Unknown model 'fgsbir'; valid: \['clip', .*'fg_sbir'"):
    registry.build({"name": "fgsbir", "config": {}})
  with pytest.raises(ValueError, match=r"EmbeddingHead: unknown config keys \['dims'\]; valid: \['dim', 'hidden'\]"):
    registry.build({"name": "embedding_head", "config": {"dims": 3}})
  spec = registry.describe(EXAMPLES["fg_sbir"][1])
  spec["config"]["vision"]["widht"] = 3
  with pytest.raises(ValueError, match=r"FGSBIRModel.vision: VisionConfig: unknown keys \['widht'\]"):
    registry.build(spec)
  spec = registry.describe(CLIP(CFG))
  spec["config"]["config"]["text"]["pool"] = "mean"
  with pytest.raises(ValueError, match=r"CLIP.config: Invalid TextConfig: pool 'mean'"):
    registry.build(spec)
  spec = registry.describe(EXAMPLES["level_query"][0])
  spec["config"]["head"]["config"]["levls"] = 5
  with pytest.raises(ValueError, match=r"LevelQuery.head: LevelHeads: unknown config keys \['levls'\]"):
    registry.build(spec)
  with pytest.raises(ValueError, match="needs 'name'"):
    registry.build({"config": {}})
  with pytest.raises(ValueError, match="EmbeddingHead: .*missing 1 required positional argument: 'dim'"):
    registry.build({"name": "embedding_head", "config": {}})
  with pytest.raises(ValueError, match="Dense is not a registered model; registered: "):
    registry.describe(nn.Dense(3))


# ----------------------------------------------------------------------------
# LevelQuery = what an on-the-fly row's search embeds (tasks.on_the_fly + tools.search).


def _row_task(kind: str, features: np.ndarray, hidden: int):
  """The on-the-fly row task whose embed_levels the search uses (config: only what the tasks read)."""
  from sgvu.tasks import on_the_fly  # pylint: disable=g-import-not-at-top
  config = ml_collections.ConfigDict({"fg": {"embed_dim": 8, "head_hidden": hidden},
                                      "rl": {"init_log_std": -3.0, "learn_std": False}})
  data = on_the_fly.LevelData(features, np.zeros(len(features), np.int32), np.eye(8, dtype=np.float32)[:3],
                              np.zeros(3, np.int32))
  method = {"B3": on_the_fly.METHODS["B3"], "B4": on_the_fly.METHODS["B4"],
            "policy": on_the_fly.METHODS["vanilla-pg"]}[kind]
  cls = on_the_fly.PolicyTask if kind == "policy" else on_the_fly.HeadTask
  return cls(config, method, data, data, None)


@pytest.mark.parametrize("kind,hidden", [("B4", 5), ("B3", 0), ("policy", 4)])
def test_level_query_matches_the_on_the_fly_rows(kind, hidden):
  levels, n = 4, 6
  images = jax.random.uniform(jax.random.key(2), (n, 24, 24, 3)) * 2 - 1
  backbone_params = BACKBONE.init(jax.random.key(0), images, images, method=FGSBIRModel.embed_both)["params"]
  features = BACKBONE.apply({"params": backbone_params}, images, "sketch", method=FGSBIRModel.features)
  task = _row_task(kind, np.zeros((2, levels, features.shape[-1]), np.float32), hidden)
  head_params = task.init_params(jax.random.key(3))
  # Untrained heads are near-identical per level: make each level's head clearly its own.
  head_params = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.key(p.size), p.shape), head_params)
  fractions = np.array([0.1, 0.25, 0.5, 0.6, 0.9, 1.0], np.float32)

  # tools/search.py InstanceSearcher._embed_batch: every level's embedding of the features, then the row's level.
  embeds = jax.jit(task.embed_levels)(head_params, jnp.repeat(features[:, None], levels, axis=1))
  level = np.clip(np.round(fractions * levels).astype(np.int32) - 1, 0, levels - 1)
  expected = np.asarray(embeds)[np.arange(n), level]

  query = LevelQuery(BACKBONE, task.model)
  assert registry.build(json.loads(json.dumps(registry.describe(query)))) == query
  np.testing.assert_array_equal(level_of_fraction(fractions, levels), level)
  variables = {"params": {"backbone": backbone_params, "head": head_params}}
  got = jax.jit(query.apply)(variables, images, level_of_fraction(fractions, levels))
  chex.assert_shape(got, (n, 8))
  np.testing.assert_allclose(got, expected, atol=1e-6)
  np.testing.assert_allclose(jnp.linalg.norm(got, axis=-1), 1.0, rtol=1e-5)
  if kind == "B4":  # the level matters: another level's head gives another embedding
    other = query.apply(variables, images, (level_of_fraction(fractions, levels) + 1) % levels)
    assert float(jnp.max(jnp.abs(other - got))) > 1e-3
  # The gallery side is the backbone's photo branch.
  chex.assert_trees_all_close(query.apply(variables, images, method=LevelQuery.embed_photos),
                              BACKBONE.apply({"params": backbone_params}, images, "photo"), atol=1e-6)


# ----------------------------------------------------------------------------
# No import cycles.


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(ROOT).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
  """module -> the sgvu modules it imports (anywhere in the file: top level, functions, TYPE_CHECKING)."""
  files = {_module_name(p): p for p in (ROOT / "sgvu").rglob("*.py")}
  graph = {}
  for name, path in files.items():
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    edges = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      if isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative import
          up = package.split(".")
          base = ".".join(up[:len(up) - node.level + 1] + ([base] if base else []))
        # `from pkg import sub` imports module pkg.sub when that is a module, else a name of pkg.
        targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
      else:
        continue
      edges.update(t for t in targets if t in files and t != name)
    graph[name] = edges
  return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """One import cycle [a, b, ..., a], or None."""
  state, stack = {}, []

  def visit(node):
    state[node] = "open"
    stack.append(node)
    for nxt in sorted(graph[node]):
      if state.get(nxt) == "open":
        return stack[stack.index(nxt):] + [nxt]
      if nxt not in state:
        found = visit(nxt)
        if found:
          return found
    stack.pop()
    state[node] = "done"
    return None

  for node in sorted(graph):
    if node not in state:
      found = visit(node)
      if found:
        return found
  return None


def test_cycle_finder_finds_a_cycle():
  assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
  assert find_cycle({"a": {"b"}, "b": set()}) is None
  graph = import_graph()
  assert "sgvu.models.vit" in graph["sgvu.models.clip"] and "sgvu.models.clip" not in graph["sgvu.models.vit"]


def test_no_import_cycle_in_sgvu():
  cycle = find_cycle(import_graph())
  assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_models_do_not_import_tasks_and_each_imports_alone():
  graph = import_graph()
  models = sorted(m for m in graph if m.startswith("sgvu.models"))
  assert "sgvu.models.registry" in models
  for m in models:
    assert not any(t.startswith(("sgvu.tasks", "sgvu.tools", "sgvu.train")) for t in graph[m]), (m, graph[m])
  # Each module imports in a fresh interpreter on its own (no order dependence), and pulls in no task.
  code = ("import importlib, sys; importlib.import_module(sys.argv[1]); "
          "bad = [m for m in sys.modules if m.startswith(('sgvu.tasks', 'sgvu.tools'))]; "
          "assert not bad, bad")
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  failed = {}
  for start in range(0, len(models), 4):  # 4 interpreters at a time
    procs = {m: subprocess.Popen([sys.executable, "-c", code, m], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT) for m in models[start:start + 4]}
    for m, p in procs.items():
      out = p.communicate(timeout=300)[0].decode()
      if p.returncode:
        failed[m] = out[-2000:]
  assert not failed, failed


def test_layers_import_only_downwards():
  """data -> models -> tasks -> runner/evaluators -> tools (docs/architecture.md): tools load bundles,
  never a task; the runner, evaluators and bundles know no task; data knows no model."""
  graph = import_graph()
  rules = {("sgvu.tools", "sgvu.evaluators", "sgvu.experiment", "sgvu.export"): ("sgvu.tasks",),
           ("sgvu.data", "sgvu.metrics"): ("sgvu.models", "sgvu.tasks", "sgvu.tools", "sgvu.train"),
           ("sgvu.models",): ("sgvu.tasks", "sgvu.tools", "sgvu.train", "sgvu.experiment")}
  # The runner's code hash looks a task's module up by name (experiment.code_version): the registry is a
  # name -> module-name map that imports no task, so it is the one allowed way down.
  allowed = {"sgvu.tasks.registry"}
  for owners, banned in rules.items():
    for module, targets in graph.items():
      if module.startswith(owners):
        bad = sorted(t for t in targets if t.startswith(banned) and t not in allowed)
        assert not bad, f"{module} imports {bad}"


def test_modules_stay_small():
  big = {str(p.relative_to(ROOT)): n for p in (ROOT / "sgvu").rglob("*.py")
         if (n := len(p.read_text().splitlines())) > 450}
  assert not big, big
