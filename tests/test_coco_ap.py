"""sgvu.metrics.coco_ap: conversions, checks, and pycocotools' AP on cases whose value is known by hand."""

import json
import math
import os

import numpy as np
import pytest

from sgvu.metrics import coco_ap

CATEGORIES = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
IMAGES = [{"id": 10, "width": 200, "height": 160, "file_name": "a.png"},
          {"id": 11, "width": 200, "height": 160, "file_name": "b.png"}]
# xyxy; areas: small (< 32^2), medium, large (> 96^2), so every COCO area range has ground truth
ANNOTATIONS = [{"image_id": 10, "category_id": 1, "bbox": [10, 10, 30, 30]},  # 400: small
               {"image_id": 10, "category_id": 2, "bbox": [50, 40, 110, 90]},  # 3000: medium
               {"image_id": 11, "category_id": 1, "bbox": [0, 0, 150, 120]},  # 18000: large
               {"image_id": 11, "category_id": 2, "bbox": [150, 100, 190, 150]}]  # 2000: medium


def perfect_detections():
  return [dict(a, score=0.9 - 0.1 * i) for i, a in enumerate(ANNOTATIONS)]


def gt():
  return coco_ap.coco_ground_truth(IMAGES, ANNOTATIONS, CATEGORIES)


def box_iou(a, b):
  iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
  ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
  union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih
  return iw * ih / union


def test_ground_truth_conversion():
  g = gt()
  assert [a["id"] for a in g["annotations"]] == [1, 2, 3, 4]  # never 0: pycocotools reads 0 as unmatched
  assert g["annotations"][1]["bbox"] == [50.0, 40.0, 60.0, 50.0]  # x, y, w, h
  assert g["annotations"][1]["area"] == 3000.0 and g["annotations"][1]["iscrowd"] == 0
  assert g["images"][0] == IMAGES[0] and g["categories"] == CATEGORIES
  json.dumps(g)  # plain JSON types


def test_results_conversion():
  res = coco_ap.coco_results([{"image_id": 10, "category_id": 2, "bbox": np.array([1.0, 2.0, 4.0, 8.0]),
                               "score": np.float32(0.5)}])
  assert res == [{"image_id": 10, "category_id": 2, "bbox": [1.0, 2.0, 3.0, 6.0], "score": 0.5}]
  json.dumps(res)
  dets = coco_ap.detections_from_arrays(11, np.array([[0, 0, 2, 2], [1, 1, 5, 5.]]), np.array([0.3, 0.7]),
                                        np.array([1, 2]), valid=np.array([False, True]))
  assert dets == [{"image_id": 11, "category_id": 2, "bbox": [1.0, 1.0, 5.0, 5.0], "score": 0.7}]


def test_perfect_detections_score_one(capsys):
  m = coco_ap.evaluate(gt(), coco_ap.coco_results(perfect_detections()))
  assert set(m) == set(coco_ap.STAT_NAMES)
  for name in coco_ap.STAT_NAMES:
    assert m[name] == pytest.approx(1.0), name
  assert capsys.readouterr().out == ""  # pycocotools' prints are silenced


def test_shifted_detection_iou_06():
  dets = perfect_detections()
  x1, y1, x2, y2 = dets[2]["bbox"]  # 150 x 120: shift right so that IoU = (150 - s) / (150 + s) = 0.6
  s = 150 * 0.4 / 1.6
  dets[2] = dict(dets[2], bbox=[x1 + s, y1, x2 + s, y2])
  assert box_iou(dets[2]["bbox"], ANNOTATIONS[2]["bbox"]) == pytest.approx(0.6)
  m = coco_ap.evaluate(gt(), coco_ap.coco_results(dets))
  assert m["AP@50"] == pytest.approx(1.0)
  assert m["AP@75"] < 1.0 and m["AP"] < 1.0
  # Cat's only large object is found at IoU thresholds 0.50, 0.55, 0.60 out of ten; AP_L = 3 / 10.
  assert m["AP_L"] == pytest.approx(0.3)
  # AP averages cat (the small one is found at every threshold, the large at 3 of 10) and dog (1.0).
  assert 0.5 < m["AP"] < 1.0


def test_known_toy_precision_recall():
  # One class, two objects; ranked: hit (0.9), false positive (0.8), hit (0.7). Precision is 1 up
  # to recall 0.5 and 2/3 at recall 1; COCO's 101-point interpolation: (51 * 1 + 50 * 2/3) / 101.
  images = [{"id": 1, "width": 100, "height": 100, "file_name": "x.png"}]
  anns = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 40, 40]},
          {"image_id": 1, "category_id": 1, "bbox": [50, 50, 90, 90]}]
  g = coco_ap.coco_ground_truth(images, anns, [{"id": 1, "name": "thing"}])
  dets = [dict(anns[0], score=0.9), {"image_id": 1, "category_id": 1, "bbox": [0, 60, 30, 95], "score": 0.8},
          dict(anns[1], score=0.7)]
  m = coco_ap.evaluate(g, coco_ap.coco_results(dets))
  want = (51 + 50 * 2 / 3) / 101
  for name in ("AP", "AP@50", "AP@75", "AP_M"):
    assert m[name] == pytest.approx(want, abs=1e-9), name
  assert math.isnan(m["AP_S"]) and math.isnan(m["AP_L"])  # no ground truth there: undefined, not -1


def test_empty_results_score_zero():
  assert coco_ap.evaluate(gt(), []) == {name: 0.0 for name in coco_ap.STAT_NAMES}


def test_evaluate_does_not_modify_inputs():
  g, res = gt(), coco_ap.coco_results(perfect_detections())
  g_copy, res_copy = json.loads(json.dumps(g)), json.loads(json.dumps(res))
  coco_ap.evaluate(g, res)
  assert g == g_copy and res == res_copy


@pytest.mark.parametrize("bbox, match", [
    ([5, 5, 5, 9], r"annotations\[1\].*\[5\.0, 5\.0, 5\.0, 9\.0\] has zero or negative area"),
    ([5, 5, 9, 2], r"annotations\[1\].*9\.0, 2\.0\] has zero or negative area"),
    ([5, float("nan"), 9, 9], r"annotations\[1\].*non-finite.*nan"),
    ([1, 2, 3], r"annotations\[1\].*4 numbers.*\[1, 2, 3\]")])
def test_bad_ground_truth_boxes_raise(bbox, match):
  anns = [ANNOTATIONS[0], dict(ANNOTATIONS[1], bbox=bbox)]
  with pytest.raises(ValueError, match=match):
    coco_ap.coco_ground_truth(IMAGES, anns, CATEGORIES)


def test_bad_ground_truth_ids_raise():
  with pytest.raises(ValueError, match=r"annotations\[0\]: unknown image_id 99"):
    coco_ap.coco_ground_truth(IMAGES, [dict(ANNOTATIONS[0], image_id=99)], CATEGORIES)
  with pytest.raises(ValueError, match=r"annotations\[0\]: unknown category_id 7"):
    coco_ap.coco_ground_truth(IMAGES, [dict(ANNOTATIONS[0], category_id=7)], CATEGORIES)
  with pytest.raises(ValueError, match=r"images\[1\]: duplicate id 10"):
    coco_ap.coco_ground_truth([IMAGES[0], IMAGES[0]], [], CATEGORIES)


@pytest.mark.parametrize("change, match", [({"score": float("nan")}, r"detections\[2\]: score is not finite: nan"),
                                           ({"score": "high"}, r"detections\[2\]: score must be a number.*'high'"),
                                           ({"bbox": [0, 0, float("inf"), 3]}, r"detections\[2\].*non-finite.*inf"),
                                           ({"bbox": [4, 4, 4, 8]}, r"detections\[2\].*zero or negative area"),
                                           ({"image_id": 1.5}, r"detections\[2\]: image_id must be an integer.*1\.5")])
def test_bad_detections_raise(change, match):
  dets = perfect_detections()
  dets[2] = dict(dets[2], **change)
  with pytest.raises(ValueError, match=match):
    coco_ap.coco_results(dets)


@pytest.mark.parametrize("change, match", [
    ({"image_id": 12}, r"results\[1\]: unknown image_id 12"),
    ({"category_id": 3}, r"results\[1\]: unknown category_id 3"),
    ({"score": float("nan")}, r"results\[1\]: score is not finite: nan"),
    ({"bbox": [1, 1, 0, 5]}, r"results\[1\].*\[1\.0, 1\.0, 0\.0, 5\.0\] has zero or negative area"),
    ({"bbox": [1, float("nan"), 2, 5]}, r"results\[1\].*non-finite.*nan")])
def test_bad_results_raise(change, match):
  res = coco_ap.coco_results(perfect_detections())
  res[1] = dict(res[1], **change)
  with pytest.raises(ValueError, match=match):
    coco_ap.evaluate(gt(), res)


def test_write_json_is_atomic(tmp_path):
  path = tmp_path / "sub" / "results.json"
  res = coco_ap.coco_results(perfect_detections())
  coco_ap.write_json(str(path), res)
  coco_ap.write_json(str(path), res[:1])  # replaces
  assert json.loads(path.read_text()) == res[:1]
  assert os.listdir(path.parent) == ["results.json"]  # no temporary left behind
  circular = {}
  circular["self"] = circular
  with pytest.raises(ValueError, match="Circular"):  # fails half-way through: the old file stays
    coco_ap.write_json(str(path), [1, circular])
  assert json.loads(path.read_text()) == res[:1] and os.listdir(path.parent) == ["results.json"]
