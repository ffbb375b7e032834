"""Composed sketch+text retrieval (issue #12): the evaluator's ranks, the text forms, and the cstbir and
duet experiments end to end (SynthSketch `:small`, and the real-data configs on fixture files with a tiny
random transformers CLIP)."""

from __future__ import annotations

import csv
import json
import os

import fixtures_data as fx
import hf_fixtures
import numpy as np
import pytest

from experiments import cstbir, cstbir_vg, duet, duet_shoev2
from sgvu import main, metrics
from sgvu.evaluators import composed as composed_eval
from sgvu.models.clip import get_preset
from sgvu.tasks import cstbir as cstbir_task


pytestmark = pytest.mark.usefixtures("module_sgvu_cache")  # one tiny SynthSketch CLIP for every run here


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
  # A long context: the BPE fixture spells most words letter by letter.
  return hf_fixtures.write_hf_clip(str(tmp_path_factory.mktemp("hf_clip")), width=32, layers=1, context_length=64)


def _rows(workdir):
  with open(os.path.join(workdir, "results.json")) as f:
    results = json.load(f)
  return results, {r["method"]: r for r in results["rows"]}


# ----------------------------------------------------------------------------------------------- evaluator


def test_ranks_from_dot_product_scores_match_the_retrieval_metrics():
  rng = np.random.default_rng(0)
  q = rng.standard_normal((37, 8)).astype(np.float32)
  g = rng.standard_normal((23, 8)).astype(np.float32)
  g[5] = g[3]  # a tie: the lower gallery index ranks first
  targets = rng.integers(0, 23, 37)
  targets[:4] = [3, 5, 3, 5]
  q[:4] = g[3]
  unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
  ranks = composed_eval.ranks_from_scores(unit(q) @ unit(g).T, targets)
  assert ranks[0] == 1 and ranks[1] == 2
  np.testing.assert_array_equal(ranks, metrics.ranks(q, targets, g))
  ours = composed_eval.rank_metrics(ranks, (1, 5, 10), name="Acc")
  ref = metrics.instance_metrics(q, targets, g, ks=(1, 5, 10))
  for k in ("Acc@1", "Acc@5", "Acc@10", "MdR"):
    assert ours[k] == pytest.approx(ref[k]), k


def test_ranks_within_category_count_only_that_category():
  scores = np.array([[0.9, 0.8, 0.7, 0.6], [0.1, 0.9, 0.2, 0.95]])
  labels, image_labels = np.array([0, 1]), np.array([1, 0, 0, 1])
  valid = labels[:, None] == image_labels[None]
  assert list(composed_eval.ranks_from_scores(scores, np.array([2, 0]), valid)) == [2, 2]
  with pytest.raises(ValueError, match="not among its valid"):
    composed_eval.ranks_from_scores(scores, np.array([0, 0]), valid)
  with pytest.raises(ValueError, match="non-finite"):
    composed_eval.ranks_from_scores(np.array([[np.nan, 0.0]]), np.array([0]))


def test_text_forms():
  texts, labels, cats = ["a * and a red cup on a grassy field"], np.array([1]), ("cup", "ice cream")
  assert cstbir_task.text_forms(texts, labels, cats, "slot") == texts
  assert cstbir_task.text_forms(texts, labels, cats, "removed") == ["a and a red cup on a grassy field"]
  assert cstbir_task.text_forms(texts, labels, cats, "named") == ["a ice cream and a red cup on a grassy field"]


# --------------------------------------------------------------------------------------- SynthSketch runs


def test_cstbir_small_end_to_end(tmp_path):
  config = cstbir.get_config("small")
  config.methods = ("text-only", "two-stage", "tirg", "stnet")
  main.run(config, str(tmp_path))
  results, rows = _rows(tmp_path)
  assert list(rows) == list(config.methods)
  for r in rows.values():
    for label in ("1K", "5K", "open"):
      for k in (10, 20, 50, 100):
        assert 0.0 <= r[f"{label} R@{k}"] <= 1.0
      assert r[f"{label} MdR"] >= 1
  # The sketch encoder trained once, as a classifier, then frozen in every row.
  assert (tmp_path / "sketch_stage" / "DONE").exists()
  assert 0.0 <= results["sketch_classifier"]["train_acc"] <= 1.0
  vision = get_preset(config.clip_train.model).vision
  clip_params = rows["text-only"]["trainable_params"]  # both CLIP towers; no heads
  assert rows["two-stage"]["trainable_params"] == clip_params
  assert rows["tirg"]["trainable_params"] > clip_params
  # STNet adds its heads and the placeholder token, never the sketch encoder's (frozen) parameters.
  assert rows["stnet"]["trainable_params"] > clip_params
  assert vision.width > 0 and os.path.getsize(tmp_path / "retrieval_grid.png") > 1000
  assert (tmp_path / "stnet" / "seed0" / "metrics.jsonl").exists()
  assert set(results["skipped"]) == {"train", "test1k", "test5k", "open"}


def test_duet_small_end_to_end(tmp_path):
  config = duet.get_config("small")
  config.methods = ("text-only", "b-clip", "sketch-only", "pic2word", "ours")
  main.run(config, str(tmp_path))
  results, rows = _rows(tmp_path)
  assert list(rows) == list(config.methods)
  for r in rows.values():
    assert 0.0 <= r["Acc@1"] <= r["Acc@10"] <= 1.0
  assert rows["text-only"]["trainable_params"] == rows["b-clip"]["trainable_params"] == 0
  vision = get_preset(config.clip_train.model).vision
  layernorms = (2 + 2 * vision.layers) * 2 * vision.width
  assert rows["sketch-only"]["trainable_params"] == layernorms
  # ours: the image tower's LayerNorms, C_v2w, P^L and G; pic2word: C_v2w alone.
  v2w = rows["pic2word"]["trainable_params"]
  text_width = get_preset(config.clip_train.model).text.width
  assert rows["ours"]["trainable_params"] > layernorms + v2w + config.duet.num_prompts * text_width
  assert results["chance"]["Acc@1"] == pytest.approx(1 / config.data.photos_per_category)
  assert os.path.getsize(tmp_path / "retrieval_grid.png") > 1000


# ----------------------------------------------------------------------------------------- real-data configs


def _write_cstbir(root: str) -> None:
  """12 scenes over four splits; QuickDraw-style PNG sketches; one corrupt image (a counted skip)."""
  os.makedirs(os.path.join(root, "images"))
  for i in range(12):
    fx._write_photo(os.path.join(root, "images", f"{i}.jpg"), f"vg{i}")
  with open(os.path.join(root, "images", "bad.jpg"), "wb") as f:
    f.write(b"\xff\xd8 not a jpeg")
  for i in range(6):
    fx._write_sketch_png(os.path.join(root, "sketches", f"s{i}.png"), seed=i)
  rows = [("train", f"a [sketch] on the {w}", cat, f"{i}.jpg", f"s{i % 6}.png")
          for i, (w, cat) in enumerate([("road", "car"), ("table", "cup"), ("grass", "dog"), ("road", "car"),
                                        ("table", "cup"), ("grass", "dog")])]
  rows += [("test_1k", "a [sketch] on the road", "car", "6.jpg", "s0.png"),
           ("test_1k", "a [sketch] near a tree", "dog", "7.jpg", "s2.png"),
           ("test_5k", "a [sketch] on a table", "cup", "8.jpg", "s1.png"),
           ("test_5k", "a [sketch] on grass", "dog", "9.jpg", "s2.png"),
           ("open_category", "a <sketch> in the sky", "kite", "10.jpg", "s3.png"),
           ("open_category", "a <sketch> by a lake", "boat", "11.jpg", "s4.png"),
           ("train", "a [sketch] by the sea", "cup", "bad.jpg", "s1.png")]
  with open(os.path.join(root, "cstbir.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["split", "text", "object_category", "image_filename", "sketch_filename"])
    w.writerows(rows)


def test_cstbir_vg_small_on_fixture_files(tmp_path, clip_dir):
  root = str(tmp_path / "CSTBIR")
  _write_cstbir(root)
  config = cstbir_vg.get_config("small")
  config.methods = ("two-stage", "stnet")
  config.model.clip_init = "hf:" + clip_dir
  config.data.root = root
  main.run(config, str(tmp_path / "run"))
  results, rows = _rows(tmp_path / "run")
  assert list(rows) == list(config.methods)
  assert results["clip"]["source"] == "hf:" + clip_dir
  assert rows["stnet"]["1K R@10"] == 1.0  # 2 images: every target is in the top 10
  assert results["skipped"]["train"] == 0  # the corrupt image was dropped while indexing (its row is gone)


def test_cstbir_vg_needs_its_paths():
  config = cstbir_vg.get_config()
  with pytest.raises(ValueError, match="clip_init"):
    cstbir_task.validate(config)


def test_duet_shoev2_small_on_fixture_files(tmp_path, clip_dir):
  w = fx.write_qmul(str(tmp_path), "ShoeV2")
  with open(os.path.join(w["folder"], "texts.csv"), "w", newline="") as f:
    wr = csv.writer(f)
    wr.writerow(["sketch_key", "text"])
    wr.writerow([w["keys"]["test"][0], "black [sketch] with laces"])
  config = duet_shoev2.get_config("small")
  config.methods = ("b-clip", "ours")
  config.model.clip_init = "hf:" + clip_dir
  config.data.root = str(tmp_path)
  main.run(config, str(tmp_path / "run"))
  _, rows = _rows(tmp_path / "run")
  assert list(rows) == list(config.methods)
  for r in rows.values():
    assert 0.0 <= r["Acc@1"] <= r["Acc@10"] <= 1.0


def test_grid_hits_stay_in_the_category():
  from sgvu.tasks import composed_pictures
  scores = np.array([0.1, 0.9, 0.5, 0.9, 0.3])
  assert list(composed_pictures.top_hits(scores, 3)) == [1, 3, 2]
  allowed = np.array([True, False, True, False, True])
  assert list(composed_pictures.top_hits(scores, 10, allowed)) == [2, 4, 0]


def test_frozen_features_are_reused_only_for_the_same_params_and_batch():
  from sgvu.tasks import composed_common
  calls = []

  def encoder(params, x):
    calls.append(1)
    return x * params["w"]

  cached = composed_common.FrozenFeatures(encoder)
  x = np.arange(6, dtype=np.float32).reshape(2, 3)
  p = {"w": np.float32(2.0)}
  np.testing.assert_array_equal(cached(p, x), x * 2)
  np.testing.assert_array_equal(cached({"w": np.float32(2.0)}, x.copy()), x * 2)  # equal content: a hit
  assert len(calls) == 1 and cached.hits == 1
  np.testing.assert_array_equal(cached({"w": np.float32(3.0)}, x), x * 3)  # changed tower: recomputed
  np.testing.assert_array_equal(cached(p, x + 1), (x + 1) * 2)  # another batch: recomputed
  assert len(calls) == 3
