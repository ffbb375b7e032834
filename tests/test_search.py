"""python -m sgvu.tools.search on workdirs of `experiments/zs_sbir.py:small` and `experiments/on_the_fly.py:small`.

The oracle is the experiment itself: querying with the test sketches (as
QuickDraw-format stroke files) must give back the mAP that the zs_sbir run
wrote to results.json, and the embeddings that the on-the-fly run computed
at every completion level, which only holds if the tool restores the trained
parameters, embeds the right gallery and renders a sketch as training did.

The zs_sbir run uses a tiny random transformers CLIP (`model.clip_init=hf:`) instead
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

from experiments import on_the_fly as otf_config
from sgvu import main as sgvu_main
from sgvu import metrics, train, viz
from sgvu.data import pipeline, strokes as strokes_lib
from sgvu.tasks import clip_pretrain, common, fg_sbir, on_the_fly
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
  directory = clip_pretrain.cache_directory(config.clip_train)
  assert clip_pretrain.cache_directory(saved.clip_train) == directory
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
  assert ours.step == ours.config.zs_train.num_steps == sorted(map(int, os.listdir(f"{workdir}/ours/checkpoints")))[-1]
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


# ---------------------------------------------------------------- --progressive, zs_sbir
def _assert_same_ranking(got, want, atol=2e-4):
  """Ranked (photo, score) lists agree: same scores in order, each photo with its score.

  Two batch sizes round a cosine differently in its last bits, so photos whose
  scores tie to that precision may swap places; nothing else may.
  """
  np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=atol)
  want_score = dict(want)
  for photo, score in got:
    assert photo in want_score and abs(want_score[photo] - score) <= atol, (photo, got, want)


def test_stroke_counts_spread_over_the_sketch():
  assert viz.stroke_counts(3, 6) == [1, 2, 3]
  assert viz.stroke_counts(7, 4) == [1, 3, 5, 7]
  assert viz.stroke_counts(10, 6) == [1, 3, 5, 6, 8, 10]
  assert viz.stroke_counts(5, 1) == [5]  # one row: the whole sketch


def test_progressive_on_a_zs_sbir_workdir(workdir, searchers, test_sketches, tmp_path, capsys):
  path = test_sketches[0][0]
  sketch = search.read_sketch(path)
  searcher = searchers["ours"]
  [(counts, partial, hits)] = search.progressive_search(searcher, [sketch], 4, rows=3)
  assert counts == viz.stroke_counts(len(sketch.strokes), 3) and len(partial) == len(hits) == len(counts)
  # The whole sketch's row is the plain search of the whole sketch (scores up to the batch size's rounding).
  plain = searcher.search(search.render_query(sketch, searcher.image_size)[None], 4)[0]
  _assert_same_ranking([(h["photo"], h["score"]) for h in hits[-1]], [(h["photo"], h["score"]) for h in plain])
  out = tmp_path / "progressive.png"
  assert search.main(["--workdir", workdir, "--sketch", path, "--progressive", "--rows", "3", "--top", "4",
                      "--out", str(out)]) == 0
  printed = capsys.readouterr().out
  assert printed.count("strokes:") == len(counts)
  assert Image.open(out).size[1] == 18 + 4 + len(counts) * (72 + 4)  # title + one row per stroke count


# ---------------------------------------------------------------- on_the_fly / fg_sbir workdirs
OTF_METHODS = ("B1", "B4", "ppo")


@pytest.fixture(scope="module")
def otf_workdir(tmp_path_factory, compilation_cache):
  config = otf_config.get_config("small")
  config.methods = OTF_METHODS  # B4: one head per completion level, ppo: the default row
  w = str(tmp_path_factory.mktemp("on_the_fly_small"))
  sgvu_main.run(config, w)
  return w


@pytest.fixture(scope="module")
def otf_searchers(otf_workdir):
  return {m: search.open_searcher(otf_workdir, m) for m in OTF_METHODS}


def _otf_run(workdir):
  """The run's own test embeddings per level of every row [N, T, D], its gallery and targets."""
  config = search.load_config(workdir)
  with np.load(os.path.join(workdir, "features.npz")) as z:
    test = on_the_fly.LevelData.load(z, "test")
    head = train.unflatten({k[len("head/"):]: z[k] for k in z.files if k.startswith("head/")})
  return config, test, head


@pytest.mark.parametrize("method", OTF_METHODS)
def test_instance_queries_reproduce_the_runs_embeddings(otf_workdir, otf_searchers, method):
  config, test, head = _otf_run(otf_workdir)
  s = otf_searchers[method]
  assert isinstance(s, search.InstanceSearcher) and s.base == "B1"
  want = (on_the_fly.head_embeddings(config, head, test.features) if method == "B1"
          else s.row_task.test_embeddings(s.row_params))  # [N, T, D] from the run's frozen features
  gallery, _, index = s.gallery
  np.testing.assert_allclose(gallery, test.photos, atol=1e-5)  # B1's photo branch, all test photos in order
  assert index.tolist() == list(range(len(s.split.photos)))
  sketches = s.split.sketches
  levels = on_the_fly.level_fractions(config.levels)
  for t, f in enumerate(levels):  # B4: the head of the matching level
    q = np.stack([pipeline.render_sketch(s.task.source, item, s.image_size, f) for item in sketches])
    np.testing.assert_allclose(s.embed_sketches(q, np.full(len(q), f)), want[:, t], atol=1e-5)
  # Stroke files, as a user gives them, rendered whole: the last level; A@1 is the run's.
  full = np.stack([search.render_query(s.task.source.load_sketch(item), s.image_size) for item in sketches])
  got = s.embed_sketches(full)
  np.testing.assert_allclose(got, want[:, -1], atol=1e-5)
  ranks = fg_sbir.ranks(got, test.targets, gallery)
  with open(os.path.join(otf_workdir, "results.json")) as f:
    row = {r["method"]: r for r in json.load(f)["rows"]}[method]
  assert np.mean(ranks <= 1) == pytest.approx(row["A@1"])
  if method == "B4":  # per-level heads really differ, so the level choice above was tested
    assert np.abs(s.embed_sketches(full[:2], np.full(2, levels[0])) - got[:2]).max() > 1e-6


def test_instance_defaults_and_gallery_cache(otf_workdir, otf_searchers, monkeypatch):
  s = search.open_searcher(otf_workdir)
  assert s.method == "ppo" and s.row_step == otf_config.get_config("small").rl_train.num_steps
  assert s.step == otf_config.get_config("small").fg_train.num_steps  # B1's checkpoint
  path = os.path.join(otf_workdir, "B1", search.GALLERY_FILE)
  with np.load(path) as z:
    assert int(z["step"]) == s.step
  with monkeypatch.context() as m:  # every row shares B1's cached gallery
    m.setattr(common, "embed_split", lambda *a, **k: (_ for _ in ()).throw(AssertionError("embedded again")))
    np.testing.assert_array_equal(s.gallery[0], otf_searchers["B1"].gallery[0])


def _stroke_file(path, num_strokes=7):
  """A tiny shoe-like drawing in QuickDraw .ndjson, one stroke per line segment group."""
  drawing = [[[20, 200, 230], [150, 150, 200]], [[20, 40, 120], [150, 60, 70]], [[120, 200], [70, 150]],
             [[60, 100], [100, 100]], [[30, 230], [210, 210]], [[80, 90], [120, 130]], [[150, 160], [120, 130]]]
  path.write_text(json.dumps({"word": "shoe", "drawing": drawing[:num_strokes]}) + "\n")
  return str(path)


def _printed_hits(text):
  """[(photo, score)] of the printed hit lines ('  rank  score  category  photo')."""
  lines = [l.split() for l in text.splitlines() if l.strip() and l.strip()[0].isdigit()]
  return [(l[-1], float(l[1])) for l in lines]


def test_progressive_cli(otf_workdir, otf_searchers, tmp_path, capsys, monkeypatch):
  sketch = _stroke_file(tmp_path / "shoe.ndjson")
  drawn = []
  real_grid = viz.retrieval_grid

  def grid(queries, hits, correct, path, **kwargs):
    drawn.append((len(queries), correct, kwargs["labels"]))
    real_grid(queries, hits, correct, path, **kwargs)
  monkeypatch.setattr(viz, "retrieval_grid", grid)

  out = tmp_path / "progressive.png"
  assert search.main(["--workdir", otf_workdir, "--sketch", sketch, "--progressive", "--rows", "4",
                      "--out", str(out)]) == 0
  printed = capsys.readouterr().out
  counts = [1, 3, 5, 7]
  top = min(5, len(otf_searchers["ppo"].split.photos))  # default top-5 of a 3-photo gallery
  assert [l.strip() for l in printed.splitlines() if "strokes:" in l and "after" in l] == \
      [f"after {c}/7 strokes:" for c in counts]
  hits = _printed_hits(printed)
  assert len(hits) == len(counts) * top
  assert Image.open(out).size[1] == 18 + 4 + len(counts) * (72 + 4)
  assert drawn[-1][0] == len(counts) and drawn[-1][2] == [f"{c}/7" for c in counts]
  assert all(c is None for row in drawn[-1][1] for c in row)  # no target: neutral frames

  # The whole sketch's top-k is the plain search's.
  assert search.main(["--workdir", otf_workdir, "--sketch", sketch, "--top", str(top)]) == 0
  _assert_same_ranking(_printed_hits(capsys.readouterr().out), hits[-top:])

  # --target frames the true photo green, the others red; B4 through the same path.
  target = hits[-1][0]
  assert search.main(["--workdir", otf_workdir, "--sketch", sketch, "--progressive", "--method", "B4",
                      "--target", target, "--top", "2", "--out", str(out)]) == 0
  hits = _printed_hits(capsys.readouterr().out)
  assert [c for row in drawn[-1][1] for c in row] == [photo == target for photo, _ in hits]


def test_fg_sbir_workdir(otf_workdir, otf_searchers, tmp_path):
  """A fg_sbir workdir (config task 'fg_sbir', rows W/<name>) searches as on_the_fly's B1."""
  w = tmp_path / "fg"
  w.mkdir()
  config = json.load(open(os.path.join(otf_workdir, "config.json")))
  config.update(task="fg_sbir", methods=["B1"])
  (w / "config.json").write_text(json.dumps(config))
  os.makedirs(w / "B1")
  os.symlink(os.path.join(otf_workdir, "B1", "checkpoints"), str(w / "B1" / "checkpoints"))
  s = search.open_searcher(str(w))
  assert s.method == "B1" and s.row is None
  b1 = otf_searchers["B1"]
  sketches = [search.render_query(b1.task.source.load_sketch(item), b1.image_size) for item in b1.split.sketches]
  assert s.search(np.stack(sketches), 2) == b1.search(np.stack(sketches), 2)


def test_progressive_and_instance_errors(otf_workdir, tmp_path, capsys):
  sketch = _stroke_file(tmp_path / "shoe.ndjson")
  png = _sketch_png(tmp_path / "shoe.png", strokes_lib.from_quickdraw(json.loads(open(sketch).read())["drawing"]))
  err = _error(capsys, ["--workdir", otf_workdir, "--sketch", png, "--progressive", "--out", str(tmp_path / "o.png")])
  assert png in err and "no stroke order" in err and ".ndjson" in err
  err = _error(capsys, ["--workdir", otf_workdir, "--sketch", sketch, "--progressive"])
  assert "--out" in err
  for bad in ("ppox", "B3"):  # unknown; registered but not run here
    err = _error(capsys, ["--workdir", otf_workdir, "--sketch", sketch, "--method", bad])
    assert repr(bad) in err and all(m in err for m in OTF_METHODS)
  err = _error(capsys, ["--workdir", otf_workdir, "--sketch", sketch, "--target", "synth/shoe/nope"])
  assert "synth/shoe/nope" in err and "synth/shoe/" in err.split("nope", 1)[1]
  assert "--rows" in _error(capsys, ["--workdir", otf_workdir, "--sketch", sketch, "--progressive", "--rows", "0",
                                     "--out", str(tmp_path / "o.png")])
  other = tmp_path / "clip"
  other.mkdir()
  (other / "config.json").write_text(json.dumps({"task": "clip_pretrain"}))
  err = _error(capsys, ["--workdir", str(other), "--sketch", sketch])
  assert "clip_pretrain" in err and "on_the_fly" in err and "zs_sbir" in err
