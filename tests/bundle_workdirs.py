"""Tiny runner-layout workdirs with exported bundles (untrained models), for the tools that load bundles.

A zs_sbir-like workdir (a prompted ViT; rows 'random' without a bundle,
'frozen', 'ours') and an on_the_fly-like one whose query model has one head per
completion level (B1, B4, ppo): W/config.json, W/results.json and
W/<slug(method)>/seed<k>/bundle, as `python -m sgvu.main` leaves them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import flax.linen as nn
import jax
import numpy as np
import pytest

from sgvu import export
from sgvu.data import configured, pipeline
from sgvu.models import get_preset
from sgvu.models.fg_sbir import FGSBIRModel
from sgvu.models.heads import LevelHeads
from sgvu.models.level_query import LevelQuery
from sgvu.models.prompted import PromptedImageEncoder

CATEGORIES = ["airplane", "anchor", "door", "guitar", "helicopter"]  # 2 seen, 3 unseen (the test split)
DATA = {"dataset": "synth", "synth_seed": 0, "photos_per_category": 2, "sketches_per_photo": 1,
        "materialize": False, "strict": True, "source_options": {"protocol": "zero_shot", "categories": CATEGORIES}}
SIZE = 32
LEVELS = 4


def source():
  data = dict(DATA)
  return configured.source_from_config(data, materialize=False, **data.pop("source_options"))


def random_params(model, *args, method=None, seed=0):
  """Parameters of model's shapes without running its init (compiling init costs more than the whole test)."""
  shapes = jax.eval_shape(lambda: nn.unbox(model.init(jax.random.key(0), *args, method=method)["params"]))
  rng = np.random.default_rng(seed)

  def leaf(path, s):
    name = path[-1].key
    if name in ("scale", "bias"):
      return np.full(s.shape, 1.0 if name == "scale" else 0.0, np.float32)
    fan_in = int(np.prod(s.shape[:-1])) if len(s.shape) > 1 else 1
    return (rng.standard_normal(s.shape) / np.sqrt(fan_in)).astype(np.float32)
  return jax.tree_util.tree_map_with_path(leaf, shapes)


def _saver(directory, model, params, query, gallery):
  """save(directory, method): a bundle as the tasks export one, the test photos embedded by its gallery branch."""
  src = source()
  split = src.split("test")
  keys = np.asarray([p.key for p in split.photos])
  labels = np.asarray([p.label for p in split.photos])
  meta = {"experiment": "toy", "task": "toy", "method": "?", "seed": 0, "step": 3, "image_size": SIZE,
          "query": query, "gallery": gallery, "data": DATA, "split": "test", "categories": list(src.categories)}
  placeholder = export.Gallery(np.zeros((len(keys), 1), np.float32), labels, np.arange(len(keys)), keys)
  export.save(directory, model=model, params=params, meta=meta, gallery=placeholder)
  photos = np.stack([pipeline.load_photo(src, p, SIZE) for p in split.photos])
  embeds = export.load(directory).embed_photos(photos, batch_size=8)
  shutil.rmtree(directory)

  def save(row_bundle, method):
    export.save(row_bundle, model=model, params=params, meta={**meta, "method": method},
                gallery=export.Gallery(embeds, labels, np.arange(len(keys)), keys))
  return save


def _workdir(root, config, rows, bundles):
  os.makedirs(root)
  with open(os.path.join(root, "config.json"), "w") as f:
    json.dump(config, f)
  with open(os.path.join(root, "results.json"), "w") as f:
    json.dump({"rows": [{"method": m, "split": "test", "seeds": 1} for m in rows]}, f)
  for method, save in bundles.items():
    save(os.path.join(root, method, "seed0", export.BUNDLE_DIR), method)
  return str(root)


def make_zs_workdir(tmp) -> str:
  """tmp: a pathlib.Path to build in."""
  model = PromptedImageEncoder(get_preset("tiny").vision, prompts="shallow", num_prompts=2)
  x = np.zeros((1, SIZE, SIZE, 3), np.float32)
  spec = dict(query={"method": "__call__", "kwargs": {"modality": "sketch"}, "levels": 0},
              gallery={"method": "__call__", "kwargs": {"modality": "photo"}})
  saves = {m: _saver(str(tmp / m), model, random_params(model, x, x, method=PromptedImageEncoder.encode_both,
                                                         seed=i), **spec)
           for i, m in enumerate(("frozen", "ours"))}
  return _workdir(tmp / "w", {"task": "zs_sbir", "methods": ["random", "frozen", "ours"], "grid_method": "ours"},
                  ["random", "frozen", "ours"], saves)


def _level_model():
  return LevelQuery(FGSBIRModel(encoder="cnn", cnn_widths=(8, 16), feature_dim=16, embed_dim=8),
                    LevelHeads(dim=8, levels=LEVELS))


def make_otf_workdir(tmp) -> str:
  model = _level_model()
  x, lv = np.zeros((1, SIZE, SIZE, 3), np.float32), np.zeros((1,), np.int32)
  params = random_params(model, x, lv, method=lambda m, x, lv: (m(x, lv), m.embed_photos(x)))
  save = _saver(str(tmp / "b"), model, params, query={"method": "__call__", "kwargs": {}, "levels": LEVELS},
                gallery={"method": "embed_photos", "kwargs": {}})
  return _workdir(tmp / "w", {"task": "on_the_fly", "methods": ["B4", "ppo"]}, ["B4", "ppo"],
                  {"B1": save, "B4": save, "ppo": save})


@pytest.fixture(scope="module")
def zs_workdir(tmp_path_factory):
  return make_zs_workdir(tmp_path_factory.mktemp("zs"))


@pytest.fixture(scope="module")
def otf_workdir(tmp_path_factory):
  return make_otf_workdir(tmp_path_factory.mktemp("otf"))


def start_server(args) -> tuple[subprocess.Popen, str]:
  """`python -m sgvu.tools.serve --port 0 ARGS` in a subprocess: (process, its URL) once it listens."""
  proc = subprocess.Popen([sys.executable, "-m", "sgvu.tools.serve", "--port", "0", *args], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  lines = []
  for line in proc.stdout:
    lines.append(line)
    if line.startswith("serving on "):
      return proc, line.split()[-1]
  proc.wait(timeout=30)
  raise AssertionError("server did not start:\n" + "".join(lines))
