"""python -m sgvu.tools.search on a workdir of `experiments/zs_sbir.py:small`.

The oracle is the experiment itself: querying with the test sketches (as
QuickDraw-format stroke files) must give back the mAP that the run wrote to
results.json, which only holds if the tool restores the trained parameters,
embeds the right gallery and renders a sketch as training did.

The run uses a tiny random transformers CLIP (`model.clip_init=hf:`) instead
of pretraining the SynthSketch CLIP: that would cost minutes here, and the
tool's lookup of the pretrained-CLIP cache is tested on its own below.
"""

from __future__ import annotations

import importlib.util
import json
import os

import chex
import hf_fixtures
import ml_collections
import numpy as np
import pytest
from PIL import Image

from sgvu import main as sgvu_main
from sgvu import metrics
from sgvu.data import strokes as strokes_lib
from sgvu.tasks import clip_pretrain, common
from sgvu.tools import search

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = ("frozen", "ours")


def small_config():
  spec = importlib.util.spec_from_file_location("zs_sbir_config", os.path.join(ROOT, "experiments", "zs_sbir.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config("small")


@pytest.fixture(scope="module", autouse=True)
def compilation_cache(tmp_path_factory):
  """The tool compiles the encoders the run compiled: reuse them."""
  with hf_fixtures.persistent_compilation_cache(str(tmp_path_factory.mktemp("jax_cache"))):
    yield


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, compilation_cache):
  config = small_config()
  config.methods = METHODS
  config.model.clip_init = "hf:" + hf_fixtures.write_hf_clip(str(tmp_path_factory.mktemp("hf_clip")), layers=1)
  w = str(tmp_path_factory.mktemp("zs_sbir_small"))
  sgvu_main.run(config, w)
  return w


def test_finds_the_pretrained_synth_clip_of_a_workdir(tmp_path, monkeypatch):
  config = small_config()
  # config.json (tuples -> lists) must lead to the cache entry the run trained.
  saved = ml_collections.ConfigDict(json.loads(config.to_json_best_effort()))
  monkeypatch.setenv("SGVU_CACHE", str(tmp_path))
  directory = clip_pretrain.cache_directory(config.pretrain)
  assert clip_pretrain.cache_directory(saved.pretrain) == directory
  with pytest.raises(search.SearchError, match="SGVU_CACHE") as e:
    search.clip_spec(saved)
  assert directory in str(e.value)
  os.makedirs(directory)
  open(os.path.join(directory, clip_pretrain.DONE_FILE), "w").close()
  assert search.clip_spec(saved) == os.path.join(directory, "clip")
  saved.model.clip_init = "hf:/my/clip"
  assert search.clip_spec(saved) == "hf:/my/clip"


@pytest.fixture(scope="module")
def searchers(workdir):
  return {m: search.Searcher(workdir, m) for m in METHODS}


@pytest.fixture(scope="module")
def test_sketches(searchers, tmp_path_factory):
  """Every test sketch of the run's source as a .json stroke file, with its label."""
  source = searchers["frozen"].task.source
  folder = tmp_path_factory.mktemp("queries")
  paths, labels = [], []
  for i, item in enumerate(source.split("test").sketches):
    path = str(folder / f"q{i}.json")
    with open(path, "w") as f:
      json.dump({"word": source.categories[item.label],
                 "drawing": strokes_lib.to_quickdraw(source.load_sketch(item).strokes, as_int=False)}, f)
    paths.append(path)
    labels.append(item.label)
  return paths, np.asarray(labels)


def _results(workdir):
  with open(os.path.join(workdir, "results.json")) as f:
    return {r["method"]: r for r in json.load(f)["rows"]}


@pytest.mark.parametrize("method", METHODS)
def test_queries_reproduce_the_runs_map(workdir, searchers, test_sketches, method):
  paths, labels = test_sketches
  searcher = searchers[method]
  queries = np.stack([search.load_query(p, searcher.image_size) for p in paths])
  q = searcher.embed_sketches(queries)
  g, gl, gi = searcher.gallery
  chex.assert_shape(q, (len(paths), searcher.task.clip_cfg.embed_dim))
  chex.assert_shape(g, (len(searcher.split.photos), q.shape[1]))
  got = metrics.retrieval_metrics(q, labels, g, gl, ks=(100, 200))
  want = _results(workdir)[method]
  for key in ("mAP@all", "mAP@200", "P@100"):
    assert got[key] == pytest.approx(want[key], abs=1e-5), key
  # The ranked hits are the gallery's order by cosine similarity.
  hits = searcher.search(queries[:4], top=5)
  idx, scores = metrics.topk(q[:4], g, 5)
  assert [[h["gallery_row"] for h in row] for row in hits] == idx.tolist()
  assert [h["rank"] for h in hits[0]] == [1, 2, 3, 4, 5]
  np.testing.assert_allclose([[h["score"] for h in row] for row in hits], scores, rtol=1e-5, atol=1e-6)
  assert all(h["category"] == searcher.task.source.categories[gl[h["gallery_row"]]] for h in hits[0])


def test_trained_params_not_the_pretrained(workdir, searchers, test_sketches):
  paths, _ = test_sketches
  frozen, ours = searchers["frozen"], searchers["ours"]
  assert search.Searcher(workdir).method == "ours" == ours.config.grid_method  # the default
  assert frozen.step == search.PRETRAINED_STEP
  assert ours.step == ours.config.train.num_steps == sorted(map(int, os.listdir(f"{workdir}/ours/checkpoints")))[-1]
  queries = np.stack([search.load_query(p, ours.image_size) for p in paths[:4]])
  assert np.abs(ours.embed_sketches(queries) - frozen.embed_sketches(queries)).max() > 1e-3


def test_gallery_cache_is_keyed_by_step(workdir, monkeypatch):
  path = os.path.join(workdir, "ours", search.GALLERY_FILE)
  first = search.Searcher(workdir).gallery
  steps = search.Searcher(workdir).step
  with np.load(path) as z:
    assert int(z["step"]) == steps and z["embeds"].shape == first[0].shape

  def no_embedding(*args, **kwargs):
    raise AssertionError("embedded the gallery again")
  with monkeypatch.context() as m:
    m.setattr(common, "embed_split", no_embedding)
    np.testing.assert_array_equal(search.Searcher(workdir).gallery[0], first[0])

  with np.load(path) as z:  # as if it were written for an older checkpoint
    stale = {k: z[k] for k in z.files}
  stale.update(step=np.asarray(steps - 1), embeds=np.zeros_like(stale["embeds"]))
  np.savez(path, **stale)
  again = search.Searcher(workdir).gallery
  np.testing.assert_allclose(again[0], first[0], atol=1e-6)
  with np.load(path) as z:
    assert int(z["step"]) == steps
    stale = {k: z[k] for k in z.files}
  # As if the dataset copy had gained photos since.
  stale.update(num_photos=stale["num_photos"] + 1, embeds=np.zeros_like(stale["embeds"]))
  np.savez(path, **stale)
  np.testing.assert_allclose(search.Searcher(workdir).gallery[0], first[0], atol=1e-6)


def _sketch_png(path, strokes, size=256):
  Image.fromarray(strokes_lib.render_strokes(strokes, size)).save(path)
  return str(path)


def test_cli_png_and_ndjson(workdir, test_sketches, tmp_path, capsys):
  paths, labels = test_sketches
  with open(paths[0]) as f:
    record = json.load(f)
  png = _sketch_png(tmp_path / "my.png", strokes_lib.from_quickdraw(record["drawing"]))
  ndjson = tmp_path / "sketches.ndjson"
  raw = {"word": "x", "drawing": [[[10, 900, 400], [30, 50, 700]]]}  # raw QuickDraw: screen pixels
  ndjson.write_text(json.dumps(record) + "\n\n" + json.dumps(raw) + "\n")
  out = tmp_path / "hits.png"
  assert search.main(["--workdir", workdir, "--sketch", png, str(ndjson), "--top", "4", "--line", "1",
                      "--out", str(out), "--category", record["word"]]) == 0
  printed = capsys.readouterr().out
  assert printed.count(png + ":") == 1 and printed.count(str(ndjson) + ":") == 1
  assert len([l for l in printed.splitlines() if l.startswith("    ")]) == 8  # 2 queries x top 4
  grid = Image.open(out)
  assert grid.width > grid.height > 0  # 2 rows of 1 + 4 cells
  # A 256-px PNG of a drawing (raster path) looks like its vector rendering at the model's size.
  from_png, from_json = (search.load_query(p, 64).astype(float) for p in (png, paths[0]))
  other = search.load_query(paths[-1], 64).astype(float)
  assert np.abs(from_png - from_json).mean() < 0.5 * np.abs(other - from_json).mean()


def test_raw_quickdraw_is_fitted_to_the_canvas():
  strokes = search._strokes_from_drawing([[[10, 900, 400], [30, 50, 700]]], "k")
  pts = np.concatenate(strokes)
  assert pts.min() >= 0 and pts.max() <= 255
  simplified = search._strokes_from_drawing([[[0, 255, 100], [0, 40, 255]]], "k")
  np.testing.assert_array_equal(simplified[0], [[0, 0], [255, 40], [100, 255]])  # already 0..255: unchanged


def _error(capsys, argv):
  assert search.main(argv) == 2
  return capsys.readouterr().err


def test_errors_name_the_bad_input(workdir, test_sketches, tmp_path, capsys):
  good = test_sketches[0][0]
  assert "config.json not found" in _error(capsys, ["--workdir", str(tmp_path), "--sketch", good])
  err = _error(capsys, ["--workdir", workdir, "--sketch", good, "--method", "deep-prompt"])
  assert "deep-prompt" in err and "frozen" in err and "ours" in err
  err = _error(capsys, ["--workdir", workdir, "--sketch", good, "--category", "no-such-class"])
  assert "no-such-class" in err and "valid" in err
  assert "--top" in _error(capsys, ["--workdir", workdir, "--sketch", good, "--top", "0"])

  blank = tmp_path / "blank.png"
  Image.new("L", (64, 64), 255).save(blank)
  assert f"{blank}" in _error(capsys, ["--workdir", workdir, "--sketch", str(blank)])
  missing = str(tmp_path / "nope.png")
  assert f"{missing}: sketch file not found" in _error(capsys, ["--workdir", workdir, "--sketch", missing])
  bad_json = tmp_path / "bad.json"
  bad_json.write_text(json.dumps({"strokes": []}))
  err = _error(capsys, ["--workdir", workdir, "--sketch", str(bad_json)])
  assert str(bad_json) in err and "'drawing'" in err
  lines = tmp_path / "two.ndjson"
  lines.write_text(json.dumps({"drawing": [[[1, 2], [3, 4]]]}) + "\n{not json\n")
  assert f"{lines}:2: invalid JSON" in _error(capsys, ["--workdir", workdir, "--sketch", str(lines), "--line", "1"])
  for bad_line in ("5", "-1"):
    assert f"--line {bad_line}" in _error(capsys, ["--workdir", workdir, "--sketch", str(lines), "--line", bad_line])
  binary = tmp_path / "png_named.json"
  binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
  assert f"{binary}: not a UTF-8" in _error(capsys, ["--workdir", workdir, "--sketch", str(binary)])

  # A workdir whose method was never trained (config.json only).
  copy = tmp_path / "copy"
  copy.mkdir()
  (copy / "config.json").write_text(open(os.path.join(workdir, "config.json")).read())
  err = _error(capsys, ["--workdir", str(copy), "--sketch", good])
  assert f"{copy}/ours/checkpoints: no checkpoints" in err
