"""python -m sgvu.tools.serve: the search API against sgvu.tools.search's own ranking, bad input, the real server.

The page itself is driven in a real browser in tests/test_serve_browser.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

import bundle_workdirs
from bundle_workdirs import otf_workdir, zs_workdir  # noqa: F401  (pytest fixtures)
import numpy as np
import pytest
from PIL import Image

from sgvu import export, viz
from sgvu.data import strokes as strokes_lib
from sgvu.tools import live_search, search, serve


@pytest.fixture(scope="module")
def sketches():
  """The test split's sketches, QuickDraw strokes on the 0..255 canvas."""
  source = bundle_workdirs.source()
  return [strokes_lib.to_quickdraw(source.load_sketch(item).strokes, as_int=False)
          for item in source.split("test").sketches]


@pytest.fixture(scope="module")
def zs_client(zs_workdir):
  engine = serve.open_engine(zs_workdir, None, None, 0)
  return engine, serve.create_app(engine).test_client()


def _post(client, body, raw: bytes | None = None):
  response = client.post("/api/search", data=raw if raw is not None else json.dumps(body),
                         content_type="application/json")
  return response.status_code, response.get_json()


def _as_arrays(drawing):
  return [np.stack([np.asarray(xs, np.float32), np.asarray(ys, np.float32)], axis=1) for xs, ys in drawing]


def test_results_are_the_search_tools_ranking(zs_client, sketches):
  engine, client = zs_client
  for drawing in sketches[:3]:
    status, answer = _post(client, {"strokes": drawing, "top": 4})
    assert status == 200, answer
    query = viz.progressive_queries(_as_arrays(drawing), engine.bundle.image_size, 1)[1]
    want = search.search(engine.bundle, query, top=4)[0]
    assert [r["key"] for r in answer["results"]] == [h["photo"] for h in want]
    np.testing.assert_allclose([r["score"] for r in answer["results"]], [h["score"] for h in want], atol=1e-5)
    assert [r["rank"] for r in answer["results"]] == [1, 2, 3, 4]
    assert answer["strokes"] == len(drawing)
    assert answer["gallery_size"] == len(engine.bundle.gallery.keys)
    for r in answer["results"]:
      assert r["image"] == f"/gallery/{engine.keys.index(r['key'])}.png"


def test_target_ranks_follow_the_strokes(zs_client, sketches):
  engine, client = zs_client
  drawing = max(sketches, key=len)
  target = engine.keys[2]
  status, answer = _post(client, {"strokes": drawing, "top": 3, "target": target})
  assert status == 200, answer
  counts = viz.stroke_counts(len(drawing), live_search.MAX_RANK_STEPS)
  assert answer["target"]["strokes"] == counts and answer["target"]["key"] == target
  # Brute force: the whole gallery ranked for each prefix, the target's position read off.
  strokes = _as_arrays(drawing)
  for count, rank in zip(counts, answer["target"]["ranks"]):
    query = viz.progressive_queries(strokes[:count], engine.bundle.image_size, 1)[1]
    ranking = [h["photo"] for h in search.search(engine.bundle, query, top=len(engine.keys))[0]]
    assert ranking.index(target) + 1 == rank
  assert answer["target"]["rank"] == answer["target"]["ranks"][-1]


def test_canvas_maps_the_drawing_surface_onto_the_sketch_canvas(zs_client, sketches):
  _, client = zs_client
  drawing = sketches[0]
  doubled = [[[2 * x for x in xs], [2 * y for y in ys]] for xs, ys in drawing]
  _, plain = _post(client, {"strokes": drawing, "top": 5})
  _, mapped = _post(client, {"strokes": doubled, "top": 5, "canvas": [510, 510]})  # scale 255 / 510 = 1/2
  assert [r["key"] for r in mapped["results"]] == [r["key"] for r in plain["results"]]
  # A wide surface keeps its aspect and is centred on the square canvas.
  (mapped,) = live_search.to_sketch_canvas([np.asarray([[0.0, 0.0], [100.0, 50.0], [200.0, 100.0]])], [200, 100])
  np.testing.assert_allclose(mapped, [[0, 63.75], [127.5, 127.5], [255, 191.25]], atol=1e-4)
  # Without a canvas, points on 0..255 are kept and a larger drawing's bounding box is fitted (QuickDraw style).
  (kept,) = live_search.to_sketch_canvas([np.asarray([[10.0, 20.0], [30.0, 40.0]])])
  np.testing.assert_allclose(kept, [[10, 20], [30, 40]])
  (fitted,) = live_search.to_sketch_canvas([np.asarray([[0.0, 0.0], [1000.0, 1000.0]])])
  np.testing.assert_allclose(fitted, strokes_lib.normalize_to_canvas([np.asarray([[0, 0], [1000, 1000]], np.float32)])[0])


def test_levels_use_the_expected_stroke_count(otf_workdir, sketches):
  engine = serve.open_engine(otf_workdir, None, "B4", 0)
  client = serve.create_app(engine).test_client()
  drawing = max(sketches, key=len)[:2]
  _, guessed = _post(client, {"strokes": drawing, "top": 3, "expected_strokes": 8})
  query = viz.progressive_queries(_as_arrays(drawing), engine.bundle.image_size, 1)[1]
  want = search.search(engine.bundle, query, top=3, fractions=np.asarray([2 / 8]))[0]
  assert [r["key"] for r in guessed["results"]] == [h["photo"] for h in want]
  complete = search.search(engine.bundle, query, top=3)[0]
  _, plain = _post(client, {"strokes": drawing, "top": 3})
  assert [r["key"] for r in plain["results"]] == [h["photo"] for h in complete]
  assert engine.info()["levels"] == bundle_workdirs.LEVELS


BAD = [
    (b'{"strokes": ', 400, "not valid JSON"),
    (b'[1, 2]', 400, "JSON object"),
    (b'{"top": 3}', 400, "missing 'strokes'"),
    (b'{"strokes": [], "top": 3}', 400, "empty"),
    (b'{"strokes": "abc"}', 400, "'strokes' must be a list"),
    (b'{"strokes": [[[1, 2], [3]]]}', 400, "stroke 0 has 2 x values but 1 y values"),
    (b'{"strokes": [[[1, 2]]]}', 400, "stroke 0 must be [[x...], [y...]]"),
    (b'{"strokes": [[[1, 2], [3, 4]], [[], []]]}', 400, "stroke 1 is empty"),
    (b'{"strokes": [[[1, NaN], [3, 4]]]}', 400, "stroke 0 x[1] must be finite"),
    (b'{"strokes": [[[1, 2], [3, Infinity]]]}', 400, "stroke 0 y[1] must be finite"),
    (b'{"strokes": [[[1, "a"], [3, 4]]]}', 400, "stroke 0 x[1] must be a number"),
    (b'{"strokes": [[[1, true], [3, 4]]]}', 400, "stroke 0 x[1] must be a number"),
    (b'{"strokes": [[[1, 2], [3, 4]]], "top": 0}', 400, "'top' must be in 1.."),
    (b'{"strokes": [[[1, 2], [3, 4]]], "top": "5"}', 400, "'top' must be an integer"),
    (b'{"strokes": [[[1, 2], [3, 4]]], "target": "nope"}', 400, "'target' 'nope' is not a key"),
    (b'{"strokes": [[[1, 2], [3, 4]]], "text": "red"}', 400, "takes no 'text'"),
    (b'{"strokes": [[[1, 2], [3, 4]]], "text": 5}', 400, "'text' must be a string"),
    (b'{"strokes": [[[1, 2], [3, 4]]], "canvas": [0, 10]}', 400, "'canvas' must be positive"),
    (b'{"strokes": [[[1, 2], [3, 4]]], "canvas": 7}', 400, "'canvas' must be [width, height]"),
    (b'{"strokes": [[[1, 900], [3, 4]]], "canvas": [100, 100]}', 400, "far outside"),
    (b'{"strokes": [[[1, 2], [3, 4]]], "colour": "red"}', 400, "unknown key(s) ['colour']"),
    (b'{"strokes": [[[1, 2], [3, 4]]], "expected_strokes": -1}', 400, "'expected_strokes' must be in 1.."),
]


@pytest.mark.parametrize("raw,status,message", BAD, ids=[m for _, _, m in BAD])
def test_bad_requests_name_the_problem_and_the_server_goes_on(zs_client, sketches, raw, status, message):
  _, client = zs_client
  got, answer = _post(client, None, raw=raw)
  assert got == status and message in answer["error"], answer
  got, answer = _post(client, {"strokes": sketches[0], "top": 2})
  assert got == 200 and len(answer["results"]) == 2


def test_oversized_bodies_and_stroke_counts_get_413(zs_client):
  _, client = zs_client
  big = json.dumps({"strokes": [[[1, 2], [3, 4]]] * 60_000}).encode()
  assert len(big) > serve.MAX_BODY_BYTES
  got, answer = _post(client, None, raw=big)
  assert got == 413 and "over 1048576 bytes" in answer["error"]
  many = json.dumps({"strokes": [[[1], [3]]] * (live_search.MAX_STROKES + 1)}).encode()
  got, answer = _post(client, None, raw=many)
  assert got == 413 and "at most" in answer["error"]


def test_gallery_images_and_info(zs_client, tmp_path):
  engine, client = zs_client
  response = client.get("/gallery/1.png")
  assert response.status_code == 200 and response.mimetype == "image/png"
  path = tmp_path / "g.png"
  path.write_bytes(response.data)
  want = live_search.THUMBNAIL_SIZE
  assert Image.open(path).size == (want, want)
  for name, message in (("999.png", "out of range"), ("x.png", "not an integer"), ("1.jpg", "/gallery/<id>.png")):
    response = client.get(f"/gallery/{name}")
    assert response.status_code == 404 and message in response.get_json()["error"]
  info = client.get("/api/info").get_json()
  assert info["method"] == "ours" and info["gallery_size"] == len(engine.keys) and info["takes_text"] is False
  page = client.get("/")
  assert page.status_code == 200 and b'<canvas id="canvas"' in page.data
  for asset in ("/static/app.js", "/static/style.css"):
    assert client.get(asset).status_code == 200
  # No CDN: every script and stylesheet the page loads is served by the package.
  assert b"http://" not in page.data and b"https://" not in page.data


def test_the_real_server_answers_over_http(zs_workdir, sketches):
  proc, url = bundle_workdirs.start_server(["--workdir", zs_workdir, "--method", "frozen"])
  try:
    def post(data: bytes):
      request = urllib.request.Request(url + "api/search", data=data, headers={"Content-Type": "application/json"})
      try:
        with urllib.request.urlopen(request, timeout=60) as response:
          return response.status, json.load(response)
      except urllib.error.HTTPError as e:
        return e.code, json.load(e)
    status, answer = post(json.dumps({"strokes": sketches[0], "top": 3}).encode())
    assert status == 200 and len(answer["results"]) == 3
    status, answer = post(b"x" * (serve.MAX_BODY_BYTES + 10))
    assert status == 413 and "error" in answer
    status, answer = post(b'{"strokes": [[[1, NaN], [3, 4]]]}')
    assert status == 400 and "finite" in answer["error"]
    status, answer = post(json.dumps({"strokes": sketches[1], "top": 1}).encode())
    assert status == 200 and len(answer["results"]) == 1
    with urllib.request.urlopen(url + "api/info", timeout=30) as response:
      assert json.load(response)["method"] == "frozen"
  finally:
    proc.terminate()
    proc.wait(timeout=30)


def test_a_workdir_without_a_trained_model_fails_at_start(zs_workdir, tmp_path):
  empty = tmp_path / "empty"
  empty.mkdir()
  (empty / "config.json").write_text(json.dumps({"task": "zs_sbir", "methods": ["ours"]}))
  for args, message in ((["--workdir", str(empty)], "has an exported model"),
                        (["--workdir", str(tmp_path / "missing")], "config.json not found"),
                        (["--workdir", zs_workdir, "--method", "random"], "'random' has no exported model"),
                        (["--bundle", str(tmp_path)], export.META_FILE)):
    result = subprocess.run([sys.executable, "-m", "sgvu.tools.serve", "--port", "0", *args], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2 and message in result.stderr, (args, result.stderr)


def test_a_bundle_whose_queries_take_text_is_refused_not_served_by_sketch_alone(zs_workdir, tmp_path):
  copy = tmp_path / "bundle"
  shutil.copytree(os.path.join(zs_workdir, "ours", "seed0", export.BUNDLE_DIR), copy)
  meta = json.loads((copy / export.META_FILE).read_text())
  meta["query"]["text"] = True
  (copy / export.META_FILE).write_text(json.dumps(meta))
  result = subprocess.run([sys.executable, "-m", "sgvu.tools.serve", "--bundle", str(copy)], capture_output=True,
                          text=True, timeout=120)
  assert result.returncode == 2 and "take text" in result.stderr, result.stderr


def test_latency_is_reported(zs_client, sketches):
  _, client = zs_client
  _, answer = _post(client, {"strokes": sketches[0]})
  assert isinstance(answer["milliseconds"], float) and answer["milliseconds"] >= 0
  assert len(answer["results"]) == 10 or len(answer["results"]) == answer["gallery_size"]


def test_the_page_is_packaged():
  assert os.path.isfile(os.path.join(serve.STATIC_DIR, "index.html"))
