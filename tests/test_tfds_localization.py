"""TFDS / ArrayRecord copies of the localization datasets (sgvu.data.tfds_localization): built from COCO and VOC
fixture files with bad input in them, read back exactly as the directory readers read them, without TensorFlow."""

import dataclasses
import json
import os
import pickle
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fixtures_data as fx
from sgvu.data import localization as loc
from sgvu.data import localization_pipeline as lp
from sgvu.data import registry, tfds_localization as tl
from sgvu.data.base import DataError, SketchItem
from sgvu.data.voc_localization import VOC_CATEGORIES
from test_localization_data import FRACTIONS, QD, _coco, _jpeg, _quickdraw, _voc_xml

TESTS = os.path.dirname(os.path.abspath(__file__))


def _truncate(path):
  data = open(path, "rb").read()
  with open(path, "wb") as f:
    f.write(data[: len(data) // 2])


def _write_coco(root):
  """test_localization_data's COCO (zero-area box, unknown image id, missing file, no 'sheep' sketches) + a
  truncated JPEG in each image set, a malformed ndjson line (an index skip) and a line of the wrong word."""
  d = _coco(root)
  _truncate(os.path.join(root, "val2017", "000000000002.jpg"))  # the 'dog' test query
  _truncate(os.path.join(root, "train2017", "000000000012.jpg"))
  with open(os.path.join(d["sketch_root"], "clock.ndjson"), "a") as f:
    f.write("{not json\n")
  car = os.path.join(d["sketch_root"], "car.ndjson")
  lines = open(car).read().splitlines()
  lines[3] = json.dumps(fx.quickdraw_record("bus", 1000, 7))  # recognized; fails when loaded as a car
  open(car, "w").write("\n".join(lines) + "\n")
  return dict(sketch_root=d["sketch_root"], sketch_fractions=FRACTIONS, sketch_size=32)  # recognized_only: default


def _write_voc(root):
  """VOC2007 with a malformed XML, a missing JPEG, a missing XML, a zero-area box, 'difficult' and other-class
  objects, a truncated JPEG; QuickDraw files with a malformed line (indexed: recognized_only=False)."""
  folder = os.path.join(root, "VOCdevkit", "VOC2007")
  anns = {"000005": [("chair", (11, 21, 40, 45), 0), ("chair", (41, 5, 60, 30), 1), ("person", (1, 1, 9, 9), 0)],
          "000007": [("cat", (5, 5, 30, 30), 0), ("dog", (31, 5, 60, 40), 0)],
          "000008": [("dog", (5, 5, 30, 30), 0), ("bird", (31, 5, 60, 40), 0)],
          "000009": None, "000012": [("dog", (5, 5, 30, 30), 0)],
          "000001": [("horse", (5, 5, 30, 30), 0), ("car", (31, 5, 60, 40), 0)],
          "000002": [("bird", (5, 5, 30, 30), 1), ("sheep", (31, 5, 60, 40), 0), ("dog", (2, 2, 20, 20), 0)],
          "000003": [("cow", (30, 5, 10, 40), 0)]}
  os.makedirs(os.path.join(folder, "Annotations"))
  for i, objs in anns.items():
    with open(os.path.join(folder, "Annotations", f"{i}.xml"), "w") as f:
      f.write("<annotation><object><name>dog</name>" if objs is None else _voc_xml(objs))
    if i != "000012":
      _jpeg(os.path.join(folder, "JPEGImages", f"{i}.jpg"))
  _truncate(os.path.join(folder, "JPEGImages", "000001.jpg"))  # test: car, horse
  _truncate(os.path.join(folder, "JPEGImages", "000008.jpg"))  # train: dog, bird
  os.makedirs(os.path.join(folder, "ImageSets", "Main"))
  for name, ids in (("trainval", ["000005", "000007", "000008", "000009", "000012"]),
                    ("test", ["000001", "000002", "000003", "000004"])):  # 000004.xml is missing
    with open(os.path.join(folder, "ImageSets", "Main", f"{name}.txt"), "w") as f:
      f.write("\n".join(ids) + "\n")
  sketches = os.path.join(root, "quickdraw")
  _quickdraw(sketches, VOC_CATEGORIES)
  with open(os.path.join(sketches, "dog.ndjson"), "a") as f:
    f.write("{not json\n")
  return dict(sketch_root=sketches, **QD)


WRITERS = {"coco": _write_coco, "voc": _write_voc}


@pytest.fixture(scope="module", params=sorted(WRITERS))
def case(request, tmp_path_factory):
  name = request.param
  root, out = str(tmp_path_factory.mktemp(name)), str(tmp_path_factory.mktemp(name + "_tfds"))
  options = WRITERS[name](root)
  lines = []
  path = tl.build(name, root, out, report=lines.append, **options)
  return dict(name=name, root=root, out=out, options=options, path=path, lines=lines)


_outcome = fx.outcome


def _same_arrays(a, b):
  assert a.dtype == b.dtype and a.shape == b.shape
  np.testing.assert_array_equal(a, b)


def _same_record(a, b):
  assert (a.key, a.image_id) == (b.key, b.image_id)
  for f in ("boxes", "labels", "ignore"):
    _same_arrays(getattr(a, f), getattr(b, f))


def _same_strokes(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    _same_arrays(x, y)


def _same_sample(a, b):
  if isinstance(a, tuple) or isinstance(b, tuple):
    assert a == b
    return
  for f in dataclasses.fields(loc.LocalizationSample):
    x, y = getattr(a, f.name), getattr(b, f.name)
    if f.name == "strokes":
      for s, t in zip(x, y, strict=True):
        _same_strokes(s.strokes, t.strokes)
    elif isinstance(x, np.ndarray):
      _same_arrays(x, y)
    else:
      assert x == y, f.name


def _open_both(case, **extra):
  options = {**case["options"], **extra}
  return (registry.get_localization_source(case["name"], case["root"], **options),
          tl.open(case["name"], case["out"], **options))


def test_copy_reads_back_as_the_directory(case):
  d, t = _open_both(case)
  assert "tensorflow" not in sys.modules
  assert case["path"] == tl.dataset_dir(case["out"], case["name"], case["options"])
  assert isinstance(t, type(d)) and t.name == d.name
  for attr in ("categories", "seen", "unseen", "split_names", "seed", "num_query_sketches", "sketch_size",
               "queries", "image_sets", "root", "max_images", "difficult", "folder"):
    assert getattr(t, attr, None) == getattr(d, attr, None), attr
  assert t.skipped == d.skipped  # the QuickDraw index's skips, before any split
  for name in d.split_names:  # split by split: the skips and counts come as the splits are indexed
    sd, st = d.split(name), t.split(name)
    assert t.skipped == d.skipped and t.dropped == d.dropped, name
    assert (st.name, st.categories, st.sketch_part, st.items) == (sd.name, sd.categories, sd.sketch_part, sd.items)
    assert len(st.images) == len(sd.images)
    for a, b in zip(sd.images, st.images):
      _same_record(a, b)
    for i in range(len(sd)):
      for draw in (0, 3):  # seeded draws of the query sketches
        _same_sample(_outcome(lambda: sd.get(i, draw)), _outcome(lambda: st.get(i, draw)))
  assert getattr(t, "coco_category_ids", None) == getattr(d, "coco_category_ids", None)
  bad_images = []
  for image_set in d.image_sets.values():
    for rec in d._records[image_set]:  # pylint: disable=protected-access  # every indexed image, queried or not
      a, b = _outcome(lambda: d.load_image(rec)), _outcome(lambda: t.load_image(rec))
      if isinstance(a, tuple):
        assert b == a
        bad_images.append(a)
      else:
        _same_arrays(a, b)  # pixel for pixel
  assert bad_images and sorted(k for _, k, _ in bad_images) == sorted(k for k, _ in t.load_skipped)
  bad_sketches = []
  for part in ("train", "val", "test"):
    for label in range(len(d.categories)):
      pool = d.sketches.pool(part, label)
      assert t.sketches.pool(part, label) == pool
      for key in pool:
        item = SketchItem(key, label)
        a, b = _outcome(lambda: d.sketches.load_sketch(item)), _outcome(lambda: t.sketches.load_sketch(item))
        if isinstance(a, tuple):
          assert a == b
          bad_sketches.append(a)
        else:
          _same_strokes(a.strokes, b.strokes)
  assert bad_sketches and d.skipped  # a malformed line and a wrong word fail alike
  # The build printed what it skipped; its summary counts it.
  meta = tl.metadata(case["path"])
  assert meta["skipped"] == len(d.skipped) + len(bad_images)
  for key, _ in d.skipped:
    assert any(key in line for line in case["lines"]), key
  assert f"skipped {meta['skipped']} item(s)" in tl.summary(meta)


def test_read_time_options_use_the_same_copy(case):
  extra = dict(seed=7, num_query_sketches=3, queries="one", sketch_size=24)
  extra.update(unseen_group=2) if case["name"] == "coco" else extra.update(unseen=("bus", "dog"))
  assert tl.dataset_dir(case["out"], case["name"], {**case["options"], **extra}) == case["path"]
  d, t = _open_both(case, **extra)
  for name in ("train", "test_unseen"):
    sd, st = d.split(name), t.split(name)
    assert st.items == sd.items and t.skipped == d.skipped and t.dropped == d.dropped
    for i in range(len(sd)):
      _same_sample(_outcome(lambda: sd.get(i, 1)), _outcome(lambda: st.get(i, 1)))
  # strict=True raises the reader's DataError at the same point (construction, or the split indexing it)
  def first_error(make):
    try:
      src = make()
      for name in src.split_names:
        src.split(name)
    except DataError as e:
      return str(e)
    return None
  strict = {**case["options"], "strict": True}
  expected = first_error(lambda: registry.get_localization_source(case["name"], case["root"], **strict))
  assert expected and first_error(lambda: tl.open(case["name"], case["out"], **strict)) == expected


def test_loaders_give_the_same_batches(case):
  d, t = _open_both(case)
  boxes = dict(short_side=32, max_side=48, max_boxes=6)
  for name in ("test", "test_seen"):
    skipped = {"d": [], "t": []}
    bd = list(lp.eval_batches(d.split(name), batch_size=2, skipped=skipped["d"], **boxes))
    bt = list(lp.eval_batches(t.split(name), batch_size=2, skipped=skipped["t"], **boxes))
    assert len(bd) == len(bt) and skipped["d"] == skipped["t"]
    for x, y in zip(bd, bt):
      assert sorted(x) == sorted(y)
      for k in x:
        _same_arrays(x[k], y[k])
  assert skipped["d"]  # a corrupt image holds a test_seen query
  # grain's training loader (seeded draws), from a pickled copy as grain workers get it
  t = pickle.loads(pickle.dumps(t))
  kw = dict(batch_size=2, seed=5, num_workers=0, **boxes)
  it_d, it_t = lp.train_loader(d, "train", **kw), lp.train_loader(t, "train", **kw)
  for _ in range(3):
    x, y = next(it_d), next(it_t)
    for k in x:
      _same_arrays(x[k], y[k])
  assert it_d.skipped_counts() == it_t.skipped_counts() and it_d.skipped_counts()


def test_reuse(case):
  info = os.path.join(case["path"], "dataset_info.json")
  mtime, lines = os.path.getmtime(info), []
  assert tl.build(case["name"], case["root"], case["out"], report=lines.append, **case["options"]) == case["path"]
  assert any("reused the complete build" in line for line in lines) and os.path.getmtime(info) == mtime
  if case["name"] == "voc":  # overwrite=True rebuilds in place
    lines.clear()
    assert tl.build("voc", case["root"], case["out"], report=lines.append, overwrite=True, **case["options"]) \
        == case["path"]
    assert not any("reused" in line for line in lines) and os.path.getmtime(info) > mtime
    assert tl.open("voc", case["out"], **case["options"]).split("test").items == \
        registry.get_localization_source("voc", case["root"], **case["options"]).split("test").items


def _version_dirs(out, name, options):
  parent = os.path.dirname(tl.dataset_dir(out, name, options))
  return sorted(os.listdir(parent)) if os.path.isdir(parent) else []


def test_build_that_raises_leaves_nothing_that_reads(tmp_path, monkeypatch):
  root, out = str(tmp_path / "voc"), str(tmp_path / "out")
  options = _write_voc(root)
  original = tl._Builder._sketches  # pylint: disable=protected-access

  def failing(self, source, plan):
    for n, example in enumerate(original(self, source, plan)):
      if n == 5:
        raise RuntimeError("boom: disk full")
      yield example

  monkeypatch.setattr(tl._Builder, "_sketches", failing)  # pylint: disable=protected-access
  with pytest.raises(RuntimeError, match="boom"):
    tl.build("voc", root, out, report=lambda s: None, **options)
  assert "1.0.0" not in _version_dirs(out, "voc", options)
  path = tl.dataset_dir(out, "voc", options)
  with pytest.raises(DataError, match=re.escape(path) + r"(.|\n)*build_tfds --dataset=voc"):
    tl.open("voc", out, **options)
  monkeypatch.setattr(tl._Builder, "_sketches", original)  # pylint: disable=protected-access
  lines = []
  assert tl.build("voc", root, out, report=lines.append, **options) == path
  assert not any("reused" in line for line in lines)
  assert tl.open("voc", out, **options).split("train").items == \
      registry.get_localization_source("voc", root, **options).split("train").items


def test_killed_build_reads_as_missing_then_rebuilds(tmp_path):
  root, out = str(tmp_path / "voc"), str(tmp_path / "out")
  options = _write_voc(root)
  code = textwrap.dedent(f"""
      import os, signal
      from sgvu.data import tfds_localization as tl
      original = tl._Builder._images
      def dying(self, plan):
        for n, example in enumerate(original(self, plan)):
          if n == 1:
            os.kill(os.getpid(), signal.SIGKILL)  # mid-split, shards half written
          yield example
      tl._Builder._images = dying
      tl.build("voc", {root!r}, {out!r}, report=lambda s: None, **{options!r})
      """)
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                        env={**os.environ, "PYTHONPATH": os.path.dirname(TESTS)})
  assert proc.returncode == -9, proc.stderr[-2000:]
  left = _version_dirs(out, "voc", options)
  assert "1.0.0" not in left and any(n.startswith("incomplete.") for n in left)
  with pytest.raises(DataError, match="interrupted build left"):
    tl.open("voc", out, **options)
  lines = []
  tl.build("voc", root, out, report=lines.append, **options)
  assert any("interrupted earlier builds" in line for line in lines)
  assert tl.open("voc", out, **options).split("test").items == \
      registry.get_localization_source("voc", root, **options).split("test").items


def test_clear_errors(case, tmp_path):
  name, options = case["name"], case["options"]
  missing = str(tmp_path / "none")
  with pytest.raises(DataError) as e:
    tl.open(name, missing, **options)
  text = str(e.value)
  assert tl.dataset_dir(missing, name, options) in text
  assert f"python -m sgvu.tools.build_tfds --dataset={name} --manual_dir=DIR --option sketch_root=" in text
  assert "--option 'sketch_fractions=[0.6, 0.1, 0.3]'" in text and f"--data_dir={missing}" in text
  with pytest.raises(DataError, match=r"Configs built there: \['(recognized_only-False\.)?sketch_fractions-"):
    tl.open(name, case["out"])  # the default config was not built
  for bad in ("synth", "sketchy", "cocoo"):
    with pytest.raises(DataError, match=re.escape(f"dataset {bad!r}; valid: ['coco', 'voc']")):
      tl.open(bad, case["out"])
    with pytest.raises(DataError, match=re.escape("valid: ['coco', 'voc']")):
      tl.build(bad, case["root"], str(tmp_path / "o"), report=lambda s: None)
  with pytest.raises(DataError, match=f"{name}: unknown option.*'bogus'"):
    tl.open(name, case["out"], bogus=1)
  with pytest.raises(DataError, match="needs a data_dir"):
    tl.open(name, "", **options)
  with pytest.raises(DataError, match="local data_dir"):
    tl.build(name, case["root"], "gs://bucket/tfds", report=lambda s: None, **options)
  with pytest.raises(DataError, match="dataset root"):
    tl.build(name, str(tmp_path / "nowhere"), str(tmp_path / "o"), report=lambda s: None, **options)


def test_cli_builds_reuses_and_the_registry_opens_the_copy(case, tmp_path, capsys):
  from sgvu.tools import build_tfds
  assert build_tfds.LOCALIZATION_DATASETS == tuple(tl.DATASETS)
  argv = [f"--dataset={case['name']}", f"--manual_dir={case['root']}", f"--data_dir={case['out']}"]
  argv += [f"--option={k}={v}" for k, v in case["options"].items()]
  assert build_tfds.main(argv) == 0
  assert "reused: " in capsys.readouterr().out  # the module fixture built it
  assert build_tfds.main(argv + ["--strict"]) == 1  # the fixtures have skipped files
  assert build_tfds.main([f"--dataset={case['name']}", f"--manual_dir={tmp_path / 'nothing'}",
                          f"--data_dir={tmp_path / 'out'}"] + argv[3:]) == 2
  assert "error: " in capsys.readouterr().err
  copy = registry.get_tfds_localization_source(case["name"], case["out"], **case["options"])
  directory = registry.get_localization_source(case["name"], case["root"], **case["options"])
  for split in ("train", "test"):
    assert copy.split(split).items == directory.split(split).items
