"""TensorBoard event files beside metrics.jsonl: scalars of every logged record, pictures of a run.

  writer = EventWriter(workdir)            # process 0 writes; others get a writer that does nothing
  writer.scalars({"step": 10, "loss": 0.3, "lr": 1e-3, "steps_per_sec": 4.2})
  writer.image("retrieval_grid", "WORKDIR/retrieval_grid.png")
  writer.close()

Written with tensorboardX (a maintained event-file writer that needs no TensorFlow); read back with
TensorBoard's own loader (`read_scalars`, `read_images`), which is what `tensorboard --logdir runs/` shows.
"""

from __future__ import annotations

import numbers
import os
from typing import Any, Mapping

import numpy as np
from PIL import Image


def scalar_items(record: Mapping[str, Any]) -> dict[str, float]:
  """The record's numeric scalars (not 'step', not bools, not lists): what becomes a TensorBoard scalar."""
  out = {}
  for key, value in record.items():
    if key == "step" or isinstance(value, bool):
      continue
    if isinstance(value, np.ndarray) and value.ndim == 0:
      value = value.item()
    if isinstance(value, numbers.Real):
      out[key] = float(value)
  return out


class EventWriter:
  """Scalars and images into WORKDIR/events.out.tfevents.* (created on first use)."""

  def __init__(self, logdir: str, enabled: bool = True):
    self.logdir, self.enabled = logdir, enabled
    self._writer = None

  def _get(self):
    if self._writer is None:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      os.makedirs(self.logdir, exist_ok=True)
      self._writer = SummaryWriter(logdir=self.logdir, flush_secs=30)
    return self._writer

  def scalars(self, record: Mapping[str, Any], step: int | None = None) -> None:
    """Every numeric scalar of `record` at `step` (default record['step']); NaN/inf are kept, as TensorBoard
    shows them (a diverged run should look diverged)."""
    if not self.enabled:
      return
    step = int(record["step"] if step is None else step)
    items = scalar_items(record)
    if items:
      writer = self._get()
      for tag, value in items.items():
        writer.add_scalar(tag, value, step)

  def image(self, tag: str, picture: str | np.ndarray, step: int = 0) -> None:
    """A PNG file or a uint8 [H, W, 3] array as an image summary."""
    if not self.enabled:
      return
    if isinstance(picture, str):
      with Image.open(picture) as img:
        picture = np.asarray(img.convert("RGB"))
    picture = np.asarray(picture)
    if picture.dtype != np.uint8 or picture.ndim != 3 or picture.shape[2] != 3:
      raise ValueError(f"image {tag!r} must be uint8 [H, W, 3], got {picture.dtype} {picture.shape}")
    self._get().add_image(tag, picture, step, dataformats="HWC")

  def flush(self) -> None:
    if self._writer is not None:
      self._writer.flush()

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()
      self._writer = None


def _accumulator(logdir: str):
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  acc = event_accumulator.EventAccumulator(logdir, size_guidance={event_accumulator.SCALARS: 0,
                                                                  event_accumulator.IMAGES: 0})
  acc.Reload()
  return acc


def read_scalars(logdir: str) -> dict[str, list[tuple[int, float]]]:
  """{tag: [(step, value), ...]} as TensorBoard loads them from `logdir`'s event files."""
  acc = _accumulator(logdir)
  return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def read_images(logdir: str) -> dict[str, list[tuple[int, int, int]]]:
  """{tag: [(step, width, height), ...]} of the image summaries TensorBoard loads from `logdir`."""
  acc = _accumulator(logdir)
  return {tag: [(e.step, e.width, e.height) for e in acc.Images(tag)] for tag in acc.Tags()["images"]}
