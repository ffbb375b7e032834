"""show_data: checks every file of a copy, reports counts and skipped files, draws a grid."""

import re

import numpy as np
import pytest
from PIL import Image

import fixtures_data as fx
from sgvu.data import get_source
from sgvu.tools import show_data


def _run(capsys, *argv):
  code = show_data.main(list(argv))
  out = capsys.readouterr()
  return code, out.out, out.err


def _split_line(out, split):
  m = re.search(rf"split {split}: categories (\d+), photos (\d+)/(\d+), sketches (\d+)/(\d+), "
                rf"skipped (\d+)", out)
  assert m, out
  return tuple(int(g) for g in m.groups())


def _grid(path):
  img = np.asarray(Image.open(path).convert("L"))
  assert img.shape[1] > 300 and img.shape[0] > 200
  return img


def test_sketchy_with_corrupt_files(tmp_path, capsys):
  w = fx.write_sketchy(str(tmp_path / "d"), corrupt=True, extra_extended=0)
  out_png = str(tmp_path / "g.png")
  code, out, err = _run(capsys, "--dataset=sketchy", f"--root={tmp_path / 'd'}",
                        f"--out={out_png}")
  assert code == 0
  assert _split_line(out, "train") == (3, 6, 7, 12, 13, 2)
  assert _split_line(out, "test") == (2, 4, 4, 8, 8, 0)
  for bad in w["bad"]:
    assert f"skipped {bad}: " in out
  assert re.search(r"\[train photos\] 7/7 100% .* ETA", err)
  _grid(out_png)
  code, _, _ = _run(capsys, "--dataset=sketchy", f"--root={tmp_path / 'd'}", f"--out={out_png}",
                    "--strict", "--no_progress")
  assert code == 1


@pytest.mark.parametrize("name,write,expect", [
    ("tuberlin", lambda r: fx.write_tuberlin(r), {"train": (3, 9, 9, 9, 9, 0),
                                                 "test": (2, 6, 6, 6, 6, 0)}),
    ("shoev2", lambda r: fx.write_qmul(r, "ShoeV2"), {"train": (1, 3, 3, 6, 6, 0),
                                                      "test": (1, 2, 2, 4, 4, 0)}),
    ("chairv2", lambda r: fx.write_qmul(r, "ChairV2", malformed=True),
     {"train": (1, 3, 3, 6, 6, 0), "test": (1, 2, 2, 3, 4, 1)}),
])
def test_fixture_datasets(tmp_path, capsys, name, write, expect):
  write(str(tmp_path / "d"))
  out_png = str(tmp_path / "g.png")
  code, out, _ = _run(capsys, f"--dataset={name}", f"--root={tmp_path / 'd'}", f"--out={out_png}")
  assert code == 0
  for split, want in expect.items():
    assert _split_line(out, split) == want
  _grid(out_png)


def test_quickdraw_partial_rows_and_index_skips(tmp_path, capsys):
  w = fx.write_quickdraw(str(tmp_path / "d"), malformed=True)
  out_png = str(tmp_path / "g.png")
  code, out, _ = _run(capsys, "--dataset=quickdraw", f"--root={tmp_path / 'd'}",
                      f"--out={out_png}", "--columns=4")
  assert code == 0
  assert "skipped while indexing: 104" in out  # the 110-class subset, 6 class files written
  train = _split_line(out, "train")
  assert train[3] == train[4] - 3  # the three malformed lines of airplane.ndjson
  for key in w["bad"]:
    assert f"skipped {key}: " in out
  grid = _grid(out_png)
  # photo + 25/50/100 % rows per split section: taller than the raster-only sketchy grid.
  assert grid.shape[0] > 2 * (32 + 4 * 100)


def test_synth_grid_with_captions(tmp_path, capsys):
  out_png = str(tmp_path / "synth.png")
  code, out, _ = _run(capsys, "--dataset=synth", "--option=photos_per_category=2",
                      "--option=sketches_per_photo=1", f"--out={out_png}", "--cell=64")
  assert code == 0
  train, test = _split_line(out, "train"), _split_line(out, "test")
  assert train[1:] == (train[0] * 2, train[0] * 2, train[0] * 2, train[0] * 2, 0)
  n_categories = len(get_source("synth", photos_per_category=2, sketches_per_photo=1).categories)
  assert test[0] >= 1 and train[0] + test[0] == n_categories
  _grid(out_png)


def test_bad_root_and_option(tmp_path, capsys):
  code, _, err = _run(capsys, "--dataset=tuberlin", f"--root={tmp_path}/none", "--out=x.png")
  assert code == 2 and "none" in err and "docs/datasets.md" in err
  with pytest.raises(SystemExit):
    show_data.main(["--dataset=nope"])
  code, _, err = _run(capsys, "--dataset=synth", "--option=bogus=1", "--out=x.png")
  assert code == 2 and "bogus" in err
