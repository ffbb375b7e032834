"""Readers of the real datasets, proven on tiny files written in their original layouts."""

import json
import os
import shutil

import chex
import numpy as np
import pytest
from PIL import Image

import fixtures_data as fx
from sgvu.data import DATASETS, BadSample, DataError, category_text, get_source, images, strokes
from sgvu.data.quickdraw import QUICKDRAW_110, QUICKDRAW_UNSEEN
from sgvu.data.sketchy import SKETCHY_UNSEEN
from sgvu.data.tuberlin import TUBERLIN_UNSEEN


def _stem(path):
  return os.path.splitext(os.path.basename(path))[0]


def _colour_of(img):
  h, w = img.shape[:2]
  return img[h // 2, w // 2].astype(int)


def _assert_colour(img, stem, tol=12):
  np.testing.assert_allclose(_colour_of(img), fx.photo_colour(stem), atol=tol)


# ---------------------------------------------------------------------------- registry


def test_registry_names_and_unknown():
  assert {"synth", "sketchy", "tuberlin", "quickdraw", "shoev2", "chairv2"} <= set(DATASETS)
  with pytest.raises(DataError, match="valid: .*'sketchy'"):
    get_source("sketchyy", "/tmp")


@pytest.mark.parametrize("name", ["sketchy", "tuberlin", "quickdraw", "shoev2", "chairv2"])
def test_missing_or_empty_root_names_path_and_layout(tmp_path, name):
  for root in (None, str(tmp_path / "nope"), str(tmp_path)):
    with pytest.raises(DataError) as e:
      get_source(name, root)
    assert repr(root) in str(e.value)
    assert "Expected" in str(e.value) and "docs/datasets.md" in str(e.value)


def test_bad_option_is_named(tmp_path):
  fx.write_tuberlin(str(tmp_path))
  with pytest.raises(DataError, match="tuberlin: bad option"):
    get_source("tuberlin", str(tmp_path), extnded=True)


def test_category_text():
  assert category_text("car_(sedan)") == "car (sedan)"
  assert category_text("hot-air_balloon") == "hot air balloon"


# ---------------------------------------------------------------------------- images


def test_pad_to_square_centres_on_white():
  img = np.zeros((2, 4, 3), np.uint8)
  out = images.pad_to_square(img)
  chex.assert_shape(out, (4, 4, 3))
  assert (out[0] == 255).all() and (out[3] == 255).all() and (out[1:3] == 0).all()
  sq = images.to_square(img, 8)
  chex.assert_shape(sq, (8, 8, 3))
  assert sq.dtype == np.uint8


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "LA", "1"])
def test_load_rgb_any_mode(tmp_path, mode):
  path = str(tmp_path / f"x_{mode}.png")
  Image.new("RGB", (5, 3), (10, 200, 30)).convert(mode).save(path)
  out = images.load_rgb(path)
  chex.assert_shape(out, (3, 5, 3))
  assert out.dtype == np.uint8


def test_transparent_png_is_white_paper(tmp_path):
  path = str(tmp_path / "t.png")
  Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(path)
  assert (images.load_grey(path) == 255).all()


def test_corrupt_missing_and_blank_images_raise_naming_file(tmp_path):
  bad = fx._write_truncated_jpeg(str(tmp_path / "cut.jpg"))
  with pytest.raises(BadSample) as e:
    images.load_rgb(bad)
  assert e.value.key == bad
  with pytest.raises(BadSample, match="missing"):
    images.load_rgb(str(tmp_path / "none.jpg"))
  (tmp_path / "junk.png").write_bytes(b"not an image at all")
  with pytest.raises(BadSample, match="junk.png"):
    images.load_grey(str(tmp_path / "junk.png"))
  with pytest.raises(BadSample, match="no ink"):
    images.check_ink(np.full((4, 4), 255, np.uint8), "k")


# ---------------------------------------------------------------------------- Sketchy


def test_sketchy_zero_shot_split_and_pairing(tmp_path):
  w = fx.write_sketchy(str(tmp_path), extra_extended=1)
  src = get_source("sketchy", str(tmp_path))
  assert src.extended and src.skipped == ()
  assert set(src.categories) == set(w["classes"])
  train, test = src.split("train"), src.split("test")
  assert set(test.categories) == {"bat", "cow"} and set(train.categories) == {
      "airplane", "car_(sedan)", "hot-air_balloon"}
  assert set(test.categories) <= set(SKETCHY_UNSEEN) and len(SKETCHY_UNSEEN) == 21
  for sp in (train, test):
    # Extended photos repeat the originals (deduplicated by name) plus one new each.
    assert len(sp.photos) == len(sp.categories) * 3
    assert len(sp.sketches) == len(sp.categories) * 4
    for s in sp.sketches:
      assert src.categories[s.label] == os.path.basename(os.path.dirname(s.key))
      photo = sp.photos[s.photo]
      assert photo.label == s.label
      assert _stem(photo.key) == _stem(s.key).rsplit("-", 1)[0]
      _assert_colour(src.load_photo(photo), _stem(photo.key))
  sk = src.load_sketch(train.sketches[0])
  assert sk.strokes is None and sk.raster.dtype == np.uint8 and sk.raster.ndim == 2
  assert (sk.raster < 128).any()
  with pytest.raises(DataError, match="valid: \\['test', 'train'\\]"):
    src.split("val")


def test_sketchy_extended_option(tmp_path):
  fx.write_sketchy(str(tmp_path), extended=False)
  src = get_source("sketchy", str(tmp_path))
  assert not src.extended
  assert len(src.split("train").photos) == 3 * 2
  with pytest.raises(DataError, match="extended=True"):
    get_source("sketchy", str(tmp_path), extended=True)


def test_sketchy_doodle2search_arrangement(tmp_path):
  """`mv 256x256 Sketchy`, `EXTEND_image_sketchy -> extended_photo`, hyphens renamed."""
  fx.write_sketchy(str(tmp_path / "orig"))
  root = tmp_path / "Sketchy"
  shutil.move(str(tmp_path / "orig" / "256x256"), str(root))
  shutil.move(str(tmp_path / "orig" / "EXTEND_image_sketchy"), str(root / "extended_photo"))
  for d in ("photo/tx_000000000000", "extended_photo"):
    os.rename(root / d / "hot-air_balloon", root / d / "hot_air_balloon")
  src = get_source("sketchy", str(root))
  assert src.extended and src.skipped == ()
  train = src.split("train")
  label = src.categories.index("hot-air_balloon")
  assert sum(p.label == label for p in train.photos) == 3
  assert all(s.photo is not None for s in train.sketches)


def test_sketchy_corrupt_files_are_indexed_then_fail_by_name(tmp_path):
  w = fx.write_sketchy(str(tmp_path), corrupt=True)
  src = get_source("sketchy", str(tmp_path))
  train = src.split("train")
  bad_photo = next(p for p in train.photos if p.key == w["bad"][0])
  bad_sketch = next(s for s in train.sketches if s.key == w["bad"][1])
  with pytest.raises(BadSample) as e:
    src.load_photo(bad_photo)
  assert e.value.key == w["bad"][0]
  with pytest.raises(BadSample, match="no ink"):
    src.load_sketch(bad_sketch)


# ---------------------------------------------------------------------------- TU-Berlin


@pytest.mark.parametrize("layout", ["doodle2search", "raw"])
def test_tuberlin_layouts_and_unseen_split(tmp_path, layout):
  w = fx.write_tuberlin(str(tmp_path), layout=layout)
  src = get_source("tuberlin", str(tmp_path))
  assert src.skipped == ()
  keys = {images.class_key(c) for c in src.categories}
  assert keys == {images.class_key(c) for c in w["classes"]}
  test = src.split("test")
  assert {images.class_key(c) for c in test.categories} == {"trombone", "hotairballoon"}
  for sp in (src.split("train"), test):
    assert len(sp.photos) == 3 * len(sp.categories)
    assert len(sp.sketches) == 3 * len(sp.categories)
    assert all(s.photo is None for s in sp.sketches)  # TU-Berlin has no pairing
    for p in sp.photos:  # each photo landed in its own class despite the folder spellings
      cls = next(c for c in w["classes"] if images.class_key(c) == images.class_key(
          src.categories[p.label]))
      assert p.key in w["photos"][cls]
  assert len(TUBERLIN_UNSEEN) == 30 == len({images.class_key(c) for c in TUBERLIN_UNSEEN})


def test_tuberlin_missing_photos_recorded_or_strict(tmp_path):
  w = fx.write_tuberlin(str(tmp_path))
  shutil.rmtree(os.path.dirname(w["photos"]["airplane"][0]))
  src = get_source("tuberlin", str(tmp_path))
  assert len(src.skipped) == 1 and "airplane" in src.skipped[0][0]
  with pytest.raises(DataError, match="airplane"):
    get_source("tuberlin", str(tmp_path), strict=True)


# ---------------------------------------------------------------------------- QuickDraw


def test_quickdraw_subset_file_names_and_split(tmp_path):
  w = fx.write_quickdraw(str(tmp_path))
  src = get_source("quickdraw", str(tmp_path))
  assert src.categories == QUICKDRAW_110 and len(QUICKDRAW_110) == 110
  assert len(QUICKDRAW_UNSEEN) == 30 and set(QUICKDRAW_UNSEEN) <= set(QUICKDRAW_110)
  # Every class file absent from the fixture is reported, by its QuickDraw file name.
  missing = [k for k, _ in src.skipped]
  assert len(missing) == 110 - len(w["classes"])
  assert os.path.join(str(tmp_path), "sketch", "sea turtle.ndjson") in missing
  train, test = src.split("train"), src.split("test")
  assert set(test.categories) == set(QUICKDRAW_UNSEEN)
  n = w["sketches_per_class"]
  got = {src.categories[s.label] for s in train.sketches + test.sketches}
  assert got == set(w["classes"])  # incl. 'The Eiffel Tower', 'crocodile', 'palm tree' files
  assert len(train.sketches) + len(test.sketches) == n * len(w["classes"])
  for sp in (train, test):
    for p in sp.photos:
      assert _stem(p.key).rsplit("_", 1)[0] == src.categories[p.label]
  sk = src.load_sketch(test.sketches[0])
  assert sk.raster is None and all(s.shape[1] == 2 and s.dtype == np.float32 for s in sk.strokes)
  rec = src.read_line(test.sketches[0])
  assert rec["drawing"] == strokes.to_quickdraw(sk.strokes)


def test_quickdraw_all_subset(tmp_path):
  w = fx.write_quickdraw(str(tmp_path), classes=("bat", "airplane", "eiffel_tower"))
  src = get_source("quickdraw", str(tmp_path), subset="all")
  assert src.categories == ("The Eiffel Tower", "airplane", "bat") and src.skipped == ()
  assert src.split("test").categories == ("bat",)
  with pytest.raises(DataError, match="valid: \\['doodle2search', 'all'\\]"):
    get_source("quickdraw", str(tmp_path), subset="some")
  del w


def test_quickdraw_byte_offsets_and_max_per_class(tmp_path):
  path = tmp_path / "sketch" / "bat.ndjson"
  os.makedirs(path.parent)
  recs = [fx.quickdraw_record("bat", k, k) for k in range(300)]
  with open(path, "w") as f:
    for r in recs:
      f.write(json.dumps(r) + "\n")
    f.write("\x00\x01 garbage that a full parse would trip over\n" * 50)
  src = get_source("quickdraw", str(tmp_path), subset="all", max_per_class=150,
                   recognized_only=True)
  items = src.split("test").sketches
  assert src.skipped == ()  # stopped long before the garbage
  recognized = [k for k, r in enumerate(recs, start=1) if r["recognized"]][:150]
  assert [int(s.key.rsplit(":", 1)[1]) for s in items] == recognized
  for item in items[::37]:
    lineno = int(item.key.rsplit(":", 1)[1])
    assert src.read_line(item)["key_id"] == recs[lineno - 1]["key_id"]
  src = get_source("quickdraw", str(tmp_path), subset="all", recognized_only=True)
  assert len(src.skipped) == 50 and src.skipped[0][0] == f"{path}:301"
  src = get_source("quickdraw", str(tmp_path), subset="all", max_per_class=7)
  assert len(src.split("test").sketches) == 7
  offsets = src._lines[str(path)][1]
  assert offsets.dtype == np.int64 and offsets.shape == (7,)


def test_quickdraw_malformed_lines_fail_by_file_and_line(tmp_path):
  w = fx.write_quickdraw(str(tmp_path), malformed=True)
  src = get_source("quickdraw", str(tmp_path))
  items = {s.key: s for sp in ("train", "test") for s in src.split(sp).sketches}
  for key, why in zip(w["bad"], ["malformed ndjson", "no strokes", "differ"]):
    with pytest.raises(BadSample, match=why) as e:
      src.load_sketch(items[key])
    assert e.value.key == key
  # A record whose word is another class is refused, not silently mislabelled.
  path = w["files"]["bat"]
  with open(path, "a") as f:
    f.write(json.dumps(fx.quickdraw_record("cat", 1, 1)) + "\n")
  src = get_source("quickdraw", str(tmp_path))
  last = [s for s in src.split("test").sketches if s.key.startswith(path)][-1]
  with pytest.raises(BadSample, match="word='cat'"):
    src.load_sketch(last)


# ---------------------------------------------------------------------------- QMUL


@pytest.mark.parametrize("name", ["ShoeV2", "ChairV2"])
def test_qmul_pairs_each_sketch_with_its_photo(tmp_path, name):
  w = fx.write_qmul(str(tmp_path), name)
  for root in (str(tmp_path), w["folder"]):  # parent or the ShoeV2/ folder itself
    src = get_source(name.lower(), root)
    assert src.categories == ({"ShoeV2": "shoe", "ChairV2": "chair"}[name],)
    for split in ("train", "test"):
      sp = src.split(split)
      assert [p.key for p in sp.photos] == sorted(w["photos"][split])
      assert len(sp.sketches) == len(w["keys"][split])
      for s in sp.sketches:
        pkey = s.key.split("[", 1)[1][:-1]
        assert pkey in w["keys"][split]
        assert _stem(sp.photos[s.photo].key) == "_".join(pkey.split("/")[-1].split("_")[:-1])
        sk = src.load_sketch(s)
        assert sk.raster is None and len(sk.strokes) >= 2
      _assert_colour(src.load_photo(sp.photos[0]), _stem(sp.photos[0].key))


def test_qmul_missing_photo_and_malformed_coordinates(tmp_path):
  w = fx.write_qmul(str(tmp_path), "ShoeV2", missing_photo=True, malformed=True)
  src = get_source("shoev2", str(tmp_path))
  assert [k for k, _ in src.skipped] == [w["bad"][0]]
  assert all("9999999999" not in s.key for s in src.split("train").sketches)
  bad = next(s for s in src.split("test").sketches if s.key.endswith(f"[{w['bad'][1]}]"))
  with pytest.raises(BadSample, match="shape") as e:
    src.load_sketch(bad)
  assert e.value.key == bad.key
  with pytest.raises(DataError, match="9999999999.png"):
    get_source("shoev2", str(tmp_path), strict=True)


def test_qmul_unreadable_pickle(tmp_path):
  os.makedirs(tmp_path / "ShoeV2")
  (tmp_path / "ShoeV2" / "ShoeV2_Coordinate").write_bytes(b"garbage")
  with pytest.raises(DataError, match="ShoeV2_Coordinate"):
    get_source("shoev2", str(tmp_path))


def test_raster_sketch_keeps_ink_when_downscaled():
  raster = np.full((256, 256), 255, np.uint8)
  raster[100:103, 20:230] = 0  # a 3-px line, as in the 256-px Sketchy PNGs
  assert images.to_square(raster, 24).min() > 150  # plain resize: a faint grey
  small = images.sketch_to_square(raster, 24)
  chex.assert_shape(small, (24, 24))
  assert small.min() < 64 and (small[0] == 255).all()
  np.testing.assert_array_equal(images.sketch_to_square(raster, 224),
                                images.to_square(raster, 224))  # no thickening at ~1x
