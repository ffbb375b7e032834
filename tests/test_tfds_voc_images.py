"""The TFDS / ArrayRecord copy of the VOC 2012 pretext photos (sgvu.data.tfds_voc_images, issue #16): built from
test_context_real's fixture VOC2012 tree (a corrupt JPEG; here also a missing file and a repeated id) and read back
as sgvu.data.voc_images.VOCImages reads the folder, without TensorFlow; and the real-data context config reading
its pretext photos from the copy (`pretext_data.tfds_data_dir`) gets the same arrays as from the folder."""

import os
import pickle
import re
import sys

import numpy as np
import pytest

import fixtures_data
from experiments import blocks, context_voc_sketchy
from sgvu.data import registry, tfds_voc_images as tv
from sgvu.data.base import DataError
from sgvu.data.voc_images import VOCImages
from sgvu.tasks import context
from sgvu.tools import build_tfds
from test_context_real import CORRUPT_ID, OTHER_CLASSES, PHOTOS_PER_CLASS, VOC_IDS, write_voc

MISSING_ID = VOC_IDS[6]
SPLITS = ("train", "val", "trainval")


def _write(root):
  """write_voc's tree (train: all ten ids, val: the first two), one listed file deleted, and a trainval list with
  a repeated id (VOCImages keeps the first)."""
  write_voc(root)
  os.remove(os.path.join(root, "JPEGImages", f"{MISSING_ID}.jpg"))
  listed = VOC_IDS[5:] + VOC_IDS[:5] + [VOC_IDS[7]]
  with open(os.path.join(root, "ImageSets", "Main", "trainval.txt"), "w") as f:
    f.write("\n".join(listed) + "\n")


def _build(tmp_path, **kw):
  root, out = str(tmp_path / "VOC2012"), str(tmp_path / "tfds")
  if not os.path.isdir(root):
    _write(root)
  lines = []
  path = tv.build(root, out, report=lines.append, **kw)
  return root, out, path, lines


_outcome = fixtures_data.outcome


def _assert_same(a, b):
  if isinstance(a, tuple):
    assert a == b
  else:
    assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a, b)


def test_copy_reads_back_as_the_folder(tmp_path):
  root, out, path, lines = _build(tmp_path)
  assert path == tv.dataset_dir(out) and path.endswith("/sgvu_voc2012_images/default/1.0.0")
  for f in ("dataset_info.json", "features.json", "metadata.json"):
    assert os.path.isfile(os.path.join(path, f)), f
  meta = tv.metadata(path)
  assert meta["skipped"] == 2 and sorted(i for i, _ in meta["skipped_load"]) == sorted([CORRUPT_ID, MISSING_ID])
  assert sum(r >= 0 for r in meta["records"]) == len(VOC_IDS) - 2  # each file stored once for all three splits
  assert all(any(i in line for line in lines) for i in (CORRUPT_ID, MISSING_ID))  # printed
  for split in SPLITS:
    d, t = VOCImages(root, split), tv.open(out, split)
    assert "tensorflow" not in sys.modules
    assert t.ids == d.ids and len(t) == len(d) and t.split == split and t.manual_dir == root
    assert [t.path(i) for i in range(len(t))] == [d.path(i) for i in range(len(d))]
    bad = 0
    for size in (16, 33):
      for i in range(len(d)):
        a = _outcome(lambda: d.load(i, size))
        _assert_same(a, _outcome(lambda: t.load(i, size)))
        bad += isinstance(a, tuple)
      (pd, sd), (pt, st) = d.load_all(size), t.load_all(size)
      _assert_same(pd, pt)
      assert sd == st
    assert bad == 2 * sd and (sd == 2 if split != "val" else sd == 0)
    with pytest.raises(IndexError):
      t.load(len(t), 16)
    with pytest.raises(ValueError, match="size must be a positive int"):
      t.load(0, 0)
  assert tv.open(out, "trainval").ids == list(dict.fromkeys(VOC_IDS[5:] + VOC_IDS[:5]))  # the repeat dropped
  # max_images is read-time: the split's first N ids, the same skips among them.
  for n in (1, 3, 7, 50):
    d, t = VOCImages(root, "train", max_images=n), registry.get_tfds_voc_images(out, "train", max_images=n)
    assert t.ids == d.ids
    (pd, sd), (pt, st) = d.load_all(12), t.load_all(12)
    _assert_same(pd, pt)
    assert sd == st == (0 if n <= 3 else 1 if n <= 6 else 2)
  for bad_n in (0, -1, True, 2.0):
    with pytest.raises(ValueError, match="max_images must be a positive int"):
      tv.open(out, "train", max_images=bad_n)
  # Pickled: the index travels, the records reopen.
  t2 = pickle.loads(pickle.dumps(tv.open(out, "val")))
  np.testing.assert_array_equal(t2.load(1, 20), VOCImages(root, "val").load(1, 20))


def test_all_unreadable_split_fails_alike(tmp_path):
  root, out = str(tmp_path / "VOC2012"), str(tmp_path / "tfds")
  write_voc(root, corrupt=(CORRUPT_ID,))
  with open(os.path.join(root, "ImageSets", "Main", "val.txt"), "w") as f:
    f.write(CORRUPT_ID + "\n")  # every image of val is corrupt
  tv.build(root, out, report=lambda s: None)
  with pytest.raises(ValueError, match=r"none of the 1 images of split 'val'"):
    VOCImages(root, "val").load_all(8)
  with pytest.raises(ValueError, match=r"none of the 1 images of split 'val' under .*sgvu_voc2012_images"):
    tv.open(out, "val").load_all(8)


def _info_mtime(path):
  return os.path.getmtime(os.path.join(path, "dataset_info.json"))


def test_reuse_and_cli(tmp_path, capsys):
  assert build_tfds.VOC_IMAGES_DATASETS == tv.DATASETS
  root, out = str(tmp_path / "VOC2012"), str(tmp_path / "tfds")
  _write(root)
  argv = ["--dataset=voc2012_images", f"--manual_dir={root}", f"--data_dir={out}"]
  assert build_tfds.main(argv) == 0
  o = capsys.readouterr()
  assert "split train: images 8/10" in o.out and "split val: images 2/2" in o.out
  assert "split trainval: images 8/10" in o.out and "skipped 2 file(s)" in o.out and CORRUPT_ID in o.out
  assert "built: " in o.out
  path = tv.dataset_dir(out)
  mtime = _info_mtime(path)
  assert build_tfds.main(argv + ["--strict"]) == 1  # reused, and it has skips
  o = capsys.readouterr()
  assert "reused the complete build" in o.err and "reused: " in o.out and _info_mtime(path) == mtime
  lines = []
  assert tv.build(root, out, report=lines.append) == path and any("reused the complete build" in s for s in lines)
  assert _info_mtime(path) == mtime
  lines = []
  assert tv.build(root, out, overwrite=True, report=lines.append) == path
  assert not any("reused" in s for s in lines)
  assert tv.open(out, "train").ids == VOCImages(root, "train").ids
  assert build_tfds.main(argv + ["--option", "split=val"]) == 2  # the copy has no options
  assert "unknown option" in capsys.readouterr().err
  assert build_tfds.main(["--dataset=voc2012_images", f"--manual_dir={tmp_path / 'nowhere'}",
                          f"--data_dir={tmp_path / 'tfds2'}"]) == 2
  assert "nowhere" in capsys.readouterr().err


def _version_dirs(out):
  parent = os.path.dirname(tv.dataset_dir(out))
  return sorted(os.listdir(parent)) if os.path.isdir(parent) else []


def test_build_that_raises_leaves_nothing_that_reads(tmp_path, monkeypatch):
  root, out = str(tmp_path / "VOC2012"), str(tmp_path / "tfds")
  _write(root)
  original = tv._Builder._generate_examples

  def failing(self, plan):
    for n, example in enumerate(original(self, plan)):
      if n == 2:
        raise RuntimeError("boom: disk full")
      yield example

  monkeypatch.setattr(tv._Builder, "_generate_examples", failing)
  with pytest.raises(RuntimeError, match="boom"):
    tv.build(root, out, report=lambda s: None)
  left = _version_dirs(out)
  assert "1.0.0" not in left
  with pytest.raises(DataError, match=r"no complete TFDS copy at .*sgvu_voc2012_images/default/1\.0\.0"):
    tv.open(out, "train")
  monkeypatch.setattr(tv._Builder, "_generate_examples", original)
  lines = []
  tv.build(root, out, report=lines.append)
  assert not any("reused" in s for s in lines)
  assert tv.open(out, "train").load_all(8)[1] == 2


def test_clear_errors(tmp_path):
  missing = str(tmp_path / "none")
  with pytest.raises(DataError, match=re.escape(missing) + r"/sgvu_voc2012_images/default/1\.0\.0.*\n.*"
                     r"build_tfds --dataset=voc2012_images --manual_dir=VOC2012_DIR --data_dir=" + re.escape(missing)):
    tv.open(missing, "train")
  with pytest.raises(DataError, match="needs a data_dir"):
    registry.get_tfds_voc_images("", "train")
  with pytest.raises(DataError, match="local data_dir"):
    tv.build(str(tmp_path), "gs://bucket/tfds", report=lambda s: None)
  nowhere = str(tmp_path / "nowhere")
  with pytest.raises(DataError, match=r"(?s)voc2012_images: no split .* " + re.escape(repr(nowhere))
                     + r".*ImageSets/Main/<split>\.txt"):
    tv.build(nowhere, str(tmp_path / "out"), report=lambda s: None)
  assert not os.path.exists(tmp_path / "out" / "sgvu_voc2012_images")  # failed before TFDS started
  # No val list at build time: the copy says so when val is asked for.
  root, out = str(tmp_path / "VOC2012"), str(tmp_path / "tfds")
  write_voc(root)
  os.remove(os.path.join(root, "ImageSets", "Main", "val.txt"))
  lines = []
  tv.build(root, out, report=lines.append)
  assert any(re.search(r"no split trainval: .*trainval\.txt", s) for s in lines)
  with pytest.raises(DataError, match=r"has no split 'val' \(.*val\.txt.* is missing\); it holds \['train'\]"):
    tv.open(out, "val")
  with pytest.raises(DataError, match=r"has no split 'test' \(not one of \['train', 'val', 'trainval'\]\)"):
    tv.open(out, "test")
  with pytest.raises(DataError, match="unknown option"):
    tv.dataset_dir(out, options={"split": "val"})
  with pytest.raises(DataError, match=r"no TFDS copy of VOC pretext images named 'voc'"):
    tv.dataset_dir(out, "voc")
  # A folder whose every listed image is unreadable: nothing to copy.
  bad_root = str(tmp_path / "bad")
  write_voc(bad_root, ids=VOC_IDS[:2], corrupt=VOC_IDS[:2])
  with pytest.raises(DataError, match="none of the 2 images listed"):
    tv.build(bad_root, str(tmp_path / "out3"), report=lambda s: None)
  assert "1.0.0" not in _version_dirs(str(tmp_path / "out3"))


# ---------------------------------------------------------------------------- the context task reading the copy


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
  base = tmp_path_factory.mktemp("context_tfds_voc")
  voc, sketchy, out = str(base / "VOC2012"), str(base / "Sketchy"), str(base / "tfds")
  _write(voc)
  fixtures_data.write_sketchy(sketchy, classes=blocks.SKETCHY_CONTEXT_CLASSES + OTHER_CLASSES,
                              photos_per_class=PHOTOS_PER_CLASS, sketches_per_photo=1)
  tv.build(voc, out, report=lambda s: None)
  return voc, sketchy, out


def test_context_config_reads_the_copy(roots):
  voc, sketchy, out = roots
  folder = context_voc_sketchy.get_config("small")
  assert folder.pretext_data.tfds_data_dir == ""  # the folder unless given
  folder.pretext_data.root, folder.data.root = voc, sketchy
  copy = context_voc_sketchy.get_config("small")
  copy.pretext_data.tfds_data_dir, copy.data.root = out, sketchy
  assert copy.pretext_data.root == ""
  context.validate(copy)  # pretext_data.root is not required with the copy
  copy.pretext_data.tfds_data_dir = ""
  with pytest.raises(ValueError, match="config.pretext_data.root is required"):
    context.validate(copy)
  copy.pretext_data.tfds_data_dir = out
  for split, max_images in (("train", 0), ("trainval", 9)):  # trainval's first 9 hold both bad files
    folder.pretext_data.split = copy.pretext_data.split = split
    folder.pretext_data.max_images = copy.pretext_data.max_images = max_images
    a, b = context.Data(folder), context.Data(copy)
    assert a.pretext_skipped == b.pretext_skipped == 2
    for field in ("photos", "edges"):
      x, y = getattr(a, field), getattr(b, field)
      assert x.dtype == y.dtype and x.shape == y.shape and len(x) == (8 if split == "train" else 7), field
      np.testing.assert_array_equal(x, y, err_msg=field)
    assert a.summary() == b.summary()
  copy.pretext_data.tfds_data_dir = str(os.path.dirname(out) + "/elsewhere")
  with pytest.raises(DataError, match="build_tfds --dataset=voc2012_images"):
    context.Data(copy)
