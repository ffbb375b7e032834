"""TFDS / ArrayRecord copies (sgvu.data.tfds_builders, tfds_source, tools.build_tfds): built from the fixture
layouts, read back exactly as the directory readers read them, without TensorFlow."""

import os
import pickle
import re
import subprocess
import sys
import textwrap

import grain
import numpy as np
import pytest
import tensorflow_datasets as tfds

import fixtures_data as fx
from sgvu.data import get_source, pipeline, tfds_builders, tfds_source
from sgvu.data import tfds_format as fmt
from sgvu.data.base import DataError
from sgvu.data.registry import get_tfds_source
from sgvu.tools import build_tfds, show_data

TESTS = os.path.dirname(os.path.abspath(__file__))


def _truncate(path):
  data = open(path, "rb").read()
  with open(path, "wb") as f:
    f.write(data[: len(data) // 2])
  return path


def _qmul(name, **kw):
  def write(root):
    w = fx.write_qmul(root, name, **kw)
    _truncate(w["photos"]["train"][1])  # a photo that does not decode: skipped at build, not at index
    return w
  return write


# name, fixture writer (with bad files), reader options, pairing for the loader check
CASES = {
    "sketchy": (lambda r: fx.write_sketchy(r, corrupt=True), {}, "instance"),
    "tuberlin": (lambda r: fx.write_tuberlin(r, corrupt=True), {}, "category"),
    "quickdraw": (lambda r: fx.write_quickdraw(r, malformed=True, corrupt=True), {"max_per_class": 4}, "category"),
    "shoev2": (_qmul("ShoeV2", missing_photo=True), {}, "instance"),
    "chairv2": (_qmul("ChairV2", malformed=True), {}, "instance"),
}


def _build(tmp_path, name, **kw):
  write, options, _ = CASES[name]
  root, out = str(tmp_path / "d"), str(tmp_path / "out")
  write(root)
  lines = []
  result = tfds_builders.build(name, root, out, options, report=lines.append, **kw)
  return root, out, options, result, lines


_outcome = fx.outcome


def _assert_same_outcome(a, b):
  if isinstance(a, tuple):
    assert a == b
  else:
    np.testing.assert_array_equal(a, b)


def _assert_same_sketch(a, b):
  if isinstance(a, tuple):
    assert a == b
    return
  assert (a.raster is None) == (b.raster is None) and (a.strokes is None) == (b.strokes is None)
  if a.raster is not None:
    np.testing.assert_array_equal(a.raster, b.raster)
  else:
    assert len(a.strokes) == len(b.strokes)
    for x, y in zip(a.strokes, b.strokes):
      assert x.dtype == y.dtype == np.float32
      np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("name", sorted(CASES))
def test_copy_reads_back_as_the_directory(tmp_path, name):
  root, out, options, result, lines = _build(tmp_path, name)
  assert not result.reused and result.path == fmt.dataset_dir(out, name, options)
  d, t = get_source(name, root, **options), get_tfds_source(name, out, **options)
  assert "tensorflow" not in sys.modules
  assert (t.name, t.categories, t.split_names) == (d.name, d.categories, d.split_names)
  assert t.skipped == tuple(d.skipped)
  bad = {}
  for split in d.split_names:
    sd, st = d.split(split), t.split(split)
    assert st == sd  # categories, keys, labels, pairing, order
    for item in sd.photos:
      a = _outcome(lambda: pipeline.load_photo(d, item, 24))
      _assert_same_outcome(a, _outcome(lambda: pipeline.load_photo(t, item, 24)))
      _assert_same_outcome(_outcome(lambda: d.load_photo(item)), _outcome(lambda: t.load_photo(item)))
      if isinstance(a, tuple):
        bad[a[1]] = a[2]
    for item in sd.sketches:
      a = _outcome(lambda: pipeline.render_sketch(d, item, 24))
      _assert_same_outcome(a, _outcome(lambda: pipeline.render_sketch(t, item, 24)))
      _assert_same_sketch(_outcome(lambda: d.load_sketch(item)), _outcome(lambda: t.load_sketch(item)))
      if isinstance(a, tuple):
        bad[a[1]] = a[2]
  # Each fixture has bad files; the build skipped, printed and recorded exactly those.
  assert bad
  meta = result.metadata
  assert meta["skipped"] == len(d.skipped) + len(bad)
  assert dict(map(tuple, meta["skipped_load"])) == bad
  for key in bad:
    assert any(key in line for line in lines)
  if name == "sketchy":
    assert t.extended is True and d.extended is True
  if name == "quickdraw":  # max_per_class is honoured and names the copy
    assert "/max_per_class-4/" in result.path
    assert all(len(v) <= 4 for v in _per_class(d.split("train")).values())
  # The training pipeline yields the same batches from both.
  _, _, pairing = CASES[name]
  kw = dict(batch_size=4, image_size=16, pairing=pairing, seed=3, num_workers=0, process_index=0,
            process_count=1)
  it_d, it_t = pipeline.pair_loader(d, "train", **kw), pipeline.pair_loader(t, "train", **kw)
  for _ in range(2):
    bd, bt = next(it_d), next(it_t)
    assert sorted(bd) == sorted(bt)
    for k in bd:
      np.testing.assert_array_equal(bd[k], bt[k])


def _per_class(split):
  out = {}
  for s in split.sketches:
    out.setdefault(s.label, []).append(s)
  return out


def test_tfds_and_grain_read_the_copy_directly(tmp_path):
  _, out, _, result, _ = _build(tmp_path, "sketchy")
  ds = tfds.data_source("sgvu_sketchy", data_dir=out, split="train_photos")
  records = result.metadata["splits"]["train"]["photos"]["records"]
  assert len(ds) == sum(r >= 0 for r in records)
  md = grain.MapDataset.source(ds)
  assert md[0]["key"].decode().endswith("airplane/n00000000_100.jpg") and len(md[0]["image"]) > 100
  # Pickled (grain workers): the index travels, the readers reopen.
  t = tfds_source.open("sketchy", out)
  item = t.split("test").sketches[0]
  t2 = pickle.loads(pickle.dumps(t))
  np.testing.assert_array_equal(t2.load_sketch(item).raster, t.load_sketch(item).raster)


def test_reuse_and_cli(tmp_path, capsys):
  CASES["tuberlin"][0](str(tmp_path / "d"))
  argv = ["--dataset=tuberlin", f"--manual_dir={tmp_path / 'd'}", f"--data_dir={tmp_path / 'out'}"]
  assert build_tfds.main(argv) == 0
  out = capsys.readouterr()
  assert re.search(r"split train: categories 3, photos 9/10, sketches 9/10", out.out)
  assert "skipped 2 file(s)" in out.out and "zz_bad.jpg" in out.out and "99999.png" in out.out
  assert "built: " in out.out
  mtime = os.path.getmtime(os.path.join(fmt.dataset_dir(str(tmp_path / "out"), "tuberlin", {}), "dataset_info.json"))
  assert build_tfds.main(argv + ["--strict"]) == 1  # reused, and it has skips
  out = capsys.readouterr()
  assert "reused the complete build" in out.err and "reused: " in out.out
  assert os.path.getmtime(os.path.join(fmt.dataset_dir(str(tmp_path / "out"), "tuberlin", {}),
                                       "dataset_info.json")) == mtime
  assert build_tfds.main(argv + ["--overwrite"]) == 0
  assert "built: " in capsys.readouterr().out


def _version_dirs(out, name):
  parent = os.path.dirname(fmt.dataset_dir(out, name, {}))
  return sorted(os.listdir(parent)) if os.path.isdir(parent) else []


def test_build_that_raises_leaves_nothing_that_reads(tmp_path, monkeypatch):
  root, out = str(tmp_path / "d"), str(tmp_path / "out")
  fx.write_sketchy(root)
  original = tfds_builders._Builder._generate_examples

  def failing(self, source, plan):
    for n, example in enumerate(original(self, source, plan)):
      if n == 2:
        raise RuntimeError("boom: disk full")
      yield example

  monkeypatch.setattr(tfds_builders._Builder, "_generate_examples", failing)
  with pytest.raises(RuntimeError, match="boom"):
    tfds_builders.build("sketchy", root, out, report=lambda s: None)
  assert fmt.VERSION not in _version_dirs(out, "sketchy")
  with pytest.raises(DataError, match=r"no complete TFDS copy at .*sgvu_sketchy/default/1\.0\.0"):
    tfds_source.open("sketchy", out)
  monkeypatch.setattr(tfds_builders._Builder, "_generate_examples", original)
  result = tfds_builders.build("sketchy", root, out, report=lambda s: None)
  assert not result.reused
  assert tfds_source.open("sketchy", out).split("test") == get_source("sketchy", root).split("test")


def test_killed_build_reads_as_missing_then_rebuilds(tmp_path):
  root, out = str(tmp_path / "d"), str(tmp_path / "out")
  fx.write_sketchy(root)
  code = textwrap.dedent(f"""
      import os, signal
      from sgvu.data import tfds_builders
      original = tfds_builders._Builder._generate_examples
      def dying(self, source, plan):
        for n, example in enumerate(original(self, source, plan)):
          if n == 2:
            os.kill(os.getpid(), signal.SIGKILL)  # mid-split, shards half written
          yield example
      tfds_builders._Builder._generate_examples = dying
      tfds_builders.build("sketchy", {root!r}, {out!r}, report=lambda s: None)
      """)
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                        env={**os.environ, "PYTHONPATH": os.path.dirname(TESTS)})
  assert proc.returncode == -9, proc.stderr[-2000:]
  left = _version_dirs(out, "sketchy")
  assert fmt.VERSION not in left and any(n.startswith("incomplete.") for n in left)
  with pytest.raises(DataError, match="interrupted build left"):
    tfds_source.open("sketchy", out)
  lines = []
  result = tfds_builders.build("sketchy", root, out, report=lines.append)
  assert not result.reused and any("interrupted earlier builds" in line for line in lines)
  assert tfds_source.open("sketchy", out).split("train") == get_source("sketchy", root).split("train")


def test_clear_errors(tmp_path, monkeypatch, capsys):
  missing = str(tmp_path / "none")
  with pytest.raises(DataError, match=re.escape(missing) + r".*\n.*build_tfds --dataset=sketchy"):
    tfds_source.open("sketchy", missing)
  (tmp_path / "empty").mkdir()
  with pytest.raises(DataError, match=re.escape(str(tmp_path / "empty"))):
    get_tfds_source("shoev2", str(tmp_path / "empty"))
  with pytest.raises(DataError, match="needs a data_dir"):
    tfds_source.open("sketchy", "")
  for bad in ("nope", "synth"):
    with pytest.raises(DataError, match=f"no TFDS copy for dataset '{bad}'"):
      get_tfds_source(bad, str(tmp_path))
  with pytest.raises(DataError, match="unknown option.*bogus"):
    tfds_source.open("sketchy", str(tmp_path), bogus=1)
  with pytest.raises(DataError, match="quickdraw: dataset root .*nowhere"):
    tfds_builders.build("quickdraw", str(tmp_path / "nowhere"), str(tmp_path / "out2"), report=lambda s: None)
  with pytest.raises(DataError, match="local data_dir"):
    tfds_builders.build("sketchy", str(tmp_path), "gs://bucket/tfds", report=lambda s: None)
  # A copy built with other options: the error lists what is there.
  _, out, _, _, _ = _build(tmp_path, "quickdraw")
  with pytest.raises(DataError, match=r"Configs built there: \['max_per_class-4'\]"):
    tfds_source.open("quickdraw", out)
  with pytest.raises(DataError, match=r"quickdraw: .*\.ndjson: class file for .* is missing \(strict=True"):
    tfds_source.open("quickdraw", out, max_per_class=4, strict=True)  # as the reader's strict, at open
  code = show_data.main(["--dataset=sketchy", f"--tfds_data_dir={missing}", "--out=x.png"])
  assert code == 2 and missing in capsys.readouterr().err
  # gs:// goes to TFDS untouched (reading it needs gcsfs for etils; not installed here).
  seen = []

  def fake(path):
    seen.append(path)
    raise FileNotFoundError(path)

  monkeypatch.setattr(tfds, "builder_from_directory", fake)
  with pytest.raises(DataError, match="gs://bucket/tfds/sgvu_sketchy/default/1.0.0"):
    tfds_source.open("sketchy", "gs://bucket/tfds")
  assert seen == ["gs://bucket/tfds/sgvu_sketchy/default/1.0.0"]


def test_show_data_prints_the_same(tmp_path, capsys):
  root, out, _, _, _ = _build(tmp_path, "sketchy")
  assert not capsys.readouterr().out  # TFDS's progress goes to stderr
  runs = {}
  for how, arg in (("dir", f"--root={root}"), ("tfds", f"--tfds_data_dir={out}")):
    png = str(tmp_path / f"{how}.png")
    assert show_data.main(["--dataset=sketchy", arg, f"--out={png}", "--no_progress"]) == 0
    runs[how] = (capsys.readouterr().out.replace(png, "GRID"), np.asarray(show_data.Image.open(png)))
  assert runs["tfds"][0] == runs["dir"][0]
  assert "split train: categories 3, photos 9/10, sketches 12/13, skipped 2" in runs["tfds"][0]
  np.testing.assert_array_equal(runs["tfds"][1], runs["dir"][1])
