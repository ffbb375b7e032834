"""Sketch-guided localization as an experiment (issue #11): batches, the COCO evaluator and its files, the
:small run end to end, validation, and the real-data configs for a few steps on fixture files in COCO / VOC format."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from experiments import localization as loc_config
from experiments import localization_coco, localization_voc
from sgvu import main as sgvu_main
from sgvu.data import localization_pipeline as lp
from sgvu.data import registry
from sgvu.evaluators.localization import Localization
from sgvu.metrics import coco_ap
from test_localization_data import _coco, _jpeg, _quickdraw, _voc_xml

SYNTH = dict(num_scenes=(6, 2, 8), image_size=64, sketch_size=32, query_instances=(4, 2, 2))
BOXES = dict(short_side=64, max_side=64, max_boxes=6)


@pytest.fixture(scope="module")
def synth():
  return registry.get_localization_source("synth", **SYNTH)


def test_letterbox_scales_image_and_boxes():
  image = np.full((30, 60, 3), 7, np.uint8)
  canvas, boxes, scale = lp.letterbox(image, np.array([[6, 3, 60, 30]], np.float32), short_side=40, max_side=80)
  assert canvas.shape == (80, 80, 3) and scale == pytest.approx(80 / 60)  # the long side caps the scale
  np.testing.assert_allclose(boxes, [[8, 4, 80, 40]], rtol=1e-6)
  assert (canvas[:40, :80] == 7).all() and (canvas[40:] == 0).all()
  with pytest.raises(lp.BadSample, match="im.png"):
    lp.letterbox(np.zeros((4, 4), np.uint8), np.zeros((0, 4)), 8, 8, key="im.png")


def test_train_loader_and_eval_batches_static_shapes(synth):
  batch = next(lp.train_loader(synth, "train", batch_size=3, seed=0, **BOXES))
  assert batch["images"].shape == (3, 64, 64, 3) and batch["sketches"].shape == (3, 1, 32, 32, 3)
  assert batch["gt_boxes"].shape == (3, 6, 4) and batch["gt_valid"].shape == batch["gt_query"].shape == (3, 6)
  assert (batch["gt_query"] <= batch["gt_valid"]).all() and batch["gt_query"].any(axis=1).all()
  sp = synth.split("test_seen")
  batches = list(lp.eval_batches(sp, batch_size=4, **BOXES))
  real = np.concatenate([b["real"] for b in batches])
  assert all(b["images"].shape[0] == 4 for b in batches) and real.sum() == len(sp)
  items = np.concatenate([b["item"][b["real"]] for b in batches])
  np.testing.assert_array_equal(items, np.arange(len(sp)))
  with pytest.raises(lp.DataError, match="raise max_boxes"):
    next(lp.eval_batches(sp, batch_size=2, short_side=64, max_side=64, max_boxes=1))


def _oracle(source, split_name, shift=0.0):
  """A 'detect' that returns the query's ground-truth boxes (shifted by `shift` x their width)."""
  sp = source.split(split_name)

  def detect(variables, images, sketches):
    del variables, images
    n, d = sketches.shape[0], 4
    boxes, scores, valid = np.zeros((n, d, 4), np.float32), np.zeros((n, d), np.float32), np.zeros((n, d), bool)
    for b in range(n):
      gt = detect.items[b]
      boxes[b, :len(gt)] = gt + shift * (gt[:, 2:3] - gt[:, 0:1]) * np.array([1, 0, 1, 0])
      scores[b, :len(gt)], valid[b, :len(gt)] = 0.9, True
    return {"boxes": boxes, "scores": scores, "valid": valid}

  def feed(batch_items):
    detect.items = [sp[int(i)].query_boxes for i in batch_items]
  return detect, feed


def test_evaluator_scores_oracle_one_and_writes_rescorable_files(synth, tmp_path, monkeypatch):
  real_batches = lp.eval_batches

  def run(shift):
    detect, feed = _oracle(synth, "test_seen", shift)

    def batches(split, **kw):  # hand the oracle each batch's queries before it is called
      for b in real_batches(split, **kw):
        feed(b["item"])
        yield b
    monkeypatch.setattr(lp, "eval_batches", batches)
    ev = Localization({"detect": detect}, source=synth, splits={"seen": "test_seen"}, batch_size=4,
                      output_dir=str(tmp_path / f"row{shift}"), gt_dir=str(tmp_path), **BOXES)
    return ev.run(None)

  perfect = run(0.0)
  assert perfect["seen AP"] == pytest.approx(1.0) and perfect["seen AP@50"] == pytest.approx(1.0)
  assert perfect["seen queries"] == len(synth.split("test_seen"))
  shifted = run(0.3)  # IoU 0.54: a hit at 0.5, a miss from 0.55 on
  assert shifted["seen AP@50"] == pytest.approx(1.0) and shifted["seen AP"] < 0.2
  with open(tmp_path / "gt_seen.json") as f:
    gt = json.load(f)
  with open(tmp_path / "row0.3" / "detections_seen.json") as f:
    dets = json.load(f)
  assert coco_ap.evaluate(gt, dets)["AP"] == pytest.approx(shifted["seen AP"])  # the files re-score the row


def test_evaluator_rejects_unknown_split_and_metric(synth):
  detect = lambda *a: None
  with pytest.raises(ValueError, match="val_unseen"):
    Localization({"detect": detect}, source=synth, splits={"x": "val_unseen"}, **BOXES)
  with pytest.raises(ValueError, match="AP_XL"):
    Localization({"detect": detect}, source=synth, metrics=("AP_XL",), **BOXES)
  with pytest.raises(ValueError, match="'detect'"):
    Localization({}, source=synth, **BOXES)


def tiny_config(config, steps: int = 2):
  """Every row's trained model at its smallest: seconds per row."""
  config.seeds = 1
  config.data.options.num_scenes, config.data.options.query_instances = (8, 2, 8), (3, 2, 2)
  config.data.short_side = config.data.max_side = 64
  config.data.options.image_size = 64
  config.data.sketch_size = 32
  config.cma.cnn_widths = (8, 16, 16)
  config.cma.rpn_pre_nms_train = config.cma.rpn_pre_nms_test = 64
  config.cma.rpn_post_nms_train = config.cma.rpn_post_nms_test = 16
  config.cma.num_rois, config.cma.rpn_batch = 16, 32
  config.locformer.width, config.locformer.stage_depths, config.locformer.num_queries = 64, (1, 1), 4
  config.locformer.sketch.width, config.locformer.sketch.embed_dim = 48, 32
  config.cma_train.num_steps = config.vit_train.num_steps = steps
  config.cma_train.batch_size = config.vit_train.batch_size = 8  # the tests run on 8 CPU devices
  return config


def test_small_config_runs_every_row_and_writes_files(tmp_path, capsys):
  c = tiny_config(loc_config.get_config("small"))
  c.methods = ("cma-3-sketches", "vit")
  out = sgvu_main.run(c, str(tmp_path))
  rows = {r["method"]: r for r in out["rows"]}
  assert list(rows) == list(c.methods)
  for name, row in rows.items():
    for split in ("seen", "unseen"):
      assert 0.0 <= row[f"{split} AP@50"] <= 1.0
      assert os.path.isfile(tmp_path / name / "seed0" / f"detections_{split}.json")
    assert row["final loss"] > 0 and row["trainable_params"] > 0
  for split in ("seen", "unseen"):
    with open(tmp_path / f"gt_{split}.json") as f:
      assert json.load(f)["annotations"]
  assert os.path.getsize(tmp_path / "localization_examples.png") > 1000
  printed = capsys.readouterr().out
  assert "| cma-3-sketches" in printed and "unseen AP@50" in printed
  again = sgvu_main.run(c, str(tmp_path))  # finished rows are reused, not retrained
  assert json.dumps(again["rows"]) == json.dumps(out["rows"])  # (NaN-safe: AP_L may be undefined)


@pytest.mark.parametrize("key,value,match", [
    ("methods", ("cma", "detr"), "unknown \\['detr'\\]"),
    ("data.dataset", "lvis", "data.dataset='lvis'"),
    ("cma.backbone", "vgg", "row 'faster-rcnn'.*backbone 'vgg'"),
    ("data.max_side", 132, "not a multiple of cma.feature_stride 8"),
    ("data.short_side", 256, "short_side=256 > data.max_side=128"),
    ("loss.margin_reduction", "max", "loss.margin_reduction"),
])
def test_validate_names_the_bad_key(key, value, match):
  c = loc_config.get_config("small")
  target = c
  for part in key.split(".")[:-1]:
    target = target[part]
  target[key.split(".")[-1]] = value
  with pytest.raises(ValueError, match=match):
    registry_task().validate(c)


def registry_task():
  from sgvu.tasks import registry as tasks  # pylint: disable=g-import-not-at-top
  return tasks.get_experiment("localization")


def test_real_data_configs_require_root_and_sketches():
  c = localization_coco.get_config()
  with pytest.raises(ValueError, match="data.root is required"):
    registry_task().validate(c)
  c.data.root = "/nowhere"
  with pytest.raises(ValueError, match="sketch_root"):
    registry_task().validate(c)


def _voc(root: str) -> dict:
  folder = os.path.join(root, "VOC2007")
  anns = {"000001": [("dog", (4, 4, 40, 40), 0), ("car", (30, 10, 60, 44), 0)],
          "000002": [("cat", (8, 6, 50, 40), 0), ("chair", (2, 2, 20, 20), 1)],
          "000003": [("bus", (10, 10, 60, 40), 0), ("horse", (1, 1, 30, 30), 0)]}
  os.makedirs(os.path.join(folder, "Annotations"))
  for i, objs in anns.items():
    with open(os.path.join(folder, "Annotations", f"{i}.xml"), "w") as f:
      f.write(_voc_xml(objs))
    _jpeg(os.path.join(folder, "JPEGImages", f"{i}.jpg"))
  os.makedirs(os.path.join(folder, "ImageSets", "Main"))
  for name, ids in (("trainval", ["000001", "000002"]), ("test", ["000001", "000002", "000003"])):
    with open(os.path.join(folder, "ImageSets", "Main", f"{name}.txt"), "w") as f:
      f.write("\n".join(ids) + "\n")
  from sgvu.data.voc_localization import VOC_CATEGORIES  # pylint: disable=g-import-not-at-top
  _quickdraw(os.path.join(root, "quickdraw"), VOC_CATEGORIES)
  return {"root": root, "sketch_root": os.path.join(root, "quickdraw")}


def paper_config_at_fixture_size(c, files):
  """The paper's model (ResNet-50 C4, frozen BatchNorm and stages) on 64 px fixture images, 2 steps."""
  c.data.root, c.data.options.sketch_root = files["root"], files["sketch_root"]
  c.data.options.recognized_only = False
  c.data.options.sketch_fractions = (0.6, 0.1, 0.3)
  c.data.short_side = c.data.max_side = 64
  c.data.sketch_size = 32
  c.data.num_workers = 0
  c.cma.rpn_pre_nms_train = c.cma.rpn_pre_nms_test = 64
  c.cma.rpn_post_nms_train = c.cma.rpn_post_nms_test = 16
  c.cma.num_rois, c.cma.anchor_sizes = 16, (16.0, 32.0)
  c.cma_train.num_steps, c.cma_train.batch_size = 2, 8
  c.eval_batch_size = 2
  return c


def test_coco_and_voc_paper_configs_run_on_fixture_files(tmp_path):
  coco = _coco(str(tmp_path / "coco"))
  voc = _voc(str(tmp_path / "voc"))
  for module, files in ((localization_coco, coco), (localization_voc, voc)):
    c = paper_config_at_fixture_size(module.get_config(), files)
    c.methods = ("cma",)
    assert c.cma.backbone == "resnet50" and c.cma.batchnorm == "frozen" and c.cma.anchor_ratios == (0.5, 1.0, 2.0)
    workdir = tmp_path / c.name
    row = sgvu_main.run(c, str(workdir))["rows"][0]
    assert np.isfinite(row["final loss"]) and 0.0 <= row["unseen AP@50"] <= 1.0
    assert os.path.isfile(workdir / "cma" / "seed0" / "detections_unseen.json")
    with open(workdir / "gt_seen.json") as f:
      gt = json.load(f)
    assert gt["images"] and all(im["width"] == 64 for im in gt["images"])  # the files' own pixels
