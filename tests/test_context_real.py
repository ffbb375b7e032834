"""The real-data context-prediction table (experiments/context_voc_sketchy.py, issue #13) end to end: a tiny PASCAL
VOC 2012 tree (one corrupt JPEG) for the pretext and a tiny Sketchy tree (the seed's 10 classes and 3 others) for
retrieval, run through `sgvu.main.run` as `python -m sgvu.main --config=experiments/context_voc_sketchy.py:small
--config.pretext_data.root=VOC --config.data.root=SKETCHY` would; and validation naming a missing root."""

from __future__ import annotations

import json
import os

import fixtures_data
import numpy as np
import pytest
from PIL import Image

from experiments import blocks, context_voc_sketchy
from sgvu import main as sgvu_main
from sgvu.tasks import context, context_models

OTHER_CLASSES = ("bat", "rabbit", "zebra")  # Sketchy classes outside the evaluation: classifier and triplet data
PHOTOS_PER_CLASS = 3
VOC_IDS = [f"2008_{n:06d}" for n in range(10)]
CORRUPT_ID = VOC_IDS[3]


def write_voc(root: str, ids=VOC_IDS, corrupt=(CORRUPT_ID,)) -> None:
  """<root>/JPEGImages/<id>.jpg (rectangles on a background: edges to find) + ImageSets/Main/{train,val}.txt."""
  os.makedirs(os.path.join(root, "JPEGImages"))
  os.makedirs(os.path.join(root, "ImageSets", "Main"))
  rng = np.random.default_rng(0)
  for k, i in enumerate(ids):
    path = os.path.join(root, "JPEGImages", f"{i}.jpg")
    if i in corrupt:
      with open(path, "wb") as f:
        f.write(b"\xff\xd8\xff\xe0 not a JPEG after all")
      continue
    h, w = (75, 100) if k % 2 else (100, 75)  # landscape and portrait, as VOC's
    img = np.full((h, w, 3), rng.integers(0, 256, 3), np.uint8)
    for _ in range(3):
      y, x = rng.integers(0, h - 20), rng.integers(0, w - 20)
      img[y:y + int(rng.integers(10, 20)), x:x + int(rng.integers(10, 20))] = rng.integers(0, 256, 3)
    Image.fromarray(img).save(path, quality=95)
  for split, listed in (("train", ids), ("val", ids[:2])):
    with open(os.path.join(root, "ImageSets", "Main", f"{split}.txt"), "w") as f:
      f.write("\n".join(listed) + "\n")


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
  base = tmp_path_factory.mktemp("context_real")
  voc, sketchy = str(base / "VOC2012"), str(base / "Sketchy")
  write_voc(voc)
  # Extended photos are written too: the config leaves them out of the galleries.
  fixtures_data.write_sketchy(sketchy, classes=blocks.SKETCHY_CONTEXT_CLASSES + OTHER_CLASSES,
                              photos_per_class=PHOTOS_PER_CLASS, sketches_per_photo=1)
  return voc, sketchy


def small_config(roots):
  c = context_voc_sketchy.get_config("small")
  c.pretext_data.root, c.data.root = roots
  return c


@pytest.mark.parametrize("key, layout", [("pretext_data.root", "ImageSets/Main/<split>.txt"),
                                         ("data.root", "256x256/sketch/")])
def test_missing_root_fails_before_compute(roots, tmp_path, key, layout):
  c = small_config(roots)
  target, leaf = key.split(".")
  c[target][leaf] = ""
  workdir = tmp_path / "run"
  with pytest.raises(ValueError, match=f"config.{key} is required") as e:
    sgvu_main.run(c, str(workdir))
  assert layout in str(e.value)  # the layout it expects
  assert not workdir.exists()  # validated before the workdir, let alone any data or training
  c[target][leaf] = str(tmp_path / "nowhere")
  with pytest.raises(ValueError, match=f"config.{key}=.*nowhere.*: no such directory"):
    context.validate(c)


def test_paper_setting():
  c = context_voc_sketchy.get_config()
  assert c.task == "context" and c.name == "context_voc_sketchy" and c.seeds == 1 and not c.smoke_test
  assert c.data.dataset == "sketchy" and c.data.root == "" and c.pretext_data.root == ""  # the user's to give
  assert c.pretext_data.split == "train" and not c.data.reader_options.extended
  assert [k.split("_")[0] for k in c.data.eval_classes] == ["airplane", "bicycle", "car", "cat", "chair", "cow",
                                                              "dog", "horse", "motorcycle", "sheep"]
  assert tuple(c.methods) == blocks.CONTEXT_METHODS
  assert context_models.geometry(c).span <= c.data.image_size


# One row of each kind (random, classifier, HOG, triplet, pretext): the other rows differ from these by settings
# only, and tests/test_context_task.py runs all of them on SynthSketch.
TEST_METHODS = ("random-init", "classifier", "hog-pyramid", "supervised-triplet", "ours")


def test_small_run(roots, tmp_path, capsys):
  c = small_config(roots)
  c.methods = TEST_METHODS
  workdir = tmp_path / "run"
  out = sgvu_main.run(c, str(workdir))
  rows = {r["method"]: r for r in out["rows"]}
  assert list(rows) == list(c.methods)
  for r in rows.values():
    assert 0.0 <= r["Acc@5"] <= 1.0 and 0.0 <= r["Acc@10"] <= 1.0, r
  # Three photos a class: every own photo is among the top 5 of its class, whatever the features.
  assert rows["random-init"]["Acc@5"] == 1.0
  assert "VOC 2012 pretext, Sketchy" in capsys.readouterr().out

  tables = json.load(open(workdir / context.TABLES_FILE))
  assert tables["classes"] == list(blocks.SKETCHY_CONTEXT_CLASSES)
  for m in c.methods:
    for cls in blocks.SKETCHY_CONTEXT_CLASSES:
      mean, _ = tables["per_class"][m][f"Acc@5 {cls}"]
      assert 0.0 <= mean <= 1.0, (m, cls)
  assert all(0.0 <= v[0] <= 1.0 for v in tables["pretext_acc"].values())

  data = json.load(open(workdir / context.DATA_FILE))
  assert data["pretext_skipped"] == 1  # the corrupt JPEG: logged, counted, skipped
  assert data["pretext_photos"] == len(VOC_IDS) - 1
  # The classifier sees the other classes' photos only; the held-out pairs come from the evaluation classes' own
  # photos (extended ones left out).
  assert data["classifier_classes"] == len(OTHER_CLASSES)
  assert data["classifier_photos"] == len(OTHER_CLASSES) * PHOTOS_PER_CLASS
  assert data["heldout_photos"] == len(blocks.SKETCHY_CONTEXT_CLASSES) * PHOTOS_PER_CLASS
  for name in (context.TSNE_FILE, context.GRID_FILE):
    assert os.path.getsize(workdir / name) > 1000, name


def test_data_real_path(roots):
  """The arrays of the real path: triplets of the other classes only, each sketch with its own photo."""
  c = small_config(roots)
  data = context.Data(c)
  sketches, photos, own, labels = data.triplets()
  names = {data.eval_source.categories[int(l)] for l in labels}
  assert names == set(OTHER_CLASSES)
  assert len(sketches) == len(own) == len(photos) == len(OTHER_CLASSES) * PHOTOS_PER_CLASS
  assert data.photos.shape == (len(VOC_IDS) - 1, c.data.image_size, c.data.image_size, 3)
  assert data.edges.shape == data.photos.shape
  # The fixture's photos are solid colours by name: a sketch's own photo is the one drawn for it.
  sp = data.eval_source.split("train")
  for n in range(len(own)):
    stem = os.path.basename(sp.photos[sp.sketches[n].photo].key)[:-4]
    assert np.abs(photos[own[n]][20:44, 20:44].astype(int) - fixtures_data.photo_colour(stem)).max() < 12


def test_unknown_eval_class_is_named(roots):
  c = small_config(roots)
  c.data.eval_classes = ("airplane", "car")  # Sketchy's folder is car_(sedan)
  with pytest.raises(ValueError, match=r"eval_classes \['car'\]: no such class folder"):
    context.Data(c)
