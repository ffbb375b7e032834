"""TensorBoard event files: what EventWriter writes, TensorBoard's own loader reads back."""

import math

import numpy as np
import pytest
from PIL import Image

from sgvu import event_files


def test_scalars_and_images_round_trip_through_tensorboards_loader(tmp_path):
  writer = event_files.EventWriter(str(tmp_path))
  records = [{"step": 1, "loss": 2.5, "lr": 1e-3, "steps_per_sec": np.float32(4.0), "note": "x", "ok": True},
             {"step": 2, "loss": 1.5, "lr": 9e-4, "ranks": [1, 2]},
             {"step": 3, "mAP@all": 0.25, "loss": float("nan")}]
  for r in records:
    writer.scalars(r)
  picture = np.zeros((12, 20, 3), np.uint8)
  picture[:, :10, 0] = 255
  path = tmp_path / "grid.png"
  Image.fromarray(picture).save(path)
  writer.image("retrieval_grid", str(path), step=3)
  writer.image("curves", picture)
  writer.close()

  scalars = event_files.read_scalars(str(tmp_path))
  # Strings, bools and lists are not scalars; TensorBoard tags allow no "@" (tensorboardX writes "_").
  assert set(scalars) == {"loss", "lr", "steps_per_sec", "mAP_all"}
  assert [s for s, _ in scalars["loss"]] == [1, 2, 3]
  assert scalars["loss"][0][1] == 2.5 and scalars["loss"][1][1] == 1.5 and math.isnan(scalars["loss"][2][1])
  assert scalars["lr"][1] == (2, pytest.approx(9e-4)) and scalars["mAP_all"] == [(3, 0.25)]
  images = event_files.read_images(str(tmp_path))
  assert images == {"retrieval_grid": [(3, 20, 12)], "curves": [(0, 20, 12)]}


def test_disabled_writer_writes_nothing_and_bad_images_are_named(tmp_path):
  event_files.EventWriter(str(tmp_path / "off"), enabled=False).scalars({"step": 1, "loss": 1.0})
  assert not (tmp_path / "off").exists()
  writer = event_files.EventWriter(str(tmp_path))
  with pytest.raises(ValueError, match="'grid' must be uint8"):
    writer.image("grid", np.zeros((4, 4), np.float32))
  writer.close()
