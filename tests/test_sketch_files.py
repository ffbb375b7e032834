"""sgvu.data.sketch_files: a user's sketch file -> Sketch -> the model's input, errors naming file/line/stroke."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from sgvu.data import DataError, Sketch, get_source, pipeline, sketch_files, strokes as strokes_lib


def test_raw_quickdraw_is_fitted_to_the_canvas(tmp_path):
  raw = tmp_path / "raw.json"
  raw.write_text(json.dumps([[[10, 900, 400], [30, 50, 700]]]))  # just the strokes, in screen pixels
  pts = np.concatenate(sketch_files.read_sketch(str(raw)).strokes)
  assert pts.min() >= 0 and pts.max() <= 255
  simplified = tmp_path / "simplified.ndjson"
  simplified.write_text(json.dumps({"word": "x", "drawing": [[[0, 255, 100], [0, 40, 255]]]}) + "\n")
  [stroke] = sketch_files.read_sketch(str(simplified)).strokes
  np.testing.assert_array_equal(stroke, [[0, 0], [255, 40], [100, 255]])  # already 0..255: unchanged
  # Without fit, from_quickdraw keeps refusing coordinates far off the canvas.
  with pytest.raises(DataError, match="far outside"):
    strokes_lib.from_quickdraw([[[10, 900, 400], [30, 50, 700]]], "k")


def test_render_is_the_pipelines_rendering():
  source = get_source("synth", None, seed=0, photos_per_category=1, sketches_per_photo=1,
                      categories=("airplane", "door"), protocol="zero_shot")
  item = source.split("test").sketches[0]
  sketch = source.load_sketch(item)
  for fraction in (1.0, 0.5):
    np.testing.assert_array_equal(sketch_files.render(sketch, 48, fraction=fraction),
                                  pipeline.render_sketch(source, item, 48, fraction))
  raster = Sketch(raster=strokes_lib.render_strokes(sketch.strokes, 256))
  assert sketch_files.render(raster, 48).shape == (48, 48, 3)
  with pytest.raises(DataError, match="my.png: a raster sketch"):
    sketch_files.render(raster, 48, fraction=0.5, key="my.png")


def test_png_and_strokes_of_one_drawing_look_alike(tmp_path):
  drawing = [[[20, 200, 200, 20, 20], [20, 20, 200, 200, 20]], [[20, 200], [20, 200]]]
  (tmp_path / "box.json").write_text(json.dumps({"drawing": drawing}))
  Image.fromarray(strokes_lib.render_strokes(strokes_lib.from_quickdraw(drawing), 256)).save(tmp_path / "box.png")
  a, b = (sketch_files.load_query(str(tmp_path / f), 32).astype(float) for f in ("box.json", "box.png"))
  assert a.shape == b.shape == (32, 32, 3) and np.abs(a - b).mean() < 10


@pytest.mark.parametrize("name, content, line, message", [
    ("a.json", {"strokes": []}, 0, "a.json: no 'drawing' key"),
    ("a.json", {"drawing": []}, 0, "a.json: 'drawing' must be a non-empty list"),
    ("a.json", {"drawing": [[[1, 2], [3, 4]], [[1, "x"], [3, 4]]]}, 0, "a.json: QuickDraw stroke 1 is not numeric"),
    ("a.json", {"drawing": [[[1, 2], [3, 4]], 7]}, 0, "a.json: QuickDraw stroke 1 must be [xs, ys]"),
    ("a.json", {"drawing": [[[1, float("nan")], [3, 4]]]}, 0, "a.json: stroke 0 contains NaN"),
    ("a.ndjson", "{}\n\n{\"drawing\": [[[1], [2, 3]]]}\n", 1, "a.ndjson:3: QuickDraw stroke 0: xs"),
    ("a.ndjson", "{}\n{not json\n", 1, "a.ndjson:2: invalid JSON"),
    ("a.ndjson", "{}\n", 1, "a.ndjson: line 1 asked for, but the file has 1 non-empty lines"),
    ("a.ndjson", "{}\n", -1, "a.ndjson: line -1"),
])
def test_errors_name_the_file_line_and_stroke(tmp_path, name, content, line, message):
  path = tmp_path / name
  path.write_text(content if isinstance(content, str) else json.dumps(content))
  with pytest.raises(DataError) as e:
    sketch_files.read_sketch(str(path), line)
  assert f"{tmp_path}/{message}" in str(e.value)


def test_unreadable_files(tmp_path):
  binary = tmp_path / "png_named.json"
  binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
  with pytest.raises(DataError, match=f"{binary}: not a UTF-8"):
    sketch_files.read_sketch(str(binary))
  with pytest.raises(DataError, match=f"{tmp_path}/none.png: sketch file not found"):
    sketch_files.read_sketch(str(tmp_path / "none.png"))
  blank = tmp_path / "blank.png"
  Image.new("L", (64, 64), 255).save(blank)
  with pytest.raises(DataError, match=f"{blank}: sketch raster has no ink"):
    sketch_files.read_sketch(str(blank))
  broken = tmp_path / "broken.png"
  broken.write_bytes(b"not a png")
  with pytest.raises(DataError, match=f"{broken}: cannot decode"):
    sketch_files.read_sketch(str(broken))
