"""On-the-fly FG-SBIR (seed 001): policy/head tasks on a tiny synthetic problem, sharded PPO step,
pictures, config errors, and the small experiment end to end (SynthSketch and QMUL fixtures)."""

import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import on_the_fly as otf_config
from experiments import on_the_fly_chairv2, on_the_fly_shoev2
from sgvu import experiment, export, plots, train, viz
from sgvu import main as sgvu_main
from sgvu.evaluators import on_the_fly as on_the_fly_eval
from sgvu.tasks import on_the_fly
from sgvu.tasks.on_the_fly_data import level_fractions
from tests import fixtures_data
from toy_task import DIM, LEVELS, PHOTOS, toy_level_data
from tests.test_fg_sbir import write_random_clip


def _run(config, workdir):
  """What `python -m sgvu.main` does: look the experiment up in the registry, validate, run."""
  return sgvu_main.run(config, str(workdir))


def _toy_config(num_devices=1, steps=40):
  c = otf_config.get_config("small")
  c.fg.embed_dim = DIM
  for t in (c.rl_train, c.head_train):
    t.batch_size = 16
    t.num_steps = steps
    t.log_every = steps
    t.checkpoint_every = steps
    t.sharding.num_devices = num_devices
  c.rl_train.optim.lr = 1e-2
  c.rl.tau_photos = 16
  return c


def _distorted_head(seed=3):
  """A deliberately poor start (B1's head would be here): identity plus a strong random distortion."""
  rng = np.random.default_rng(seed)
  return {"proj/kernel": (np.eye(DIM) + 0.9 * rng.normal(size=(DIM, DIM))).astype(np.float32),
          "proj/bias": np.zeros(DIM, np.float32)}


@pytest.mark.parametrize("name,gain", [("ppo", 0.1), ("vanilla-pg", 0.03)])
def test_policy_improves_m_at_b_over_its_initialisation(tmp_path, name, gain):
  config = _toy_config(steps=50)
  task = on_the_fly.PolicyTask(config, on_the_fly.METHODS[name], toy_level_data(0, 128), toy_level_data(1, 64),
                               _distorted_head())
  setup = train.build(task, config.rl_train)
  evaluate = lambda p: on_the_fly_eval.OnTheFly(task.predict_fns(), levels=task.test_data).run(p)
  before = evaluate(train.merge_params(*_split(task, train.initial_state(task, setup, 0))))
  params, evals = train.fit(task, on_the_fly.method_train_config(config, task.method), str(tmp_path),
                            evaluate=evaluate)
  after = evals[-1]
  assert after["m@B"] > before["m@B"] + gain, (before, after)
  assert after["m@A"] > before["m@A"], (before, after)
  # The mean embedding is still unit norm and the exploration noise stays positive.
  mean, log_std, _ = task.model.apply({"params": params}, jnp.asarray(task.test_data.features))
  np.testing.assert_allclose(jnp.linalg.norm(mean, axis=-1), 1.0, rtol=1e-5)
  assert np.all(np.isfinite(log_std))


def _split(task, state):
  return state.params, state.frozen


@pytest.mark.parametrize("name", ["B3", "B4"])
def test_head_tasks_start_from_b1_and_learn(tmp_path, name):
  config = _toy_config(steps=30)
  head = _distorted_head()
  task = on_the_fly.HeadTask(config, on_the_fly.METHODS[name], toy_level_data(0, 128), toy_level_data(1, 64), head)
  pre = task.pretrained()
  if name == "B4":  # every level's head starts as B1's
    chex.assert_shape(pre["heads/proj/kernel"], (LEVELS, DIM, DIM))
    np.testing.assert_array_equal(pre["heads/proj/kernel"][3], head["proj/kernel"])
  else:
    assert set(pre) == {"proj/kernel", "proj/bias"}
  setup = train.build(task, config.head_train)
  evaluate = lambda p: on_the_fly_eval.OnTheFly(task.predict_fns(), levels=task.test_data).run(p)
  before = evaluate(train.merge_params(*_split(task, train.initial_state(task, setup, 0))))
  _, evals = train.fit(task, config.head_train, str(tmp_path), evaluate=evaluate)
  assert evals[-1]["m@B"] > before["m@B"], (before, evals[-1])


def test_score_and_curves_png(tmp_path):
  data = toy_level_data(0, 10)
  embeds = np.broadcast_to(data.photos[data.targets][:, None], (10, LEVELS, DIM)).copy()
  embeds[:, 0] = data.photos[(data.targets + 1) % PHOTOS]  # level 0 retrieves the wrong photo first
  result, curves, ranks = on_the_fly_eval.score_levels(embeds, data.targets, data.photos)
  chex.assert_shape(ranks, (10, LEVELS))
  np.testing.assert_array_equal(ranks[:, 1:], 1)
  assert np.all(ranks[:, 0] > 1)
  assert result["A@1"] == 1.0 and curves["reciprocal_rank"][1] == 1.0 and curves["reciprocal_rank"][0] < 1.0
  path = tmp_path / "curves.png"
  half = {k: [v * 0.5 for v in c] for k, c in curves.items()}
  plots.completion_curves({"a": [curves], "b": [curves, half]}, level_fractions(LEVELS), str(path), title="t")
  assert path.stat().st_size > 2000
  mean, std = plots.mean_and_std([curves["percentile"], half["percentile"]])
  np.testing.assert_allclose(mean, 0.75 * np.asarray(curves["percentile"]))
  np.testing.assert_allclose(std, 0.25 * np.asarray(curves["percentile"]))  # population std, as the tables
  with pytest.raises(ValueError, match="points for"):
    plots.completion_curves({"a": [curves]}, level_fractions(LEVELS + 1), str(path))


def test_progressive_figure_rows_follow_the_strokes(tmp_path):
  strokes = [np.array([[10, 10], [100, 100]], np.float32), np.array([[200, 10], [10, 200]], np.float32),
             np.array([[128, 0], [128, 255]], np.float32)]
  gallery = np.eye(4, dtype=np.float32)

  def embed(images):  # ink amount -> which gallery item is closest
    ink = (255 - images[..., 0].astype(np.float32)).reshape(len(images), -1).sum(1)
    return np.stack([np.eye(4)[min(int(i // 5000), 3)] + 0.01 for i in ink])

  path = tmp_path / "progressive.png"
  top = viz.progressive_figure(strokes, embed, gallery, lambda j: np.full((8, 8, 3), 60 * j, np.uint8),
                               str(path), image_size=32, target=2, rows=6, k=3)
  assert len(top) == 3 and all(len(r) == 3 for r in top)  # one row per stroke count (3 < rows)
  assert path.stat().st_size > 500


@pytest.mark.parametrize("change,message", [
    (lambda c: setattr(c, "methods", ("B1", "ppox")), "ppox"),
    (lambda c: setattr(c.rl, "gamma", 1.5), "gamma"),
    (lambda c: setattr(c.rl, "baseline", "critic"), "baseline"),
    (lambda c: setattr(c.rl, "tau_photos", 1), "tau_photos"),
    (lambda c: setattr(c.rl, "num_minibatches", 3), "num_minibatches"),
    (lambda c: setattr(c.data, "categories", ("shoe", "shoox")), "shoox"),
    (lambda c: setattr(c, "levels", 1), "levels"),
    (lambda c: setattr(c.data, "dataset", "shoev2"), "root"),
    (lambda c: c.update({"baseline": "ppox"}), "config.baseline='ppox'"),
])
def test_bad_settings_fail_before_compute(tmp_path, change, message):
  config = otf_config.get_config("small")
  config.unlock()
  change(config)
  with pytest.raises(ValueError, match=message):
    _run(config, str(tmp_path))
  assert not (tmp_path / "results.json").exists()


def test_method_names_are_safe_directories():
  names = {experiment.slug(m) for m in on_the_fly.METHODS}
  assert len(names) == len(on_the_fly.METHODS)
  assert all("/" not in n and "<" not in n for n in names)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
  """A random tiny CLIP in convert_clip format: the runs need its shapes, not its knowledge."""
  return write_random_clip(str(tmp_path_factory.mktemp("clip")))


def _one_device(config):
  """End-to-end runs on one device: the sharded step is tested above, and 8 fake devices compile slowly."""
  for t in (config.fg_train, config.head_train, config.rl_train):
    t.sharding.num_devices = 1
  return config


def _results(workdir):
  with open(os.path.join(workdir, "results.json")) as f:
    return json.load(f)


def test_small_experiment_end_to_end_and_reuse(tmp_path):
  config = _one_device(otf_config.get_config("small"))
  config.methods = ("B1", "B2", "B3", "B4", "ppo")  # every kind of row; the others differ in a registry entry
  _run(config, str(tmp_path))
  results = _results(tmp_path)
  assert [r["method"] for r in results["rows"]] == list(config.methods)
  for r in results["rows"]:
    for m in on_the_fly.METRICS:
      assert 0.0 <= r[m] <= 1.0, (r["method"], m, r[m])
    assert r["A@5"] <= r["A@10"]
    assert len(r["curves"]["percentile"]) == config.levels
  assert results["levels"][-1] == 1.0
  assert (tmp_path / "on_the_fly_curves.png").stat().st_size > 2000
  assert (tmp_path / "B4" / "seed0" / "metrics.jsonl").exists()
  # Every row leaves a bundle that embeds a partial sketch as its row does: B4 = its level's head.
  b4 = export.load(str(tmp_path / "B4" / "seed0"))
  assert b4.levels == config.levels and b4.meta["method"] == "B4"
  before = os.path.getmtime(tmp_path / "ppo" / "seed0" / "result.json")
  _run(config, str(tmp_path))  # finished rows and the frozen features are reused
  assert os.path.getmtime(tmp_path / "ppo" / "seed0" / "result.json") == before
  assert _results(tmp_path)["rows"] == results["rows"]


@pytest.mark.parametrize("module,variant", [(on_the_fly_shoev2, "ShoeV2"), (on_the_fly_chairv2, "ChairV2")])
def test_qmul_configs_run_on_fixture_files(tmp_path, tiny_clip, module, variant):
  fixtures_data.write_qmul(str(tmp_path / "data"), variant, train_photos=4, test_photos=3, sketches_per_photo=2)
  config = _one_device(module.get_config("small"))
  config.data.root = str(tmp_path / "data")
  config.model.clip_init = tiny_clip
  config.methods = ("B1", "ppo")
  _run(config, str(tmp_path / "run"))
  rows = _results(tmp_path / "run")["rows"]
  assert [r["method"] for r in rows] == ["B1", "ppo"]
  assert all(0.0 <= r["m@B"] <= 1.0 for r in rows)
