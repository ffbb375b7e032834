"""Composed (sketch + text) retrieval data: the synthetic scene / instance sources and the real readers."""

import csv
import json
import os
import pickle

import numpy as np
import pytest
from PIL import Image

import fixtures_data as fx
from sgvu.data import BadSample, DataError
from sgvu.data import composed as C
from sgvu.data import registry as data_registry
from sgvu.data import composed_real as R
from sgvu.data.synth import catalog, palette
from sgvu.data.synth import caption as caption_lib

SMALL = dict(num_train=6, num_test_1k=4, num_test_5k=5, num_open=4, num_val=3)
CATS = ("apple", "bucket", "car", "cup", "shoe", "kite", "pear", "teapot")  # 5 seen, 3 unseen
SIZE = 48


@pytest.fixture(scope="module")
def scenes():
  return C.SynthComposedScenes(seed=3, categories=CATS, **SMALL)


@pytest.fixture(scope="module")
def instances():
  return C.SynthComposedInstances(seed=1, categories=CATS, photos_per_category=2, sketches_per_photo=2)


def _phrase(a):
  words = f"plain {a['colour']} {a['category']}" if a["texture"] == "plain" else \
      f"{a['colour']} {a['texture']} {a['category']}"
  return f"{caption_lib.article(words)} {words}"


# ---------------------------------------------------------------------------- synthetic scenes


def test_scene_splits_sizes_and_categories(scenes):
  assert scenes.kind == "scene" and scenes.split_names == ("train", "val", "test1k", "test5k", "open")
  sizes = {name: (len(scenes.split(name).images), len(scenes.split(name).queries)) for name in scenes.split_names}
  assert sizes == {"train": (6, 6), "val": (3, 3), "test1k": (4, 4), "test5k": (5, 4), "open": (4, 3)}
  # Each split is its own stream: validation scenes are never test or train scenes.
  assert scenes.scene("val", 0)["caption"] not in {scenes.scene(n, 0)["caption"] for n in ("train", "test1k")}
  for name in scenes.split_names:
    sp = scenes.split(name)
    assert sp.image_labels == (-1,) * len(sp.images) and len(set(sp.images)) == len(sp.images)
    assert len({q.key for q in sp.queries}) == len(sp.queries)
    want = catalog.UNSEEN_CATEGORIES if name == "open" else catalog.SEEN_CATEGORIES
    assert all(scenes.categories[q.label] in want for q in sp.queries)
    assert set(sp.categories) == {scenes.categories[q.label] for q in sp.queries}
    if name != "open":  # every object of a seen split is seen
      for q in sp.queries:
        assert all(a["category"] in catalog.SEEN_CATEGORIES for a in scenes.scene(name, q.target)["attributes"])
  with pytest.raises(KeyError, match="test5k"):
    scenes.split("test")


def test_scene_query_text_is_the_caption_with_the_sketched_phrase_replaced(scenes):
  for name in scenes.split_names:
    for q in scenes.split(name).queries:
      info = scenes.scene(name, q.target)
      phrases = [_phrase(a) for a in info["attributes"]]
      place = palette.PLACES[info["place"]]
      assert info["caption"] == " and ".join(phrases) + " " + place
      k = info["sketched"]
      phrases[k] = "a " + C.PLACEHOLDER
      assert q.text == info["text"] == " and ".join(phrases) + " " + place
      assert q.text.split().count(C.PLACEHOLDER) == 1 and q.text.count(C.PLACEHOLDER) == 1
      assert len(q.text.split()) + 2 <= 24  # fits the text encoder's context with start / end tokens
      assert info["attributes"][k]["category"] == scenes.categories[q.label] == scenes.categories[info["labels"][k]]
      x0, y0, x1, y1 = q.box
      assert 0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0
      np.testing.assert_allclose(q.box, info["boxes"][k])
  # The caption is the world's own scene caption of those objects.
  scene = scenes._scene("train", 0)
  assert scenes.scene("train", 0)["caption"] == caption_lib.scene_caption([o[0] for o in scene.objects], scene.place)


def test_scene_rendering_is_deterministic_and_seeded(scenes):
  again = C.SynthComposedScenes(seed=3, categories=CATS, **SMALL)
  other = C.SynthComposedScenes(seed=4, categories=CATS, **SMALL)
  assert again.split("train") == scenes.split("train")
  assert other.split("train").queries != scenes.split("train").queries
  q = scenes.split("train").queries[1]
  np.testing.assert_array_equal(scenes.load_image("train", 1, SIZE), again.load_image("train", 1, SIZE))
  for a, b in zip(scenes.load_sketch(q).strokes, again.load_sketch(q).strokes):
    np.testing.assert_array_equal(a, b)
  # A split's scenes do not depend on another split's size.
  bigger = C.SynthComposedScenes(seed=3, categories=CATS, **dict(SMALL, num_train=9))
  assert bigger.split("test1k") == scenes.split("test1k")
  assert bigger.split("train").queries[:6] == scenes.split("train").queries


def test_scene_pictures_and_pickle(scenes):
  q = scenes.split("open").queries[0]
  img = C.load_image_square(scenes, "open", q.target, SIZE)
  sketch = C.render_query_sketch(scenes, q, SIZE)
  assert img.shape == sketch.shape == (SIZE, SIZE, 3) and img.dtype == sketch.dtype == np.uint8
  assert sketch.min() < 100 and np.median(sketch) == 255  # dark ink on white paper
  copy = pickle.loads(pickle.dumps(scenes))
  assert copy.split("open") == scenes.split("open")
  np.testing.assert_array_equal(C.load_image_square(copy, "open", q.target, SIZE), img)
  np.testing.assert_array_equal(C.render_query_sketch(copy, q, SIZE), sketch)
  with pytest.raises(BadSample, match="synth_composed/open/4"):
    scenes.load_image("open", 4)
  with pytest.raises(BadSample, match="nope"):
    scenes.load_sketch(C.ComposedQuery("x", "nope", "*", 0, 0))


def test_scene_options_are_checked():
  with pytest.raises(DataError, match="unseen"):
    C.SynthComposedScenes(categories=("apple", "car"), **SMALL)
  assert not C.SynthComposedScenes(categories=("apple", "car"), **dict(SMALL, num_open=0)).split("open").queries
  with pytest.raises(DataError, match="num_objects"):
    C.SynthComposedScenes(num_objects=(2, 5))


# ---------------------------------------------------------------------------- synthetic instances


def test_instance_queries_match_their_photos(instances):
  src = instances.photo_source
  assert instances.kind == "instance" and instances.categories == src.categories
  for name, want in (("train", catalog.SEEN_CATEGORIES), ("test", catalog.UNSEEN_CATEGORIES)):
    sp, photos = instances.split(name), src.split(name)
    assert sp.images == tuple(p.key for p in photos.photos)
    assert sp.image_labels == tuple(p.label for p in photos.photos)
    assert len(sp.queries) == len(photos.sketches) and set(sp.categories) <= set(want)
    for q in sp.queries:
      assert 0 <= q.target < len(sp.images) and sp.image_labels[q.target] == q.label and q.box is None
      assert instances.categories[q.label] in want
      words = q.text.split()
      assert words.count(C.PLACEHOLDER) == 1 and len(words) > 1
      attrs = src.attributes(photos.photos[q.target])
      look = words[:words.index(C.PLACEHOLDER)]
      rest = " ".join(words[words.index(C.PLACEHOLDER) + 1:])
      expected = [attrs["colour"], attrs["texture"]]
      assert look in ([], [attrs["colour"]], [attrs["texture"]],
                      expected[::-1] if attrs["texture"] == "plain" else expected)
      assert rest in ("", palette.PLACES[attrs["place"]])
  q = instances.split("test").queries[0]
  assert C.render_query_sketch(instances, q, SIZE).shape == (SIZE, SIZE, 3)
  assert instances.load_image("test", q.target, SIZE).shape == (SIZE, SIZE, 3)


def test_instance_texts_deterministic_varied_and_picklable(instances):
  texts = [q.text for q in instances.split("train").queries]
  again = C.SynthComposedInstances(seed=1, categories=CATS, photos_per_category=2, sketches_per_photo=2)
  assert [q.text for q in again.split("train").queries] == texts
  assert len({len(t.split()) for t in texts}) > 1  # word subsets vary per query
  only = C.SynthComposedInstances(seed=1, categories=CATS, photos_per_category=2, sketches_per_photo=2,
                                  words=("place",))
  assert all(q.text.startswith("* ") and len(q.text.split()) >= 3 for q in only.split("train").queries)
  copy = pickle.loads(pickle.dumps(instances))
  assert copy.split("train") == instances.split("train")
  with pytest.raises(DataError, match="min_words"):
    C.SynthComposedInstances(min_words=4)


def test_registry():
  assert set(data_registry.COMPOSED_DATASETS) == {"synth_scenes", "synth_instances", "cstbir", "fscoco", "shoev2_duet",
                                      "chairv2_duet"}
  with pytest.raises(DataError, match="valid: .*cstbir"):
    data_registry.get_composed_source("cstbirr")
  with pytest.raises(DataError, match="bad option"):
    data_registry.get_composed_source("synth_scenes", num_trian=3)
  with pytest.raises(DataError, match="takes no root"):
    data_registry.get_composed_source("synth_instances", "/tmp")
  src = data_registry.get_composed_source("synth_scenes", categories=CATS, num_test_5k_queries=2, num_open_queries=1, **SMALL)
  assert isinstance(src, C.SynthComposedScenes)
  assert [len(src.split(s).queries) for s in ("test5k", "open")] == [2, 1]
  with pytest.raises(DataError, match="cstbir: dataset root"):
    data_registry.get_composed_source("cstbir", "/nonexistent")


# ---------------------------------------------------------------------------- CSTBIR


def _ndjson(path, drawing):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    f.write(json.dumps({"word": "x", "drawing": drawing}) + "\n")
  return path


def _write_cstbir(root, unknown_split=True):
  for i in range(5):
    fx._write_photo(os.path.join(root, "images", f"{i}.jpg"), f"vg{i}")
  # A cut-off download: the header is intact, the end is missing.
  noise = np.random.default_rng(0).integers(0, 255, (150, 200, 3), dtype=np.uint8)
  Image.fromarray(noise).save(os.path.join(root, "images", "bad.jpg"), "JPEG")
  data = open(os.path.join(root, "images", "bad.jpg"), "rb").read()
  open(os.path.join(root, "images", "bad.jpg"), "wb").write(data[:len(data) * 2 // 3])
  for i in range(4):
    fx._write_sketch_png(os.path.join(root, "sketches", f"s{i}.png"), seed=i)
  _ndjson(os.path.join(root, "sketches", "q.ndjson"), fx.strokes_lib.to_quickdraw(fx._toy_strokes(7)))
  _ndjson(os.path.join(root, "sketches", "empty.ndjson"), [])
  rows = [("train", "a [sketch] on a table", "cup", "0.jpg", "s0.png"),
          ("train", "a [SKETCH] next to a red car", "shoe", "0.jpg", "q.ndjson"),
          ("val", "a <sketch> near a tree", "cup", "1.jpg", "s1.png"),
          ("test_1k", "a man riding a * on the road", "car", "2.jpg", "s2.png"),
          ("test5k", "a tall building", "car", "3.jpg", "s3.png"),
          ("open_category", "a <sketch> in the sky", "kite", "4.jpg", "s0.png"),
          ("train", "a [sketch] by the sea", "cup", "bad.jpg", "s1.png"),  # corrupt image
          ("test1k", "a [sketch] on grass", "car", "1.jpg", "empty.ndjson")]  # empty sketch
  if unknown_split:
    rows.append(("dev", "a [sketch]", "cup", "1.jpg", "s1.png"))
  with open(os.path.join(root, "cstbir.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["split", "text", "object_category", "image_filename", "sketch_filename"])
    w.writerows(rows)


def test_cstbir_reader(tmp_path):
  root = str(tmp_path)
  _write_cstbir(root)
  src = data_registry.get_composed_source("cstbir", root)
  assert src.kind == "scene" and src.categories == ("car", "cup", "kite", "shoe")
  skipped = dict(src.skipped)
  assert set(skipped) == {os.path.join(root, "images", "bad.jpg"), os.path.join(root, "sketches", "empty.ndjson"),
                          os.path.join(root, "cstbir.csv") + ":10"}
  assert "truncated" in skipped[os.path.join(root, "images", "bad.jpg")]
  train = src.split("train")
  assert train.images == (os.path.join(root, "images", "0.jpg"),) and train.image_labels == (-1,)
  assert [(q.text, q.target, src.categories[q.label]) for q in train.queries] == [
      ("a * on a table", 0, "cup"), ("a * next to a red car", 0, "shoe")]
  assert train.categories == ("cup", "shoe")
  assert [q.text for q in src.split("val").queries] == ["a * near a tree"]
  # The empty sketch's image stays in the gallery; only its query is dropped.
  t1k = src.split("test1k")
  assert [os.path.basename(p) for p in t1k.images] == ["2.jpg", "1.jpg"] and len(t1k.queries) == 1
  assert [q.text for q in src.split("test5k").queries] == ["* a tall building"]
  assert src.notes["no sketch token; '* ' prepended"] == 1
  assert src.split("open").categories == ("kite",)
  for name in src.split_names:
    for q in src.split(name).queries:
      assert q.text.count(C.PLACEHOLDER) == 1 and q.box is None
      assert C.render_query_sketch(src, q, 32).shape == (32, 32, 3)
  assert src.load_sketch(train.queries[1]).strokes is not None  # ndjson strokes
  assert src.load_sketch(train.queries[0]).raster is not None  # PNG raster
  img = src.load_image("train", 0)
  assert img.shape == (30, 40, 3)  # native size
  assert C.load_image_square(src, "train", 0, 32).shape == (32, 32, 3)
  assert pickle.loads(pickle.dumps(src)).split("val") == src.split("val")


def test_cstbir_strict_verify_and_layout(tmp_path):
  root = str(tmp_path)
  _write_cstbir(root, unknown_split=False)
  with pytest.raises(DataError, match="bad.jpg"):
    R.CSTBIR(root, strict=True)
  # verify='none' indexes the corrupt image; loading it then names it.
  src = R.CSTBIR(root, verify="none")
  index = src.split("train").images.index(os.path.join(root, "images", "bad.jpg"))
  with pytest.raises(BadSample, match="bad.jpg"):
    src.load_image("train", index)
  # 'full' decodes: a blank PNG sketch is caught too.
  Image.new("L", (64, 64), 255).save(os.path.join(root, "sketches", "s3.png"))
  assert os.path.join(root, "sketches", "s3.png") in dict(R.CSTBIR(root, verify="full").skipped)
  with open(os.path.join(root, "cstbir.csv"), "w") as f:
    f.write("split,text,image_filename\ntrain,a *,0.jpg\n")
  with pytest.raises(DataError, match="cstbir.csv.*object_category"):
    R.CSTBIR(root)
  os.remove(os.path.join(root, "cstbir.csv"))
  with pytest.raises(DataError, match="sketch_filename"):
    R.CSTBIR(root)


# ---------------------------------------------------------------------------- FS-COCO


def _write_fscoco(root, n=6, split_files=True):
  ids = [f"{1 + i % 2}/{100 + i}" for i in range(n)]
  for i in ids:
    path = os.path.join(root, "raster_sketches", i + ".jpg")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(fx.strokes_lib.render_strokes(fx._toy_strokes(int(i[2:])), 128)).save(path, "JPEG")
    fx._write_photo(os.path.join(root, "images", i + ".jpg"), i.replace("/", "_"))
    os.makedirs(os.path.dirname(os.path.join(root, "text", i + ".txt")), exist_ok=True)
    with open(os.path.join(root, "text", i + ".txt"), "w") as f:
      f.write(f"  a giraffe\n standing near tree {i}\n")
  if split_files:
    with open(os.path.join(root, "train.txt"), "w") as f:
      f.write("\n".join(ids[:4]) + "\n")
    with open(os.path.join(root, "test.txt"), "w") as f:
      f.write("\n".join(i + ".jpg" for i in ids[4:]) + "\n")
  return ids


def test_fscoco_reader(tmp_path):
  root = str(tmp_path)
  ids = _write_fscoco(root)
  os.remove(os.path.join(root, "images", ids[1] + ".jpg"))
  open(os.path.join(root, "text", ids[2] + ".txt"), "w").close()
  src = data_registry.get_composed_source("fscoco", root)
  assert src.categories == ("scene",)
  assert sorted(dict(src.skipped)) == sorted([os.path.join(root, "images", ids[1] + ".jpg"),
                                              os.path.join(root, "text", ids[2] + ".txt")])
  train, test = src.split("train"), src.split("test")
  assert len(train.queries) == 2 and len(test.queries) == 2
  q = train.queries[0]
  assert q.text == f"* a giraffe standing near tree {ids[0]}" and q.label == 0 and q.key == q.sketch
  assert os.path.basename(train.images[q.target]) == "100.jpg"
  assert C.render_query_sketch(src, q, 32).shape == (32, 32, 3)
  assert src.load_image("test", test.queries[1].target).shape == (30, 40, 3)
  with pytest.raises(DataError, match=ids[2] + ".txt: empty caption"):
    R.FSCOCO(root, strict=True)


def test_fscoco_split_by_hash_without_split_files(tmp_path):
  root = str(tmp_path)
  ids = _write_fscoco(root, n=12, split_files=False)
  a, b = R.FSCOCO(root), R.FSCOCO(root)
  train = {q.key for q in a.split("train").queries}
  test = {q.key for q in a.split("test").queries}
  assert train == {q.key for q in b.split("train").queries} and not train & test
  assert len(train | test) == len(ids) and train and test


# ---------------------------------------------------------------------------- QMUL duet


def test_qmul_duet(tmp_path):
  w = fx.write_qmul(str(tmp_path), "ShoeV2")
  keys = w["keys"]
  with open(os.path.join(w["folder"], "texts.csv"), "w", newline="") as f:
    wr = csv.writer(f)
    wr.writerow(["sketch_key", "text"])
    wr.writerow([keys["train"][0], "black [sketch] with white laces"])
    wr.writerow([keys["test"][1], "high heel"])
    wr.writerow(["/train/0000_1", "a * nowhere"])
  src = data_registry.get_composed_source("shoev2_duet", str(tmp_path))
  assert src.kind == "instance" and src.categories == ("shoe",)
  assert [k for k, _ in src.skipped] == [os.path.join(w["folder"], "texts.csv") + "[/train/0000_1]"]
  for name in ("train", "test"):
    sp = src.split(name)
    assert sp.images == tuple(sorted(w["photos"][name])) and sp.image_labels == (0,) * len(sp.images)
    assert len(sp.queries) == len(keys[name])
    for q in sp.queries:
      pkey = q.key.split("[", 1)[1][:-1]
      stem = os.path.splitext(os.path.basename(sp.images[q.target]))[0]
      assert pkey.split("/")[-1].rsplit("_", 1)[0] == stem
      want = {keys["train"][0]: "black * with white laces", keys["test"][1]: "* high heel"}.get(pkey, "*")
      assert q.text == want
      assert C.render_query_sketch(src, q, 32).shape == (32, 32, 3)
  assert src.load_image("train", 0).shape == (40, 48, 3)
  with pytest.raises(DataError, match="missing"):
    data_registry.get_composed_source("shoev2_duet", str(tmp_path), texts=os.path.join(str(tmp_path), "none.csv"))
  with pytest.raises(DataError, match="fixed"):
    data_registry.get_composed_source("shoev2_duet", str(tmp_path), variant="ChairV2")


def test_instance_validation_holds_out_seen_categories():
  val = C.SynthComposedInstances(seed=1, categories=CATS, photos_per_category=2, sketches_per_photo=1,
                                 holdout_every=2)
  train, test = val.split("train"), val.split("test")
  assert set(train.categories).isdisjoint(test.categories)
  assert set(train.categories) | set(test.categories) <= set(catalog.SEEN_CATEGORIES)
  assert all(val.categories[l] in test.categories for l in test.image_labels)
