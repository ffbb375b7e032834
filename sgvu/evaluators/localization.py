"""Sketch-guided localization (seed 000): COCO box AP through pycocotools, per category split.

One query per (image, category present), always the same sketch (draw 0). A query's detections get
the query's category, so COCOeval scores each (image, category) against exactly that category's
boxes in that image, and averages AP over the split's categories, as the CMA release evaluates.
Other objects of the image are never targets of that query.

Each named split (e.g. {'seen': 'test_seen', 'unseen': 'test_unseen'}) writes
  <gt_dir>/gt_<name>.json           COCO ground truth (the files' pixels; 'difficult' boxes iscrowd)
  <output_dir>/detections_<name>.json  COCO results
so anyone can re-score a row with pycocotools, and reports '<name> AP', '<name> AP@50', ... as fractions.
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

from absl import logging
import jax
import numpy as np

from sgvu.data import localization_pipeline
from sgvu.metrics import coco_ap

DEFAULT_SPLITS = {"seen": "test_seen", "unseen": "test_unseen"}


class Localization:
  """COCO AP of `detect(variables, images, sketches) -> {boxes, scores, valid}` on the source's splits."""

  def __init__(self, predict_fns, *, source, short_side: int, max_side: int, max_boxes: int,
               splits: Mapping[str, str] | None = None, metrics: Sequence[str] = coco_ap.STAT_NAMES,
               batch_size: int = 16, area_scale: float = 1.0, min_box_side: float = 1e-2,
               output_dir: str = "", gt_dir: str = "", strict: bool = False):
    if "detect" not in predict_fns:
      raise ValueError(f"localization needs the predict function 'detect'; the task gives {sorted(predict_fns)}")
    unknown = sorted(set(metrics) - set(coco_ap.STAT_NAMES))
    if unknown:
      raise ValueError(f"localization metrics {unknown} unknown; valid: {list(coco_ap.STAT_NAMES)}")
    self.detect, self.source = predict_fns["detect"], source
    self.splits = dict(splits or DEFAULT_SPLITS)
    for name, split in self.splits.items():
      if split not in source.split_names:
        raise ValueError(f"localization split {name}={split!r}: {source.name} has {list(source.split_names)}")
    self.box_options = dict(short_side=short_side, max_side=max_side, max_boxes=max_boxes)
    self.metrics, self.batch_size, self.area_scale = tuple(metrics), batch_size, area_scale
    self.min_side, self.output_dir, self.gt_dir, self.strict = min_box_side, output_dir, gt_dir, strict
    self.skipped: list[tuple[str, str]] = []

  def predictions(self, variables, split) -> tuple[list[dict], dict[int, tuple[int, int]]]:
    """(detections in the files' pixels, {query index: (height, width)} of every query scored)."""
    detections, sizes = [], {}
    for batch in localization_pipeline.eval_batches(split, batch_size=self.batch_size, strict=self.strict,
                                                    skipped=self.skipped, **self.box_options):
      out = jax.device_get(self.detect(variables, batch["images"], batch["sketches"]))
      for b in np.flatnonzero(batch["real"]):
        q = int(batch["item"][b])
        h, w = (int(v) for v in batch["image_hw"][b])
        sizes[q] = (h, w)
        boxes = np.asarray(out["boxes"][b], np.float64) / float(batch["scale"][b])
        boxes = np.clip(boxes, 0.0, [w, h, w, h])
        ok = (np.asarray(out["valid"][b], bool) & np.all(boxes[:, 2:] - boxes[:, :2] > self.min_side, axis=1)
              & np.isfinite(np.asarray(out["scores"][b])))
        item = split.items[q]
        detections += coco_ap.detections_from_arrays(item.image + 1, boxes, out["scores"][b],
                                                     np.full(len(boxes), item.label + 1), ok)
    return detections, sizes

  def ground_truth(self, split, sizes: Mapping[int, tuple[int, int]]) -> dict:
    """COCO ground truth of the images whose queries were scored: the split's categories' boxes."""
    labels = {self.source.categories.index(c) for c in split.categories}
    image_size = {split.items[q].image: hw for q, hw in sizes.items()}
    images, annotations = [], []
    for i in sorted(image_size):
      rec, (h, w) = split.images[i], image_size[i]
      images.append({"id": i + 1, "width": w, "height": h, "file_name": rec.key})
      for box, label, ignore in zip(rec.boxes, rec.labels, rec.ignore):
        if int(label) in labels:
          annotations.append({"image_id": i + 1, "category_id": int(label) + 1, "bbox": box.tolist(),
                              "iscrowd": bool(ignore)})
    categories = [{"id": l + 1, "name": self.source.categories[l]} for l in sorted(labels)]
    return coco_ap.coco_ground_truth(images, annotations, categories)

  def run(self, variables) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, split_name in self.splits.items():
      split = self.source.split(split_name)
      detections, sizes = self.predictions(variables, split)
      gt = self.ground_truth(split, sizes)
      results = coco_ap.coco_results(detections)
      if self.gt_dir:
        coco_ap.write_json(os.path.join(self.gt_dir, f"gt_{name}.json"), gt)
      if self.output_dir:
        coco_ap.write_json(os.path.join(self.output_dir, f"detections_{name}.json"), results)
      stats = coco_ap.evaluate(gt, results, area_scale=self.area_scale)
      logging.info("localization %s (%s): %d queries, %d images, %d detections: %s", name, split_name, len(sizes),
                   len(gt["images"]), len(results), " ".join(f"{k}={v:.4f}" for k, v in stats.items()))
      out.update({f"{name} {m}": float(stats[m]) for m in self.metrics})
      out[f"{name} queries"] = float(len(sizes))
    if self.skipped:
      out["skipped"] = float(len(self.skipped))
    return out


EVALUATOR = Localization
