"""show_data for the composed and localization datasets (sgvu.tools.show_data_more): the same report and the same
grid from the folder and from its TFDS copy; the generated synth sources; errors."""

import os
import re

import numpy as np
import pytest
from PIL import Image

from sgvu.data import registry, tfds_composed, tfds_localization
from sgvu.tools import show_data
from test_tfds_composed import WRITERS as COMPOSED_WRITERS
from test_tfds_localization import WRITERS as LOCALIZATION_WRITERS

GREEN = (0, 200, 0)  # the outline of the sketched object's / query category's boxes


def _run(capsys, *argv):
  code = show_data.main([*argv, "--no_progress"])
  out = capsys.readouterr()
  return code, out.out, out.err


def _both(tmp_path, capsys, name, root, data_dir, *extra):
  """{'dir': (printed, grid), 'tfds': (printed, grid)}: show_data on the folder and on the copy."""
  runs = {}
  for how, arg in (("dir", f"--root={root}"), ("tfds", f"--tfds_data_dir={data_dir}")):
    png = str(tmp_path / f"{how}.png")
    code, out, _ = _run(capsys, f"--dataset={name}", arg, f"--out={png}", *extra)
    assert code == 0, out
    assert out.endswith(f"grid written to {png}\n")
    runs[how] = (out.replace(png, "GRID"), np.asarray(Image.open(png).convert("RGB")))
  assert runs["tfds"][0] == runs["dir"][0]
  assert runs["tfds"][1].shape == runs["dir"][1].shape
  np.testing.assert_array_equal(runs["tfds"][1], runs["dir"][1])
  return runs["dir"]


def _has(grid, colour):
  return bool((grid == np.array(colour, np.uint8)).all(axis=-1).any())


def _options(options):
  return [f"--option={k}={v!r}" for k, v in options.items()]


def test_cstbir_folder_and_copy_are_the_same(tmp_path, capsys):
  root, data_dir = str(tmp_path / "d"), str(tmp_path / "tfds")
  COMPOSED_WRITERS["cstbir"](root)  # a truncated image, an empty ndjson, a row of unknown split, a blank sketch
  tfds_composed.build("cstbir", root, data_dir, report=lambda line: None)
  out, grid = _both(tmp_path, capsys, "cstbir", root, data_dir, "--cell=48")
  assert out.startswith("dataset cstbir (scene): 4 categories\n  skipped while indexing: 3\n")
  for bad in ("images/bad.jpg: truncated", "sketches/empty.ndjson: ", "cstbir.csv:10: unknown split 'dev'"):
    assert f"    {os.path.join(root, bad)}" in out
  assert "  note: no sketch token; '* ' prepended: 1\n" in out
  assert "  split train: categories 2, images 1/1, queries 2/2, skipped 0\n" in out
  assert "  split test1k: categories 1, images 2/2, queries 1/1, skipped 0\n" in out
  assert ("  split test5k: categories 1, images 1/1, queries 0/1, skipped 1\n"
          f"    skipped {os.path.join(root, 'sketches', 's3.png')}: sketch raster has no ink") in out
  assert len(re.findall(r"^  split ", out, re.M)) == 5
  # A row per query (6 readable or not), 5 split sections: taller than 6 cells.
  assert grid.shape[0] > 6 * 48 and grid.shape[1] >= 2 * 48 + 160
  assert grid.min() < 100  # ink and photos, not an empty canvas
  code, _, _ = _run(capsys, "--dataset=cstbir", f"--tfds_data_dir={data_dir}", f"--out={tmp_path / 'g.png'}",
                    "--strict")
  assert code == 1
  code, out, _ = _run(capsys, "--dataset=cstbir", f"--root={root}", f"--out={tmp_path / 'g.png'}",
                      "--split=train", "--split=val", "--limit=1")
  assert code == 0 and len(re.findall(r"^  split ", out, re.M)) == 2
  assert "  split train: categories 2, images 1/1, queries 1/1, skipped 0\n" in out


def test_coco_folder_and_copy_are_the_same(tmp_path, capsys):
  root, data_dir = str(tmp_path / "d"), str(tmp_path / "tfds")
  options = LOCALIZATION_WRITERS["coco"](root)  # sketch_root and the rest of the reader options
  tfds_localization.build("coco", root, data_dir, report=lambda line: None, **options)
  out, grid = _both(tmp_path, capsys, "coco", root, data_dir, *_options(options), "--cell=48")
  assert out.startswith("dataset coco (localization): 56 categories, 42 seen, 14 unseen\n")
  # A truncated image in each image set, a QuickDraw line of the wrong word: skipped when loaded.
  train = re.search(r"  split train: categories 42, images 1/2, queries (\d+)/(\d+), boxes \d+ .*, skipped 2\n"
                    r"    skipped (.*): cannot decode image .*\n    skipped (.*): record says word='bus'", out)
  assert train, out
  assert int(train[1]) < int(train[2])
  assert train[3] == os.path.join(root, "train2017", "000000000012.jpg")
  assert train[4] == os.path.join(options["sketch_root"], "car.ndjson") + ":4"
  assert re.search(r"  split test: categories 56, images 2/3, .*, skipped 1\n    skipped .*/000000000002.jpg", out)
  assert len(re.findall(r"^  split ", out, re.M)) == 4
  skips = re.search(r"  skipped while indexing: (\d+)\n((?:    .*\n)*)", out)
  assert int(skips[1]) == 5 and "image_id 77 is not in 'images'" in skips[2] and "000000000003.jpg" in skips[2]
  assert "    train: box of a category that is not a target here: " in out
  assert _has(grid, GREEN)  # the query's ground-truth boxes are drawn


def test_synth_scenes_generated(tmp_path, capsys):
  png = str(tmp_path / "g.png")
  options = dict(num_train=3, num_val=1, num_test_1k=2, num_test_5k=2, num_open=2)
  code, out, _ = _run(capsys, "--dataset=synth_scenes", *_options(options), f"--out={png}", "--cell=48")
  assert code == 0
  src = registry.get_composed_source("synth_scenes", **options)
  for split in src.split_names:
    sp = src.split(split)
    n, q = len(sp.images), len(sp.queries)
    assert f"  split {split}: categories {len(sp.categories)}, images {n}/{n}, queries {q}/{q}, skipped 0\n" in out
  assert "skipped while indexing" not in out
  assert _has(np.asarray(Image.open(png).convert("RGB")), GREEN)  # the sketched object's box on its scene


def test_synth_localization_generated(tmp_path, capsys):
  png = str(tmp_path / "g.png")
  options = dict(num_scenes=(3, 1, 2), query_instances=(2, 1, 1), image_size=64, sketch_size=32)
  code, out, _ = _run(capsys, "--dataset=synth", "--kind=localization", *_options(options), f"--out={png}",
                      "--cell=48", "--columns=2")
  assert code == 0
  assert out.startswith("dataset synth (localization): 75 categories, 60 seen, 15 unseen\n")
  src = registry.get_localization_source("synth", **options)
  for split in src.split_names:
    sp = src.split(split)
    n, q = len(sp.images), len(sp)
    assert f"  split {split}: categories {len(sp.categories)}, images {n}/{n}, queries {q}/{q}, boxes " in out
  assert "  skipped while indexing: 0\n" in out
  grid = np.asarray(Image.open(png).convert("RGB"))
  assert _has(grid, GREEN) and grid.shape[0] > 5 * 2 * 48  # 5 splits of 2 rows
  # Without --kind, synth is the retrieval dataset (photos and sketches).
  code, out, _ = _run(capsys, "--dataset=synth", "--option=photos_per_category=1", "--option=sketches_per_photo=1",
                      f"--out={png}", "--cell=32", "--columns=2")
  assert code == 0 and re.search(r"split train: categories \d+, photos \d+/\d+, sketches", out)


@pytest.mark.parametrize("name", ["cstbir", "fscoco", "shoev2_duet", "coco", "voc"])
def test_needs_root_or_copy(capsys, name):
  code, out, err = _run(capsys, f"--dataset={name}", "--out=never.png")
  assert code == 2 and not out
  assert f"error: {name}: give --root=DIR (the dataset folder) or --tfds_data_dir=DIR" in err
  assert not os.path.exists("never.png")


def test_other_errors(tmp_path, capsys):
  png = str(tmp_path / "g.png")
  code, _, err = _run(capsys, "--dataset=synth_scenes", f"--root={tmp_path}", f"--out={png}")
  assert code == 2 and "takes no root" in err
  code, _, err = _run(capsys, "--dataset=synth_scenes", f"--tfds_data_dir={tmp_path}", f"--out={png}")
  assert code == 2 and "no TFDS copy for composed dataset 'synth_scenes'" in err
  code, _, err = _run(capsys, "--dataset=synth", "--kind=localization", f"--tfds_data_dir={tmp_path}", f"--out={png}")
  assert code == 2 and "no TFDS copy for localization dataset 'synth'" in err
  code, _, err = _run(capsys, "--dataset=synth_scenes", "--option=num_train=2", "--split=nope", f"--out={png}")
  assert code == 2 and "unknown split(s) ['nope']" in err
  with pytest.raises(SystemExit):
    show_data.main(["--dataset=cstbir", "--kind=localization", f"--root={tmp_path}"])
  assert "cstbir is not a localization dataset" in capsys.readouterr().err
  assert not os.path.exists(png)
