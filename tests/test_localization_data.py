"""Sketch-guided localization data: SynthSketch scenes, and COCO / VOC read from tiny copies in their
original formats (instances JSON + JPEGs, VOC XML + ImageSets, QuickDraw ndjson)."""

from __future__ import annotations

import json
import os
import pickle

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import fixtures_data as fx
from sgvu.data import localization as loc, registry
from sgvu.data.base import BadSample, DataError, SketchItem
from sgvu.data.coco_localization import COCO_QUICKDRAW_56, unseen_categories
from sgvu.data.synth import SEEN_CATEGORIES, UNSEEN_CATEGORIES
from sgvu.data.synth.world import parse_key
from sgvu.data.voc_localization import VOC_CATEGORIES

# Lines per QuickDraw class file; the sketch parts are cut 6 / 1 / 3 by line position.
LINES, FRACTIONS = 10, (0.6, 0.1, 0.3)
QD = dict(recognized_only=False, sketch_fractions=FRACTIONS, sketch_size=32)


def _jpeg(path: str, size=(64, 48)) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.new("RGB", size, fx.photo_colour(os.path.basename(path))).save(path, "JPEG", quality=90)


def _quickdraw(folder: str, classes, lines: int = LINES) -> None:
  os.makedirs(folder, exist_ok=True)
  for n, c in enumerate(classes):
    with open(os.path.join(folder, c + ".ndjson"), "w") as f:
      for k in range(lines):
        f.write(json.dumps(fx.quickdraw_record(c, 100 * n + k, 100 * n + k)) + "\n")


# ----------------------------------------------------------------------------
# COCO 2017


def _coco(root: str) -> dict:
  """annotations/instances_{train,val}2017.json + JPEGs; QuickDraw files of all 56 but 'sheep'."""
  cats = [{"id": 100, "name": "person", "supercategory": "person"}]
  cats += [{"id": i + 1, "name": n, "supercategory": "x"} for i, n in enumerate(COCO_QUICKDRAW_56)]
  cid = {c["name"]: c["id"] for c in cats}
  sets = {
      # image id -> [(category, [x, y, w, h], iscrowd)]; no file is written for 'missing'
      "val2017": {1: [("clock", [2, 3, 10, 12], 0), ("car", [20, 10, 15, 8], 0), ("car", [50, 30, 30, 30], 0),
                      ("person", [0, 0, 5, 5], 0), ("car", [1, 1, 30, 30], 1)],
                  2: [("dog", [5, 5, 20, 20], 0), ("dog", [30, 5, 0, 10], 0)],  # the second: zero area
                  3: [("cat", [5, 5, 10, 10], 0)],  # 'missing'
                  4: [("person", [5, 5, 10, 10], 0)],
                  5: [("sheep", [5, 5, 20, 20], 0), ("toilet", [30, 10, 20, 20], 0)]},
      "train2017": {10: [("car", [4, 4, 20, 20], 0), ("clock", [30, 4, 10, 10], 0)],
                    11: [("clock", [4, 4, 20, 20], 0)],
                    12: [("bicycle", [4, 4, 20, 20], 0), ("dog", [30, 4, 20, 20], 0), ("bicycle", [1, 30, 9, 9], 0)]},
  }
  n = 0
  for image_set, imgs in sets.items():
    images, anns = [], []
    for i, objs in imgs.items():
      name = f"{i:012d}.jpg"
      images.append({"id": i, "file_name": name, "width": 64, "height": 48})
      if i != 3:
        _jpeg(os.path.join(root, image_set, name))
      for c, bbox, crowd in objs:
        n += 1
        anns.append({"id": n, "image_id": i, "category_id": cid[c], "bbox": bbox, "area": bbox[2] * bbox[3],
                     "iscrowd": crowd})
    if image_set == "val2017":
      anns.append({"id": 999, "image_id": 77, "category_id": cid["car"], "bbox": [1, 1, 5, 5], "area": 25,
                   "iscrowd": 0})
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    with open(os.path.join(root, "annotations", f"instances_{image_set}.json"), "w") as f:
      json.dump({"images": images, "annotations": anns, "categories": cats}, f)
  sketches = os.path.join(root, "quickdraw")
  _quickdraw(sketches, [c for c in COCO_QUICKDRAW_56 if c != "sheep"])
  return {"root": root, "sketch_root": sketches}


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
  return _coco(str(tmp_path_factory.mktemp("coco")))


def test_coco_unseen_groups_every_4th():
  assert len(COCO_QUICKDRAW_56) == len(set(COCO_QUICKDRAW_56)) == 56
  groups = [unseen_categories(g) for g in range(4)]
  assert [len(g) for g in groups] == [14] * 4 and sorted(sum(groups, ())) == sorted(COCO_QUICKDRAW_56)
  assert groups[1] == ("clock", "toilet", "carrot", "couch", "toothbrush", "apple", "umbrella", "cell phone",
                       "oven", "sandwich", "sink", "broccoli", "cow", "mouse")  # REFERENCES.md, default group
  assert groups[0][:2] == ("bench", "skateboard")  # positions 4, 8
  with pytest.raises(DataError, match="0, 1, 2 or 3"):
    unseen_categories(4)


def test_coco_splits_counts_and_skips(coco):
  src = registry.get_localization_source("coco", coco["root"], sketch_root=coco["sketch_root"], **QD)
  assert len(src.seen) == 42 and src.unseen == unseen_categories(1)
  test = src.split("test")
  assert [s.image_id for s in test.images] == ["1", "2", "5"]
  q = sorted((test.images[i.image].image_id, src.categories[i.label]) for i in test.items)
  assert q == [("1", "car"), ("1", "clock"), ("2", "dog"), ("5", "toilet")]  # sheep: no sketches
  assert {src.categories[i.label] for i in src.split("test_seen").items} == {"car", "dog"}
  assert {src.categories[i.label] for i in src.split("test_unseen").items} == {"clock", "toilet"}
  root = coco["root"]
  skipped = dict(src.skipped)
  assert len(skipped) == 4, skipped
  assert "no QuickDraw file for category 'sheep'" in skipped[os.path.join(coco["sketch_root"], "sheep.ndjson")]
  val_json = os.path.join(root, "annotations", "instances_val2017.json")
  assert skipped[f"{val_json}#annotation7"].startswith("zero-area box")
  assert skipped[os.path.join(root, "val2017", "000000000003.jpg")] == "image file is missing"
  assert "not in 'images'" in skipped[f"{val_json}#annotation999"]
  assert src.dropped == {"val2017: crowd box": 1, "val2017: image without a box of the 56 categories": 1,
                         "test: query of a category without sketches": 1,
                         "test_seen: query of a category without sketches": 1,  # sheep
                         "test_seen: image without a query category": 1,  # 5: sheep, toilet (unseen)
                         "test_unseen: image without a query category": 1}  # 2: dog
  # train: seen queries only, unseen (clock) boxes dropped, image 11 (only clock) has no query
  train = src.split("train")
  assert [s.image_id for s in train.images] == ["10", "12"]
  assert sorted(src.categories[i.label] for i in train.items) == ["bicycle", "car", "dog"]
  assert all(src.categories[l] in src.seen for s in train.images for l in s.labels)
  assert src.dropped["train: image without a query category"] == 1


def test_coco_sample_boxes_and_query_rule(coco):
  src = registry.get_localization_source("coco", coco["root"], sketch_root=coco["sketch_root"], **QD)
  test = src.split("test")
  i = next(n for n, it in enumerate(test.items) if src.categories[it.label] == "car")
  s = test[i]
  assert s.image.shape == (48, 64, 3) and s.image.dtype == np.uint8
  assert s.boxes.dtype == np.float32 and s.labels.dtype == np.int32
  car = src.categories.index("car")
  np.testing.assert_allclose(s.query_boxes, [[20, 10, 35, 18], [50, 30, 64, 48]])  # xywh -> xyxy, clipped
  assert sorted(src.categories[l] for l in s.labels) == ["car", "car", "clock"]  # no person, no crowd
  assert s.query_label == car and s.query_category == "car"
  # the query sketch: a line of car.ndjson's test part (its last 3 lines), parsed by the QuickDraw reader
  (key,) = s.sketch_keys
  path, line = key.rsplit(":", 1)
  assert path == os.path.join(coco["sketch_root"], "car.ndjson") and int(line) in (8, 9, 10)
  assert s.sketches.shape == (1, 32, 32, 3) and s.sketches.dtype == np.uint8 and s.sketches.min() < 128
  with open(path) as f:
    record = json.loads(f.readlines()[int(line) - 1])
  assert record["word"] == "car"
  np.testing.assert_array_equal(np.concatenate(s.strokes[0].strokes),
                                np.concatenate([np.stack(xy[:2], 1) for xy in record["drawing"]]))
  # seeded: another reader picks the same sketches; another draw may pick others
  again = registry.get_localization_source("coco", coco["root"], sketch_root=coco["sketch_root"], **QD)
  assert [again.split("test")[n].sketch_keys for n in range(4)] == [test[n].sketch_keys for n in range(4)]
  assert len({test.get(i, draw=d).sketch_keys for d in range(8)}) > 1
  # train queries draw from the train part (first 6 lines); 3-sketch queries
  src3 = registry.get_localization_source("coco", coco["root"], sketch_root=coco["sketch_root"],
                                     num_query_sketches=3, **QD)
  t = src3.split("train")[0]
  assert t.sketches.shape == (3, 32, 32, 3) and len(set(t.sketch_keys)) == 3
  assert all(int(k.rsplit(":", 1)[1]) <= 6 and os.path.basename(k).startswith(t.query_category + ".ndjson")
             for k in t.sketch_keys)


def test_coco_one_query_per_image_and_strict(coco, tmp_path):
  src = registry.get_localization_source("coco", coco["root"], sketch_root=coco["sketch_root"], queries="one", **QD)
  test = src.split("test")
  assert len(test) == len(test.images) == 3
  for it in test.items:
    assert it.label in test.images[it.image].labels
  again = registry.get_localization_source("coco", coco["root"], sketch_root=coco["sketch_root"], queries="one", **QD)
  assert again.split("test").items == test.items
  with pytest.raises(DataError, match="sheep.ndjson.*no QuickDraw file.*strict=True"):
    registry.get_localization_source("coco", coco["root"], sketch_root=coco["sketch_root"], strict=True, **QD)
  full = str(tmp_path / "qd")
  _quickdraw(full, COCO_QUICKDRAW_56, lines=4)
  strict = registry.get_localization_source("coco", coco["root"], sketch_root=full, strict=True, **QD)
  with pytest.raises(DataError, match=r"instances_val2017\.json#annotation7: zero-area box"):
    strict.split("test")


# ----------------------------------------------------------------------------
# VOC 2007


def _voc_xml(objects) -> str:
  out = ["<annotation><folder>VOC2007</folder><size><width>64</width><height>48</height><depth>3</depth></size>"]
  for name, box, difficult in objects:
    out.append(f"<object><name>{name}</name><pose>Left</pose><truncated>0</truncated>"
               f"<difficult>{difficult}</difficult><bndbox><xmin>{box[0]}</xmin><ymin>{box[1]}</ymin>"
               f"<xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox></object>")
  return "".join(out) + "</annotation>"


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("voc"))
  folder = os.path.join(root, "VOCdevkit", "VOC2007")
  anns = {  # id -> objects (None: malformed XML, 'absent': no file)
      "000005": [("chair", (11, 21, 40, 45), 0), ("chair", (41, 5, 60, 30), 1), ("person", (1, 1, 9, 9), 0)],
      "000007": [("cat", (5, 5, 30, 30), 0), ("dog", (31, 5, 60, 40), 0)],
      "000009": None,
      "000012": [("dog", (5, 5, 30, 30), 0)],  # its JPEG is missing
      "000001": [("horse", (5, 5, 30, 30), 0), ("car", (31, 5, 60, 40), 0)],
      "000002": [("bird", (5, 5, 30, 30), 1), ("sheep", (31, 5, 60, 40), 0)],
      "000003": [("cow", (30, 5, 10, 40), 0)],  # xmax < xmin
      "000004": "absent",
  }
  os.makedirs(os.path.join(folder, "Annotations"))
  for i, objs in anns.items():
    if objs == "absent":
      continue
    with open(os.path.join(folder, "Annotations", f"{i}.xml"), "w") as f:
      f.write("<annotation><object><name>dog</name>" if objs is None else _voc_xml(objs))
    if i != "000012":
      _jpeg(os.path.join(folder, "JPEGImages", f"{i}.jpg"))
  os.makedirs(os.path.join(folder, "ImageSets", "Main"))
  for name, ids in (("trainval", ["000005", "000007", "000009", "000012"]),
                    ("test", ["000001", "000002", "000003", "000004"])):
    with open(os.path.join(folder, "ImageSets", "Main", f"{name}.txt"), "w") as f:
      f.write("\n".join(ids) + "\n")
  _quickdraw(os.path.join(root, "quickdraw"), VOC_CATEGORIES)
  return {"root": root, "folder": folder, "sketch_root": os.path.join(root, "quickdraw")}


def test_voc_splits_difficult_and_skips(voc):
  src = registry.get_localization_source("voc", voc["root"], sketch_root=voc["sketch_root"], **QD)
  assert src.unseen == ("bicycle", "cat", "horse") and len(src.seen) == 7
  train = src.split("train")
  assert [s.image_id for s in train.images] == ["000005", "000007"]
  assert sorted(src.categories[i.label] for i in train.items) == ["chair", "dog"]  # cat: unseen
  s = train[0]
  np.testing.assert_allclose(s.boxes, [[10, 20, 40, 45], [40, 4, 60, 30]])  # 1-based inclusive -> xyxy
  assert s.ignore.tolist() == [False, True] and s.query_boxes.shape == (1, 4)  # the difficult chair is ignored
  test = src.split("test")
  q = sorted((test.images[i.image].image_id, src.categories[i.label]) for i in test.items)
  assert q == [("000001", "car"), ("000001", "horse"), ("000002", "sheep")]  # bird: difficult only
  assert [src.categories[i.label] for i in src.split("test_unseen").items] == ["horse"]
  skipped = dict(src.skipped)
  ann = os.path.join(voc["folder"], "Annotations")
  assert skipped[os.path.join(ann, "000009.xml")].startswith("malformed XML")
  assert skipped[os.path.join(voc["folder"], "JPEGImages", "000012.jpg")] == "image file is missing"
  assert skipped[os.path.join(ann, "000003.xml") + "#object0"].startswith("zero-area box")
  assert skipped[os.path.join(ann, "000004.xml")] == "annotation file is missing"
  assert len(skipped) == 4
  assert src.dropped["trainval: object of another VOC class"] == 1
  assert src.dropped["test: image without a box of the 10 categories"] == 1
  sample = test[0]
  assert sample.image.shape == (48, 64, 3) and os.path.basename(sample.sketch_keys[0]).startswith(
      sample.query_category + ".ndjson:")
  drop = registry.get_localization_source("voc", voc["root"], sketch_root=voc["sketch_root"], difficult="drop", **QD)
  assert drop.split("train")[0].boxes.shape == (1, 4)


def test_voc_empty_sketch_part_and_corrupt_image(voc, tmp_path):
  src = registry.get_localization_source("voc", voc["root"], sketch_root=voc["sketch_root"], recognized_only=False,
                                    sketch_fractions=(1, 0, 0))
  assert len(src.split("test")) == 0 and len(src.split("train")) == 2
  reasons = [r for k, r in src.skipped if k.endswith(".ndjson")]
  assert len(reasons) == 3 and all("no drawings in the 'test' part" in r for r in reasons)  # car, horse, sheep
  # a corrupt JPEG fails when loaded, naming the file (the pipeline counts it as a skip)
  bad = loc.ImageRecord(key=str(tmp_path / "bad.jpg"), image_id="x", boxes=np.zeros((0, 4), np.float32),
                        labels=np.zeros(0, np.int32), ignore=np.zeros(0, bool))
  (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 not a jpeg")
  with pytest.raises(BadSample, match="bad.jpg: cannot decode image"):
    src.load_image(bad)


def test_sources_pickle_for_grain_workers(coco, synth):
  src = registry.get_localization_source("coco", coco["root"], sketch_root=coco["sketch_root"], **QD)
  for split in (src.split("test"), synth.split("test")):
    copy = pickle.loads(pickle.dumps(split))
    a, b = split[1], copy[1]
    np.testing.assert_array_equal(a.image, b.image)
    assert a.sketch_keys == b.sketch_keys


def test_voc_strict_names_the_file(voc):
  src = registry.get_localization_source("voc", voc["root"], sketch_root=voc["sketch_root"], strict=True, **QD)
  with pytest.raises(DataError, match=r"000009\.xml: malformed XML"):
    src.split("train")


# ----------------------------------------------------------------------------
# SynthSketch scenes

SYNTH = dict(num_scenes=(4, 2, 6), image_size=64, sketch_size=32)


@pytest.fixture(scope="module")
def synth():
  return registry.get_localization_source("synth", **SYNTH)


def test_synth_shapes_splits_and_boxes(synth):
  assert synth.seen == SEEN_CATEGORIES and synth.unseen == UNSEEN_CATEGORIES  # zs_sbir's split
  for name in synth.split_names:
    sp = synth.split(name)
    kind = loc.SPLIT_KINDS[name][0]
    allowed = synth.labels_of(kind)
    assert all(it.label in allowed for it in sp.items), name
    for rec in sp.images:
      assert np.all(rec.boxes >= 0) and np.all(rec.boxes <= 64) and np.all(rec.boxes[:, 2:] > rec.boxes[:, :2])
  train = synth.split("train")
  assert len(train) > 0 and all(synth.categories[l] in SEEN_CATEGORIES for r in train.images for l in r.labels)
  s = synth.split("test")[0]
  assert s.image.shape == (64, 64, 3) and s.image.dtype == np.uint8
  assert s.sketches.shape == (1, 32, 32, 3) and s.boxes.shape[1] == 4 and len(s.labels) == len(s.boxes)
  assert len(s.query_boxes) >= 1 and np.all(s.labels[s.labels == s.query_label] == s.query_label)
  np.testing.assert_array_equal(s.query_boxes, s.boxes[s.labels == s.query_label])
  with pytest.raises(DataError, match="valid: \\['train', 'val', 'test'"):
    synth.split("dev")


def test_synth_query_is_another_instance(synth):
  test = synth.split("test")
  for n in range(len(test)):
    s = test[n]
    scene = synth.world.scene(int(s.image_id), 64, synth.num_objects)
    for key in s.sketch_keys:
      category, inst, _ = parse_key(key)
      assert category == s.query_category and inst in synth.instance_ranges["test"]
      query = synth.world.instance(SketchItem(key, 0)).attributes()
      for a, label in zip(scene["attributes"], scene["labels"]):
        if label == s.query_label:  # a scene object of the same category: never the query's instance
          same = {k: v for k, v in a.items() if k != "place"}
          assert same != {k: v for k, v in query.items() if k not in ("place", "neighbour")}


def test_synth_deterministic_multi_sketch_and_materialize(synth):
  again = registry.get_localization_source("synth", **SYNTH)
  a, b = synth.split("test"), again.split("test")
  assert [x.sketch_keys for x in map(a.__getitem__, range(3))] == [x.sketch_keys for x in map(b.__getitem__, range(3))]
  np.testing.assert_array_equal(a[1].image, b[1].image)
  np.testing.assert_array_equal(a[1].sketches, b[1].sketches)
  other = registry.get_localization_source("synth", seed=1, **SYNTH)
  assert not np.array_equal(other.split("test")[0].image, a[0].image)
  three = registry.get_localization_source("synth", num_query_sketches=3, **SYNTH)
  s = three.split("val")[0]
  assert s.sketches.shape == (3, 32, 32, 3)
  assert len({parse_key(k)[1] for k in s.sketch_keys}) == 3  # three different instances
  assert all(parse_key(k)[1] in three.instance_ranges["val"] for k in s.sketch_keys)
  mat = registry.get_localization_source("synth", materialize=True, **SYNTH)
  m = mat.split("test")[2]
  np.testing.assert_array_equal(m.image, a[2].image)
  np.testing.assert_array_equal(m.sketches, a[2].sketches)
  assert len(mat._images) == 12  # pylint: disable=protected-access


def test_pad_targets_static_shapes(synth):
  boxes, labels, valid = loc.pad_targets([[0, 0, 4, 4], [1, 1, 3, 3]], [3, 5], 6)
  assert boxes.shape == (6, 4) and boxes.dtype == np.float32 and labels.dtype == np.int32
  assert valid.tolist() == [True, True] + [False] * 4 and labels[2:].tolist() == [-1] * 4
  with pytest.raises(ValueError, match="max_len=1"):
    loc.pad_targets([[0, 0, 4, 4], [1, 1, 3, 3]], [3, 5], 1)
  test = synth.split("test")

  @jax.jit
  @chex.assert_max_traces(n=1)
  def count(t):
    return jnp.sum(t["is_query"]), jnp.sum(t["valid"])

  for n in range(len(test)):
    s = test[n]
    t = s.targets(8)
    chex.assert_shape([t["boxes"], t["labels"], t["valid"], t["is_query"]], [(8, 4), (8,), (8,), (8,)])
    q, v = count(t)
    assert int(q) == len(s.query_boxes) and int(v) == len(s.boxes)


def test_registry_names_bad_input(coco):
  with pytest.raises(DataError, match=r"valid: \['coco', 'synth', 'voc'\]"):
    registry.get_localization_source("cocoo")
  with pytest.raises(DataError, match="synth: bad option.*image_sise"):
    registry.get_localization_source("synth", image_sise=64)
  with pytest.raises(DataError, match="takes no root"):
    registry.get_localization_source("synth", "/data")
  with pytest.raises(DataError, match="sketch_root"):
    registry.get_localization_source("coco", coco["root"])
  with pytest.raises(DataError, match="num_query_sketches"):
    registry.get_localization_source("synth", num_query_sketches=0)
  with pytest.raises(DataError, match="voc: dataset root"):
    registry.get_localization_source("voc", coco["root"], sketch_root=coco["sketch_root"])
