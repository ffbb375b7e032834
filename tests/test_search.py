"""python -m sgvu.tools.search on exported bundles (sgvu.export), built here from tiny untrained models.

Two workdirs in the runner's layout (tests/bundle_workdirs.py): a zs_sbir-like
one and an on_the_fly-like one whose query model has one head per completion
level. The oracle is a direct cosine top-k on the bundle's own embeddings. A real workdir end to end
is in tests/test_experiments.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import bundle_workdirs
from bundle_workdirs import otf_workdir, zs_workdir  # noqa: F401  (pytest fixtures)
import jax
import numpy as np
import pytest
from PIL import Image

from sgvu import export, viz
from sgvu.data import sketch_files, strokes as strokes_lib
from sgvu.tools import search

SIZE, LEVELS = bundle_workdirs.SIZE, bundle_workdirs.LEVELS
_source = bundle_workdirs.source


@pytest.fixture(scope="module")
def sketch_paths(tmp_path_factory):
  """Every test sketch as a QuickDraw .json record, and the first also as an .ndjson line and a PNG."""
  folder = tmp_path_factory.mktemp("sketches")
  source = _source()
  split = source.split("test")
  paths, labels = [], []
  for i, item in enumerate(split.sketches):
    drawing = strokes_lib.to_quickdraw(source.load_sketch(item).strokes)
    paths.append(str(folder / f"s{i}.json"))
    with open(paths[-1], "w") as f:
      json.dump({"word": source.categories[item.label], "drawing": drawing}, f)
    labels.append(source.categories[item.label])
  with open(paths[0]) as f:
    record = json.load(f)
  ndjson = folder / "two.ndjson"
  ndjson.write_text("\n" + json.dumps({"drawing": [[[1, 2], [3, 4]]]}) + "\n" + json.dumps(record) + "\n")
  png = str(folder / "s0.png")
  Image.fromarray(strokes_lib.render_strokes(strokes_lib.from_quickdraw(record["drawing"]), 256)).save(png)
  return {"json": paths, "labels": labels, "ndjson": str(ndjson), "png": png}


def _queries(paths):
  return np.stack([sketch_files.load_query(p, SIZE) for p in paths])


def _cosine_topk(q, g, k):
  q = q / np.linalg.norm(q, axis=1, keepdims=True)
  g = g / np.linalg.norm(g, axis=1, keepdims=True)
  scores = q @ g.T
  order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
  return order, np.take_along_axis(scores, order, axis=1)


def _assert_same_ranking(got, want_rows, want_scores, atol=1e-5):
  """Same scores in order, each row with its own score (rows tying to float precision may swap)."""
  np.testing.assert_allclose([h["score"] for h in got], want_scores, atol=atol)
  for h in got:
    j = list(want_rows).index(h["gallery_row"]) if h["gallery_row"] in want_rows else None
    assert j is not None and abs(want_scores[j] - h["score"]) <= atol, (got, want_rows, want_scores)


# ---------------------------------------------------------------- the API
def test_search_ranks_are_a_cosine_topk_of_the_bundle(zs_workdir, sketch_paths):
  bundle = search.open_bundle(zs_workdir)
  assert bundle.meta["method"] == "ours"  # config.json's grid_method
  queries = _queries(sketch_paths["json"])
  results = search.search(bundle, queries, top=4)
  order, scores = _cosine_topk(bundle.embed_queries(queries), bundle.gallery.embeds, 4)
  g = bundle.gallery
  for hits, rows, s in zip(results, order, scores):
    _assert_same_ranking(hits, rows, s)
    assert [h["rank"] for h in hits] == [1, 2, 3, 4]
    for h in hits:
      assert h["category"] == bundle.categories[int(g.labels[h["gallery_row"]])]
      assert h["photo"] == str(g.keys[h["gallery_row"]])
  assert len(search.search(bundle, queries[:1], top=100)[0]) == len(g.embeds)  # top > gallery: the whole gallery


def test_levels_pick_the_nearest_completion_head(otf_workdir, sketch_paths):
  bundle = search.open_bundle(otf_workdir)
  assert bundle.meta["method"] == "ppo" and bundle.levels == LEVELS  # on-the-fly default: ppo
  queries = _queries(sketch_paths["json"][:2])
  fractions = np.asarray([0.3, 1.0], np.float32)
  results = search.search(bundle, queries, top=3, fractions=fractions)
  embeds = bundle.embed_queries(queries, fractions)  # row 0 by the first level's head, row 1 by the last's
  assert not np.allclose(embeds[0], bundle.embed_queries(queries[:1])[0], atol=1e-4)
  order, scores = _cosine_topk(embeds, bundle.gallery.embeds, 3)
  for hits, rows, s in zip(results, order, scores):
    _assert_same_ranking(hits, rows, s)
  assert search.open_bundle(otf_workdir, "B1").meta["method"] == "B1"  # stage 1: outside results.json


def test_progressive_last_row_is_the_plain_search(zs_workdir, otf_workdir, sketch_paths):
  for workdir in (zs_workdir, otf_workdir):
    bundle = search.open_bundle(workdir)
    sketch = sketch_files.read_sketch(sketch_paths["json"][0])
    [(counts, partial, hits)] = search.progressive_search(bundle, [sketch], top=4, rows=3)
    assert counts == viz.stroke_counts(len(sketch.strokes), 3) and len(partial) == len(hits) == len(counts)
    plain = search.search(bundle, sketch_files.render(sketch, SIZE)[None], 4)[0]
    _assert_same_ranking(hits[-1], [h["gallery_row"] for h in plain], [h["score"] for h in plain], atol=2e-4)


# ---------------------------------------------------------------- the CLI
def test_cli_stroke_files_and_png(zs_workdir, sketch_paths, tmp_path, capsys):
  png, ndjson = sketch_paths["png"], sketch_paths["ndjson"]
  out = tmp_path / "hits.png"
  category = sketch_paths["labels"][0]
  assert search.main(["--workdir", zs_workdir, "--sketch", png, ndjson, "--top", "4", "--line", "1",
                      "--out", str(out), "--category", category]) == 0
  printed = capsys.readouterr().out
  assert printed.count(png + ":") == 1 and printed.count(ndjson + ":") == 1 and f"wrote {out}" in printed
  assert len([l for l in printed.splitlines() if l.startswith("    ")]) == 8  # 2 queries x top 4
  grid = Image.open(out)
  assert grid.width > grid.height > 0  # 2 rows of 1 + 4 cells
  # The PNG of a drawing (raster path) looks like its vector rendering; both give 4 hits of the same bundle.
  from_png, from_json = (sketch_files.load_query(p, 64).astype(float) for p in (png, sketch_paths["json"][0]))
  other = sketch_files.load_query(sketch_paths["json"][-1], 64).astype(float)
  assert np.abs(from_png - from_json).mean() < 0.5 * np.abs(other - from_json).mean()


def test_cli_progressive_target_and_bundle(otf_workdir, sketch_paths, tmp_path, capsys):
  bundle = search.open_bundle(otf_workdir)
  target = str(bundle.gallery.keys[0])
  out = tmp_path / "progressive.png"
  assert search.main(["--workdir", otf_workdir, "--method", "B4", "--sketch", sketch_paths["json"][0],
                      "--progressive", "--rows", "3", "--top", "4", "--target", target, "--out", str(out)]) == 0
  printed = capsys.readouterr().out
  rows = len(viz.stroke_counts(len(sketch_files.read_sketch(sketch_paths["json"][0]).strokes), 3))
  assert printed.count("strokes:") == rows
  assert Image.open(out).size[1] == 18 + 4 + rows * (72 + 4)  # title + one row per stroke count
  # --bundle: a bundle directory (or its row directory) instead of --workdir / --method.
  row = os.path.join(otf_workdir, "B4", "seed0")
  for where in (row, os.path.join(row, export.BUNDLE_DIR)):
    assert search.main(["--bundle", where, "--sketch", sketch_paths["json"][0], "--top", "2"]) == 0
    assert sketch_paths["json"][0] + ":" in capsys.readouterr().out


def test_cli_from_another_directory(zs_workdir, sketch_paths, tmp_path):
  out = tmp_path / "grid.png"
  env = dict(os.environ)  # the test session's XLA flags: its compilation cache (conftest) serves the tool too
  if jax.config.jax_compilation_cache_dir:
    env["JAX_COMPILATION_CACHE_DIR"] = jax.config.jax_compilation_cache_dir
  proc = subprocess.run([sys.executable, "-m", "sgvu.tools.search", "--workdir", zs_workdir, "--method", "frozen",
                         "--sketch", sketch_paths["json"][0], "--top", "3", "--out", str(out)],
                        cwd="/tmp", env=env, capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.count(" synth/") == 3 and out.exists()


def _error(capsys, argv) -> str:
  assert search.main(argv) == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and err.count("\n") == 1, err
  return err


def test_errors_are_one_line_naming_the_value(zs_workdir, sketch_paths, tmp_path, capsys):
  good, png = sketch_paths["json"][0], sketch_paths["png"]
  w = ["--workdir", zs_workdir, "--sketch", good]
  err = _error(capsys, w + ["--method", "random"])  # the chance row exports nothing
  assert "'random'" in err and "['frozen', 'ours']" in err
  assert "'deep-prompt'" in _error(capsys, w + ["--method", "deep-prompt"])
  assert "seed 1" in _error(capsys, w + ["--seed", "1"])
  err = _error(capsys, w + ["--category", "no-such-class"])
  assert "'no-such-class'" in err and "'door'" in err and "'airplane'" not in err  # the gallery's classes
  err = _error(capsys, w + ["--target", "synth/nope/1"])
  assert "'synth/nope/1'" in err and "synth/door/00000" in err
  err = _error(capsys, ["--workdir", zs_workdir, "--sketch", png, "--progressive", "--out", str(tmp_path / "p.png")])
  assert png in err and "stroke order" in err
  assert "--top" in _error(capsys, w + ["--top", "0"])
  assert "config.json not found" in _error(capsys, ["--workdir", str(tmp_path), "--sketch", good])
  missing = str(tmp_path / "nope")
  assert missing in _error(capsys, ["--bundle", missing, "--sketch", good])
  assert "--method" in _error(capsys, ["--bundle", os.path.join(zs_workdir, "ours", "seed0"), "--method", "ours",
                                       "--sketch", good])
  # Bad sketch files name the file (and line / stroke): before any model is loaded.
  blank = tmp_path / "blank.png"
  Image.new("L", (64, 64), 255).save(blank)
  assert f"{blank}: sketch raster has no ink" in _error(capsys, ["--workdir", zs_workdir, "--sketch", str(blank)])
  assert f"{tmp_path}/x.png: sketch file not found" in _error(
      capsys, ["--workdir", zs_workdir, "--sketch", str(tmp_path / "x.png")])
  bad = tmp_path / "bad.ndjson"
  bad.write_text(json.dumps({"drawing": [[[1, 2], [3, 4]], [[1, 2], [3]]]}) + "\n")
  assert f"{bad}:1: QuickDraw stroke 1" in _error(capsys, ["--workdir", zs_workdir, "--sketch", str(bad)])
  assert f"{bad}: line 3" in _error(capsys, ["--workdir", zs_workdir, "--sketch", str(bad), "--line", "3"])
  # A workdir whose rows exported nothing.
  empty = tmp_path / "empty"
  empty.mkdir()
  (empty / "config.json").write_text(json.dumps({"task": "zs_sbir", "methods": ["random"], "grid_method": "ours"}))
  err = _error(capsys, ["--workdir", str(empty), "--sketch", good])
  assert f"no row of {empty} has an exported model for seed 0" in err


def test_default_method_falls_back_to_the_first_row_with_a_bundle(zs_workdir, tmp_path):
  with open(os.path.join(zs_workdir, "config.json")) as f:
    config = json.load(f)
  assert search.default_method(zs_workdir, ["frozen", "ours"]) == "ours"
  assert list(search.bundles(zs_workdir)) == ["frozen", "ours"]  # results.json's order
  config["grid_method"] = "random"
  copy = tmp_path / "w"
  copy.mkdir()
  (copy / "config.json").write_text(json.dumps(config))
  assert search.default_method(str(copy), ["frozen", "ours"]) == "frozen"
  assert search.default_method(str(copy), []) is None
