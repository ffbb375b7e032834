"""TFDS / ArrayRecord copies of the composed datasets (sgvu.data.tfds_composed): built from test_composed_data's
fixture layouts and read back exactly as the directory readers read them, without TensorFlow."""

import csv
import os
import pickle
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

import fixtures_data as fx
from sgvu.data import composed as C
from sgvu.data import composed_pipeline, pipeline, tfds_composed
from sgvu.data.base import BadSample, DataError
from sgvu.data.registry import get_composed_source
from test_composed_data import _write_cstbir, _write_fscoco

TESTS = os.path.dirname(os.path.abspath(__file__))


def _texture(folder):
  """The fixtures' photos are one flat colour: give every readable one noise, so a flipped or shifted decode shows."""
  rng = np.random.default_rng(0)
  for base, _, names in os.walk(folder):
    for n in names:
      path = os.path.join(base, n)
      try:
        with Image.open(path) as img:
          img.load()
          size, form = img.size, img.format
      except OSError:  # the cut files stay cut
        continue
      Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path, form)


def _cstbir(root):
  _write_cstbir(root)
  _texture(os.path.join(root, "images"))  # bad.jpg (truncated) and empty.ndjson: skipped while indexing; a row of unknown split
  # Passes the 'quick' check but has no ink: skipped when loaded.
  Image.new("L", (64, 64), 255).save(os.path.join(root, "sketches", "s3.png"))


def _fscoco(root):
  ids = _write_fscoco(root)
  _texture(os.path.join(root, "images"))
  os.remove(os.path.join(root, "images", ids[1] + ".jpg"))  # skipped while indexing
  fx._write_truncated_jpeg(os.path.join(root, "images", ids[3] + ".jpg"))  # likewise ('quick' sees the cut)
  Image.new("RGB", (128, 128), "white").save(os.path.join(root, "raster_sketches", ids[4] + ".jpg"))  # on load


def _duet(variant):
  def write(root):
    # A photo whose sketch has no photo (indexing) and a malformed sketch (on load); a cut photo (on load).
    w = fx.write_qmul(root, variant, missing_photo=True, malformed=True)
    _texture(os.path.join(w["folder"], "photo"))
    data = open(w["photos"]["train"][1], "rb").read()
    open(w["photos"]["train"][1], "wb").write(data[:len(data) // 2])
    with open(os.path.join(w["folder"], "texts.csv"), "w", newline="") as f:
      wr = csv.writer(f)
      wr.writerow(["sketch_key", "text"])
      wr.writerow([w["keys"]["train"][0], "black [sketch] with white laces"])
      wr.writerow([w["keys"]["test"][1], "high heel"])
      wr.writerow(["/train/0000_1", "a * nowhere"])  # names no sketch: skipped
  return write


WRITERS = {"cstbir": _cstbir, "fscoco": _fscoco, "shoev2_duet": _duet("ShoeV2"), "chairv2_duet": _duet("ChairV2")}
CASES = [("cstbir", {}), ("cstbir", {"verify": "none"}), ("fscoco", {}), ("shoev2_duet", {}), ("chairv2_duet", {})]


def _build(tmp_path, name, **options):
  root, out = str(tmp_path / "d"), str(tmp_path / "out")
  if not os.path.isdir(root):
    WRITERS[name](root)
  lines = []
  path = tfds_composed.build(name, root, out, report=lines.append, **options)
  return root, out, path, lines


_outcome = fx.outcome


def _assert_same(a, b):
  if isinstance(a, tuple):
    assert a == b
  elif isinstance(a, np.ndarray):
    assert isinstance(b, np.ndarray) and a.dtype == b.dtype
    np.testing.assert_array_equal(a, b)
  else:  # a Sketch
    assert (a.raster is None) == (b.raster is None) and (a.strokes is None) == (b.strokes is None)
    if a.raster is not None:
      _assert_same(a.raster, b.raster)
    else:
      assert len(a.strokes) == len(b.strokes)
      for x, y in zip(a.strokes, b.strokes):
        _assert_same(x, y)


@pytest.mark.parametrize("name,options", CASES, ids=[f"{n}-{o}" for n, o in CASES])
def test_copy_reads_back_as_the_directory(tmp_path, name, options):
  root, out, path, lines = _build(tmp_path, name, **options)
  assert path == tfds_composed.dataset_dir(out, name, options)
  assert path.endswith("/verify-none/1.0.0" if options else "/default/1.0.0")
  d, t = get_composed_source(name, root, **options), tfds_composed.open(name, out, **options)
  assert "tensorflow" not in sys.modules
  assert (t.name, t.kind, t.categories, t.split_names) == (d.name, d.kind, d.categories, d.split_names)
  assert t.skipped == tuple(d.skipped) and t.skipped  # every fixture has files the index skips
  bad = set()
  for split in d.split_names:
    sd = d.split(split)
    assert t.split(split) == sd  # categories, gallery, image labels, every query's fields, in order
    for i in range(len(sd.images) + 1):  # one past the end: the same BadSample
      a = _outcome(lambda: d.load_image(split, i))
      _assert_same(a, _outcome(lambda: t.load_image(split, i)))
      _assert_same(_outcome(lambda: C.load_image_square(d, split, i, 24)),
                   _outcome(lambda: C.load_image_square(t, split, i, 24)))
      if isinstance(a, tuple) and i < len(sd.images):
        bad.add(a[1:])
    for q in sd.queries:
      a = _outcome(lambda: d.load_sketch(q))
      _assert_same(a, _outcome(lambda: t.load_sketch(q)))
      _assert_same(_outcome(lambda: C.render_query_sketch(d, q, 24)), _outcome(lambda: C.render_query_sketch(t, q, 24)))
      if isinstance(a, tuple):
        bad.add(a[1:])
  with pytest.raises(KeyError, match="valid"):
    t.split("nope")
  # Each fixture has files that fail only when loaded: the build recorded, printed and counted exactly those.
  meta = tfds_composed.metadata(path)
  assert bad and {(k, r) for _, _, k, r in meta["skipped_load"]} == bad
  assert meta["skipped"] == len(d.skipped) + len(bad)
  assert all(any(k in line for line in lines) for k, _ in bad)
  assert f"skipped {meta['skipped']} file(s)" in tfds_composed.summary(meta)
  for attr in ("verify", "variant", "notes"):
    assert getattr(t, attr, None) == getattr(d, attr, None)
  # Pickled (grain / materialize workers): the index travels, the records reopen.
  t2 = pickle.loads(pickle.dumps(t))
  q = next(q for q in d.split("test" if "duet" in name else "train").queries if not isinstance(
      _outcome(lambda: d.load_sketch(q)), tuple))
  _assert_same(t2.load_sketch(q), d.load_sketch(q))
  if "duet" in name:  # the duet trains on photo_source's pairs: same index, skips and batches
    assert (t.photo_source.name, t.photo_source.categories) == (d.photo_source.name, d.photo_source.categories)
    assert t.photo_source.skipped == tuple(d.photo_source.skipped) and t.photo_source.skipped
    for split in ("train", "test"):
      assert t.photo_source.split(split) == d.photo_source.split(split)
    kw = dict(batch_size=2, image_size=16, pairing="instance", seed=3, num_workers=0, process_index=0,
              process_count=1)
    it_d, it_t = pipeline.pair_loader(d.photo_source, "train", **kw), pipeline.pair_loader(t.photo_source, "train", **kw)
    for _ in range(3):
      bd, bt = next(it_d), next(it_t)
      assert sorted(bd) == sorted(bt)
      for k in bd:
        np.testing.assert_array_equal(bd[k], bt[k])
  else:
    assert not hasattr(t, "photo_source")


def _materialize(source, split):
  try:
    return composed_pipeline.materialize_split(source, split, 24, num_workers=0)
  except DataError as e:  # a split with no query left fails alike
    return str(e)


@pytest.mark.parametrize("name,options", [("cstbir", {"verify": "none"}), ("fscoco", {}), ("shoev2_duet", {})])
def test_materialize_split_gives_the_same_arrays(tmp_path, name, options):
  root, out, _, _ = _build(tmp_path, name, **options)
  d, t = get_composed_source(name, root, **options), tfds_composed.open(name, out, **options)
  skips = 0
  for split in d.split_names:
    a, b = _materialize(d, split), _materialize(t, split)
    if isinstance(a, str):
      assert a == b
      continue
    assert a.skipped == b.skipped and a.texts == b.texts and a.name == b.name
    skips += len(a.skipped)
    for field in ("sketches", "labels", "targets", "boxes", "has_box", "images", "image_labels", "query_index",
                  "image_index"):
      x, y = getattr(a, field), getattr(b, field)
      assert x.dtype == y.dtype and x.shape == y.shape, field
      np.testing.assert_array_equal(x, y, err_msg=field)
  assert skips  # the fixtures' load-time failures reached the data path


def _info_mtime(path):
  return os.path.getmtime(os.path.join(path, "dataset_info.json"))


def test_reuse_configs_and_layout(tmp_path):
  root, out, path, lines = _build(tmp_path, "shoev2_duet")
  assert not any("reused" in line for line in lines)
  for f in ("dataset_info.json", "features.json", "metadata.json"):
    assert os.path.isfile(os.path.join(path, f)), f
  # TFDS reads the copy itself: one record per readable file, keys in index order.
  meta = tfds_composed.metadata(path)
  images = tfds.builder_from_directory(path).as_data_source(split="images")
  assert len(images) == sum(r >= 0 for r in meta["images"]["records"]) and len(images[0]["image"]) > 100
  mtime, lines = _info_mtime(path), []
  assert tfds_composed.build("shoev2_duet", root, out, report=lines.append) == path
  assert any("reused the complete build" in line for line in lines) and _info_mtime(path) == mtime
  # strict is read-time (same copy); at open it raises for the first index skip, as the reader would.
  assert tfds_composed.build("shoev2_duet", root, out, strict=False, report=lines.append) == path
  with pytest.raises(DataError, match=r"9999999999\.png: photo missing.*strict=True"):
    tfds_composed.open("shoev2_duet", out, strict=True)
  lines = []
  assert tfds_composed.build("shoev2_duet", root, out, overwrite=True, report=lines.append) == path
  assert not any("reused" in line for line in lines)
  # Content options name their own copy; a texts path is hashed into a name.
  texts = os.path.join(root, "ShoeV2", "texts.csv")
  other = tfds_composed.build("shoev2_duet", root, out, texts=texts, report=lambda s: None)
  assert re.search(r"/sgvu_shoev2_duet/texts-[0-9a-f]{10}/1\.0\.0$", other)
  assert tfds_composed.open("shoev2_duet", out, texts=texts).split("test") == \
      get_composed_source("shoev2_duet", root, texts=texts).split("test")


def _version_dirs(out, name):
  parent = os.path.dirname(tfds_composed.dataset_dir(out, name, {}))
  return sorted(os.listdir(parent)) if os.path.isdir(parent) else []


def test_build_that_raises_leaves_nothing_that_reads(tmp_path, monkeypatch):
  root, out = str(tmp_path / "d"), str(tmp_path / "out")
  _fscoco(root)
  original = tfds_composed._Builder._generate_examples

  def failing(self, source, plan):
    for n, example in enumerate(original(self, source, plan)):
      if n == 2:
        raise RuntimeError("boom: disk full")
      yield example

  monkeypatch.setattr(tfds_composed._Builder, "_generate_examples", failing)
  with pytest.raises(RuntimeError, match="boom"):
    tfds_composed.build("fscoco", root, out, report=lambda s: None)
  assert "1.0.0" not in _version_dirs(out, "fscoco")
  with pytest.raises(DataError, match=r"no complete TFDS copy at .*sgvu_fscoco/default/1\.0\.0"):
    tfds_composed.open("fscoco", out)
  monkeypatch.setattr(tfds_composed._Builder, "_generate_examples", original)
  lines = []
  tfds_composed.build("fscoco", root, out, report=lines.append)
  assert not any("reused" in line for line in lines)
  assert tfds_composed.open("fscoco", out).split("train") == get_composed_source("fscoco", root).split("train")


def test_killed_build_reads_as_missing_then_rebuilds(tmp_path):
  root, out = str(tmp_path / "d"), str(tmp_path / "out")
  _fscoco(root)
  code = textwrap.dedent(f"""
      import os, signal
      from sgvu.data import tfds_composed
      original = tfds_composed._Builder._generate_examples
      def dying(self, source, plan):
        for n, example in enumerate(original(self, source, plan)):
          if n == 2:
            os.kill(os.getpid(), signal.SIGKILL)  # shards half written
          yield example
      tfds_composed._Builder._generate_examples = dying
      tfds_composed.build("fscoco", {root!r}, {out!r}, report=lambda s: None)
      """)
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                        env={**os.environ, "PYTHONPATH": os.path.dirname(TESTS)})
  assert proc.returncode == -9, proc.stderr[-2000:]
  left = _version_dirs(out, "fscoco")
  assert "1.0.0" not in left and any(n.startswith("incomplete.") for n in left)
  with pytest.raises(DataError, match="interrupted build left"):
    tfds_composed.open("fscoco", out)
  lines = []
  tfds_composed.build("fscoco", root, out, report=lines.append)
  assert any("interrupted earlier builds" in line for line in lines)
  assert tfds_composed.open("fscoco", out).split("test") == get_composed_source("fscoco", root).split("test")


def test_clear_errors(tmp_path):
  missing = str(tmp_path / "none")
  with pytest.raises(DataError, match=re.escape(missing) + r"/sgvu_cstbir/default/1\.0\.0.*\n.*"
                     r"build_tfds --dataset=cstbir --manual_dir=DIR --data_dir=" + re.escape(missing)):
    tfds_composed.open("cstbir", missing)
  valid = re.escape("valid: ['cstbir', 'fscoco', 'shoev2_duet', 'chairv2_duet']")
  for bad in ("sketchy", "synth_scenes", "cstbirr"):
    with pytest.raises(DataError, match=f"no TFDS copy for composed dataset '{bad}'; {valid}"):
      tfds_composed.open(bad, str(tmp_path))
    with pytest.raises(DataError, match=valid):
      tfds_composed.build(bad, str(tmp_path), str(tmp_path / "out"))
  with pytest.raises(DataError, match=r"unknown option.*bogus.*valid: \['strict', 'verify'\]"):
    tfds_composed.open("cstbir", str(tmp_path), bogus=1)
  with pytest.raises(DataError, match=r"unknown option.*variant"):  # fixed by the name
    tfds_composed.build("shoev2_duet", str(tmp_path), str(tmp_path / "out"), variant="ChairV2")
  with pytest.raises(DataError, match="needs a data_dir"):
    tfds_composed.open("fscoco", "")
  with pytest.raises(DataError, match="local data_dir"):
    tfds_composed.build("fscoco", str(tmp_path), "gs://bucket/tfds", report=lambda s: None)
  with pytest.raises(DataError, match="cstbir: dataset root .*nowhere"):
    tfds_composed.build("cstbir", str(tmp_path / "nowhere"), str(tmp_path / "out"), report=lambda s: None)
  # Built with other options: the error lists what is there.
  _, out, _, _ = _build(tmp_path, "cstbir", verify="full")
  with pytest.raises(DataError, match=r"Configs built there: \['verify-full'\]"):
    tfds_composed.open("cstbir", out)


def test_cli_builds_reuses_and_the_registry_opens_the_copy(tmp_path, capsys):
  from sgvu.data import registry
  from sgvu.tools import build_tfds
  assert build_tfds.COMPOSED_DATASETS == tuple(tfds_composed.DATASETS)
  root, out = str(tmp_path / "d"), str(tmp_path / "out")
  WRITERS["cstbir"](root)
  argv = ["--dataset=cstbir", f"--manual_dir={root}", f"--data_dir={out}"]
  assert build_tfds.main(argv) == 0
  assert "built: " in capsys.readouterr().out
  assert build_tfds.main(argv + ["--strict"]) == 1  # the fixture has skipped files
  assert "reused: " in capsys.readouterr().out
  assert build_tfds.main(["--dataset=cstbir", f"--manual_dir={tmp_path / 'nothing'}", f"--data_dir={out}",
                          "--overwrite"]) == 2
  assert "error: " in capsys.readouterr().err
  copy, directory = registry.get_tfds_composed_source("cstbir", out), get_composed_source("cstbir", root)
  assert copy.split_names == directory.split_names
  for split in directory.split_names:
    assert copy.split(split) == directory.split(split)
