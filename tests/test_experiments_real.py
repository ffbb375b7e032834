"""The real-data ZS-SBIR configs end to end: tiny copies of Sketchy, TU-Berlin and
QuickDraw in their original layouts, a tiny random transformers CLIP, 2 steps.

Each run goes through `sgvu.main.run` exactly as `python -m sgvu.main
--config=experiments/<name>.py:small --config.model.clip_init=hf:DIR
--config.data.root=ROOT` would.
"""

from __future__ import annotations

import importlib
import json
import os

import fixtures_data
import hf_fixtures
import numpy as np
import pytest

from sgvu import main
from sgvu.data import configured
from sgvu.data.images import class_key
from sgvu.tasks import zs_sbir

WIDTH, LAYERS = 32, 1  # of the tiny CLIP's image tower


def load_config(name: str, arg: str = ""):
  return importlib.import_module(f"experiments.{name}").get_config(arg)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
  return hf_fixtures.write_hf_clip(str(tmp_path_factory.mktemp("hf_clip")), width=WIDTH, layers=LAYERS)


# name -> (writer of the tiny copy, unseen classes it holds, seen classes it holds).
DATASETS = {
    "zs_sbir_sketchy": (fixtures_data.write_sketchy, {"bat", "cow"},
                        {"airplane", "car_(sedan)", "hot-air_balloon"}),
    "zs_sbir_tuberlin": (fixtures_data.write_tuberlin, {"trombone", "hot air balloon"},
                         {"airplane", "alarm clock", "mouse (animal)"}),
    "zs_sbir_quickdraw": (fixtures_data.write_quickdraw, {"bat", "palm_tree", "fire_hydrant"},
                          {"airplane", "eiffel_tower", "crocodilian"}),
    "fg_zs_sbir_sketchy": (fixtures_data.write_sketchy, {"bat", "cow"},
                           {"airplane", "car_(sedan)", "hot-air_balloon"}),
}


def small_config(name, clip_dir, root):
  c = load_config(name, "small")
  c.model.clip_init = "hf:" + clip_dir
  c.data.root = root
  return c


def test_paper_setting():
  for name in DATASETS:
    c = load_config(name)
    assert c.task == "zs_sbir" and c.name == name
    assert c.data.image_size == 224 and not c.data.materialize
    assert c.method.num_prompts == 3 and c.method.margin == pytest.approx(0.2)
    assert c.zs_train.optim.name == "adam" and c.zs_train.optim.lr == pytest.approx(1e-4)
    assert c.method.layernorm_lr == pytest.approx(1e-6) and c.zs_train.optim.weight_decay == 0
    assert c.zs_train.batch_size == 192
    assert c.model.clip_init == "" and c.data.root == ""  # the user's to give
    assert c.grid_method in c.methods and "frozen" in c.methods
    assert not set(c.methods) - set(zs_sbir.METHODS[c.level]), name
  fg = load_config("fg_zs_sbir_sketchy")
  assert (fg.level, fg.pairing, fg.data.dataset) == ("instance", "instance", "sketchy")
  assert {"ours-no-patch-shuffle", "ours-no-fdiv"} <= set(fg.methods)
  for bad in ("tiny", "small-typo"):
    with pytest.raises(ValueError, match=f"unknown variant '{bad}'.*'small'"):
      load_config("zs_sbir_sketchy", bad)
  assert load_config("zs_sbir_sketchy", "small").smoke_test and not load_config("zs_sbir_sketchy").smoke_test


def test_validate_names_the_missing_keys(clip_dir):
  for name in DATASETS:
    c = load_config(name, "small")
    c.data.root = "/nowhere"
    with pytest.raises(ValueError, match="config.model.clip_init"):
      zs_sbir.validate(c)
    c = load_config(name, "small")
    c.model.clip_init = "hf:" + clip_dir
    # Before any compute: in validate, not in run (which first loads the CLIP weights).
    with pytest.raises(ValueError, match="config.data.root"):
      zs_sbir.validate(c)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_small_run(name, clip_dir, tmp_path):
  write, unseen, seen = DATASETS[name]
  write(str(tmp_path / "data"))
  config = small_config(name, clip_dir, str(tmp_path / "data"))
  workdir = str(tmp_path / "run")

  # The evaluated split is the standard unseen one, its labels naming unseen classes.
  # (Readers name classes by their folder/file: compare spelling-insensitively.)
  source = configured.source_from_config(config.data)
  test, train = source.split("test"), source.split("train")
  keys = lambda names: {class_key(n) for n in names}
  assert keys(unseen) <= keys(test.categories) and not keys(unseen) & keys(train.categories)
  for split, expected in ((test, unseen), (train, seen)):
    assert keys(source.categories[s.label] for s in split.sketches) == keys(expected)
    assert keys(source.categories[p.label] for p in split.photos) == keys(expected)

  out = main.run(config, workdir)
  with open(os.path.join(workdir, "results.json")) as f:
    results = json.load(f)
  assert results["experiment"] == config.name and results["level"] == config.level
  rows = {r["method"]: r for r in results["rows"]}
  assert list(rows) == list(config.methods) == [r["method"] for r in out["rows"]]
  metrics = zs_sbir.INSTANCE_METRICS if config.level == "instance" else zs_sbir.CATEGORY_METRICS
  for row in rows.values():
    assert row["split"] == "unseen"
    for m in metrics:
      assert 0.0 <= row[m] <= 1.0, (m, row)
  if config.level == "instance":
    # Each unseen class has 3 photos (2 + 1 extended): every true photo is in the top 5.
    assert rows["frozen"]["Acc@5"] == 1.0
  else:
    assert rows["frozen"]["mAP@all"] > 0.0
    # The gallery is smaller than 100: P@100 = (photos of the query's class) / gallery size.
    photos_of = np.bincount([p.label for p in test.photos], minlength=len(source.categories))
    expected = np.mean([photos_of[s.label] / len(test.photos) for s in test.sketches])
    for row in rows.values():
      assert row["P@100"] == pytest.approx(expected, abs=1e-6)

  # 'frozen' trains nothing; the trained row tunes exactly the prompts and LayerNorms.
  assert rows["frozen"]["trainable_params"] == 0
  prompts = 2 * config.method.num_prompts * WIDTH
  layernorms = (2 + 2 * LAYERS) * 2 * WIDTH  # ln_pre, ln_post, ln_1/ln_2 per block; scale + bias
  assert rows[config.grid_method]["trainable_params"] == prompts + layernorms

  trained = os.path.join(workdir, config.grid_method, "seed0")  # the row's first (only) seed
  assert sorted(os.listdir(os.path.join(trained, "checkpoints"))) == ["2"]
  with open(os.path.join(trained, "metrics.jsonl")) as f:
    steps = [json.loads(l).get("step") for l in f if '"loss"' in l]
  assert steps == [1, 2]
  assert os.path.getsize(os.path.join(workdir, "retrieval_grid.png")) > 0
