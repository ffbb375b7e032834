"""COCO box AP through pycocotools (the reference implementation), with the conversions and checks around it.

Boxes come in as (x1, y1, x2, y2) pixels, the convention of `sgvu.detection`, and are converted
to COCO's (x, y, width, height) here. `evaluate` returns pycocotools' first six stats as fractions:
AP (mean over IoU 0.50:0.05:0.95), AP@50, AP@75, and AP_S / AP_M / AP_L (areas below 32^2,
32^2 to 96^2, above 96^2 pixels), each with at most 100 detections per image. Where pycocotools
reports -1 (no ground truth in that area range, e.g. AP_S of a dataset without small objects)
we return float("nan"): "undefined", never a score of -1 that would drag a mean down.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import tempfile
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

STAT_NAMES = ("AP", "AP@50", "AP@75", "AP_S", "AP_M", "AP_L")


def _box(bbox, what: str, index: int, layout: str) -> list[float]:
  """4 finite floats of a box with positive area; layout 'x1, y1, x2, y2' or 'x, y, w, h'."""
  try:
    a, b, c, d = (float(v) for v in bbox)
  except (TypeError, ValueError):
    raise ValueError(f"{what}[{index}]: bbox must be 4 numbers ({layout}), got {bbox!r}") from None
  if not all(math.isfinite(v) for v in (a, b, c, d)):
    raise ValueError(f"{what}[{index}]: bbox has a non-finite value: {[a, b, c, d]}")
  w, h = (c - a, d - b) if layout.startswith("x1") else (c, d)
  if w <= 0 or h <= 0:
    raise ValueError(f"{what}[{index}]: bbox ({layout}) = {[a, b, c, d]} has zero or negative area")
  return [a, b, c, d]


def _xyxy_to_xywh(bbox, what: str, index: int) -> list[float]:
  x1, y1, x2, y2 = _box(bbox, what, index, "x1, y1, x2, y2")
  return [x1, y1, x2 - x1, y2 - y1]


def _key(entry: Mapping, key: str, what: str, index: int):
  if key not in entry:
    raise ValueError(f"{what}[{index}] has no {key!r}: {entry!r}")
  return entry[key]


def _int_id(value, what: str, index: int, key: str) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise ValueError(f"{what}[{index}]: {key} must be an integer, got {value!r}")
  return int(value)


def _new_id(record: Mapping, where: str, i: int, seen: set) -> int:
  """record["id"] as an int not in `seen` (added to it); a duplicate raises naming the index."""
  rid = _int_id(_key(record, "id", where, i), where, i, "id")
  if rid in seen:
    raise ValueError(f"{where}[{i}]: duplicate id {rid}")
  seen.add(rid)
  return rid


def coco_ground_truth(images: Sequence[Mapping], annotations: Sequence[Mapping],
                      categories: Sequence[Mapping]) -> dict:
  """A COCO ground-truth dict.

  images: {"id", "width", "height", "file_name"}; annotations: {"image_id", "category_id",
  "bbox": (x1, y1, x2, y2)}, optionally "iscrowd" (True: a region detections may match without
  counting as hits or misses, e.g. VOC's 'difficult'); categories: {"id", "name"}. Annotations get
  ids 1, 2, ... (pycocotools reads id 0 as "unmatched") and area = box width * height.
  """
  out_images, image_ids = [], set()
  for i, im in enumerate(images):
    iid = _new_id(im, "images", i, image_ids)
    out_images.append({"id": iid, "width": int(_key(im, "width", "images", i)),
                       "height": int(_key(im, "height", "images", i)),
                       "file_name": str(im.get("file_name", f"{iid}.png"))})
  out_cats, cat_ids = [], set()
  for i, c in enumerate(categories):
    cid = _new_id(c, "categories", i, cat_ids)
    out_cats.append({"id": cid, "name": str(_key(c, "name", "categories", i))})
  out_anns = []
  for i, a in enumerate(annotations):
    iid, cid = _known_ids(a, "annotations", i, image_ids, cat_ids)
    box = _xyxy_to_xywh(_key(a, "bbox", "annotations", i), "annotations", i)
    out_anns.append({"id": i + 1, "image_id": iid, "category_id": cid, "bbox": box,
                     "area": box[2] * box[3], "iscrowd": int(bool(a.get("iscrowd", False)))})
  return {"images": out_images, "annotations": out_anns, "categories": out_cats}


def _check_score(value, what: str, index: int) -> float:
  try:
    score = float(value)
  except (TypeError, ValueError):
    raise ValueError(f"{what}[{index}]: score must be a number, got {value!r}") from None
  if not math.isfinite(score):
    raise ValueError(f"{what}[{index}]: score is not finite: {score}")
  return score


def coco_results(detections: Iterable[Mapping]) -> list[dict]:
  """COCO's results list from detections {"image_id", "category_id", "bbox": (x1, y1, x2, y2), "score"}.

  -> [{"image_id", "category_id", "bbox": (x, y, w, h), "score"}]. Drop degenerate boxes before
  (zero width or height is an error here, as are non-finite scores and coordinates).
  """
  out = []
  for i, d in enumerate(detections):
    out.append({"image_id": _int_id(_key(d, "image_id", "detections", i), "detections", i, "image_id"),
                "category_id": _int_id(_key(d, "category_id", "detections", i), "detections", i, "category_id"),
                "bbox": _xyxy_to_xywh(_key(d, "bbox", "detections", i), "detections", i),
                "score": _check_score(_key(d, "score", "detections", i), "detections", i)})
  return out


def detections_from_arrays(image_id: int, boxes, scores, category_ids, valid=None) -> list[dict]:
  """One image's padded model output -> detections for `coco_results`.

  boxes [N, 4] (x1, y1, x2, y2), scores [N], category_ids [N] int, valid [N] bool (e.g. from
  `sgvu.detection.nms.nms`); entries with valid False are left out.
  """
  boxes, scores, cats = np.asarray(boxes, np.float64), np.asarray(scores, np.float64), np.asarray(category_ids)
  keep = np.ones(len(scores), bool) if valid is None else np.asarray(valid, bool)
  return [{"image_id": int(image_id), "category_id": int(cats[k]), "bbox": boxes[k].tolist(),
           "score": float(scores[k])} for k in np.flatnonzero(keep)]


def write_json(path: str, obj: Any) -> None:
  """Writes obj as JSON atomically: a reader sees the old file or the whole new one, never half."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=os.path.basename(path) + ".", suffix=".tmp")
  try:
    with os.fdopen(fd, "w") as f:
      json.dump(obj, f, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v))
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    raise


def _known_ids(record: Mapping, where: str, i: int, image_ids, cat_ids) -> tuple[int, int]:
  """(image_id, category_id) of an annotation or result, both checked against the ground truth's."""
  iid = _int_id(_key(record, "image_id", where, i), where, i, "image_id")
  cid = _int_id(_key(record, "category_id", where, i), where, i, "category_id")
  if iid not in image_ids:
    raise ValueError(f"{where}[{i}]: unknown image_id {iid}")
  if cid not in cat_ids:
    raise ValueError(f"{where}[{i}]: unknown category_id {cid}")
  return iid, cid


def _check_results(gt: Mapping, results: Sequence[Mapping]) -> list[dict]:
  image_ids = {im["id"] for im in gt["images"]}
  cat_ids = {c["id"] for c in gt["categories"]}
  out = []
  for i, r in enumerate(results):
    iid, cid = _known_ids(r, "results", i, image_ids, cat_ids)
    box = _box(_key(r, "bbox", "results", i), "results", i, "x, y, w, h")
    out.append({"image_id": iid, "category_id": cid, "bbox": box,
                "score": _check_score(_key(r, "score", "results", i), "results", i)})
  return out


def evaluate(gt: Mapping, results: Sequence[Mapping], *, area_scale: float = 1.0) -> dict[str, float]:
  """COCO box AP of `results` (from `coco_results`) against `gt` (from `coco_ground_truth`).

  Returns {"AP", "AP@50", "AP@75", "AP_S", "AP_M", "AP_L"} as fractions; NaN where pycocotools
  has no ground truth to score (its -1). No results at all scores 0.0 everywhere (pycocotools
  cannot load an empty list). pycocotools' printing is silenced. `area_scale` s multiplies the side
  of COCO's size limits (small < (32 s)^2 <= medium < (96 s)^2 <= large): images of side L pixels
  keep COCO's notion of size (made for ~640 px) at s = L / 640; 1.0 is pycocotools' own.
  """
  if not (isinstance(area_scale, (int, float)) and 0 < area_scale < 1e3):
    raise ValueError(f"area_scale must be a positive number, got {area_scale!r}")
  for key in ("images", "annotations", "categories"):
    if key not in gt:
      raise ValueError(f"gt has no {key!r} (build it with coco_ground_truth)")
  results = _check_results(gt, results)
  if not results:
    return {name: 0.0 for name in STAT_NAMES}
  with contextlib.redirect_stdout(io.StringIO()):
    coco_gt = COCO()
    coco_gt.dataset = copy.deepcopy(dict(gt))  # pycocotools edits what it is given
    coco_gt.createIndex()
    coco_dt = coco_gt.loadRes(results)
    ev = COCOeval(coco_gt, coco_dt, "bbox")
    if area_scale != 1.0:  # [all, small, medium, large]; pycocotools' labels stay
      s2 = float(area_scale) ** 2
      ev.params.areaRng = [[lo * s2 if lo else 0.0, hi * s2] for lo, hi in ev.params.areaRng]
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
  return {name: (float("nan") if v < 0 else float(v)) for name, v in zip(STAT_NAMES, ev.stats[:6])}
