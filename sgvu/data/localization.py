"""Sketch-guided object localization data: records, the source interface, padding, the registry.

A sample is one query: an image with its boxes, a category present in it, and 1 (or k) sketches of
that category drawn by someone else (a different instance). The model must find every box of the
query category (Tripathi et al., ECCV 2020; seed 000).

Split names (every source; `split_names` lists a source's own):
  train        train images; queries of SEEN categories only, and boxes of unseen categories are
               dropped (the objects stay in the picture as background), as the release does, so
               no unseen object is ever a training target.
  val          (synth only) held-out images, the same rule as train: for choosing hyperparameters.
  test         test images, queries of all categories; test_seen / test_unseen: only seen / unseen.
Test samples keep every box of the dataset's categories.

Queries: one sample per (image, query category present) (`queries='each'`, the evaluation
protocol), or one per image with the category drawn by a seeded rule weighted by inverse box
frequency (`queries='one'`, the release's training pairs). The sketches of a query follow a seeded
rule of (seed, image id, category, draw): `split[i]` is deterministic; `split.get(i, draw=n)`
picks other sketches for the same query (a new draw each epoch, as the release samples).

Bad input (unreadable file, zero-area box, a category without sketches) is a named skip in
`source.skipped` (`strict=True` raises DataError naming it); what the protocol filters out by
design (crowd boxes, images without a query category) is only counted, in `source.dropped`.
"""

from __future__ import annotations

import abc
import collections
import dataclasses
import zlib
from typing import Any, Callable, Sequence

import numpy as np

from sgvu.data import padding, sketch_files
from sgvu.data.base import DataError, Sketch

# split -> (which categories are queries, which categories keep their boxes)
SPLIT_KINDS = {"train": ("seen", "seen"), "val": ("seen", "seen"), "test": ("all", "all"),
               "test_seen": ("seen", "all"), "test_unseen": ("unseen", "all")}
QUERY_MODES = ("each", "one")
_ONE_WORD = 0x0E1  # keeps the 'one query per image' draw apart from the sketch draws


@dataclasses.dataclass(frozen=True, eq=False)
class ImageRecord:
  """One image of the index: its boxes, no pixels."""

  key: str  # file path (real data) or synthetic id; named in every error
  image_id: str  # the dataset's own id (COCO image id, VOC stem, scene index): seeds the query rule
  boxes: np.ndarray  # float32 [G, 4] x0, y0, x1, y1 in pixels
  labels: np.ndarray  # int32 [G], index into source.categories
  ignore: np.ndarray  # bool [G]: VOC 'difficult' (neither a hit nor a miss in evaluation)

  def subset(self, keep: np.ndarray) -> ImageRecord:
    return dataclasses.replace(self, boxes=self.boxes[keep], labels=self.labels[keep], ignore=self.ignore[keep])


@dataclasses.dataclass(frozen=True)
class QueryItem:
  image: int  # index into LocalizationSplit.images
  label: int  # the query category, index into source.categories


@dataclasses.dataclass
class LocalizationSample:
  key: str
  image_id: str
  image: np.ndarray  # uint8 [H, W, 3]
  boxes: np.ndarray  # float32 [G, 4] xyxy pixels, every box of the image (see SPLIT_KINDS)
  labels: np.ndarray  # int32 [G]
  ignore: np.ndarray  # bool [G]
  query_label: int
  query_category: str
  query_boxes: np.ndarray  # float32 [Q >= 1, 4]: the boxes to find (query category, not ignored)
  sketches: np.ndarray  # uint8 [k, S, S, 3], k = num_query_sketches
  sketch_keys: tuple[str, ...]
  strokes: tuple[Sketch, ...]

  def targets(self, max_boxes: int) -> dict[str, np.ndarray]:
    """Fixed-shape targets for jit: boxes [M, 4], labels [M], valid, ignore, is_query [M] bool."""
    boxes, labels, valid = pad_targets(self.boxes, self.labels, max_boxes)
    ignore, _ = padding.pad_to(self.ignore, max_boxes, False, dtype=bool, name=f"{self.key} ignore")
    return dict(boxes=boxes, labels=labels, valid=valid, ignore=ignore,
                is_query=valid & ~ignore & (labels == self.query_label))


def pad_targets(boxes: Any, labels: Any, max_boxes: int,
                fill_label: int = -1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(boxes float32 [max_boxes, 4], labels int32 [max_boxes], valid bool [max_boxes]).

  Padding is zero boxes with label `fill_label`; more than max_boxes boxes is an error, never a
  silent truncation (sgvu.data.padding).
  """
  boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
  labels = np.asarray(labels, np.int32).reshape(-1)
  if len(boxes) != len(labels):
    raise ValueError(f"{len(boxes)} boxes but {len(labels)} labels")
  b, valid = padding.pad_to(boxes, max_boxes, 0.0, name="boxes")
  l, _ = padding.pad_to(labels, max_boxes, fill_label, name="labels")
  return b, l, valid


class LocalizationSplit:
  """The queries of one split: `len()`, `split[i]` -> LocalizationSample (decoded on demand)."""

  def __init__(self, source: LocalizationSource, name: str, categories: Sequence[str],
               images: Sequence[ImageRecord], items: Sequence[QueryItem], sketch_part: str):
    self.source, self.name, self.categories = source, name, tuple(categories)
    self.images, self.items, self.sketch_part = tuple(images), tuple(items), sketch_part

  def __len__(self) -> int:
    return len(self.items)

  def __getitem__(self, index: int) -> LocalizationSample:
    return self.get(index)

  def get(self, index: int, draw: int = 0) -> LocalizationSample:
    if not -len(self.items) <= index < len(self.items):
      raise IndexError(f"{self.source.name} {self.name}: query {index} of {len(self.items)}")
    return self.source.load(self, index % len(self.items), draw)


def sketch_rule(pool: int, k: int, seed: int, image_id: str, label: int, draw: int = 0) -> np.ndarray:
  """Positions in a category's sketch pool of the k query sketches of (image, category).

  Distinct when the pool has k or more; a function of its arguments only, so it does not depend
  on which other images or splits were indexed.
  """
  if pool < 1:
    raise ValueError(f"image {image_id}: category {label} has no sketches to draw from")
  rng = np.random.default_rng([seed, zlib.crc32(str(image_id).encode()), label, draw])
  return rng.choice(pool, k, replace=False) if pool >= k else rng.integers(pool, size=k)


class LocalizationSource(abc.ABC):
  """A localization dataset: SynthSketch scenes, COCO, VOC."""

  name: str
  categories: tuple[str, ...]
  seen: tuple[str, ...]
  unseen: tuple[str, ...]
  split_names: tuple[str, ...] = ("train", "test", "test_seen", "test_unseen")
  seed: int = 0
  num_query_sketches: int = 1
  sketch_size: int = 128
  queries: str = "each"

  @abc.abstractmethod
  def split(self, name: str) -> LocalizationSplit:
    """The queries of split `name` (built on first use); unknown names raise naming the valid ones."""

  @abc.abstractmethod
  def load_image(self, record: ImageRecord) -> np.ndarray:
    """uint8 [H, W, 3]; raises BadSample naming the file."""

  @abc.abstractmethod
  def query_sketches(self, split: LocalizationSplit, record: ImageRecord, label: int,
                     draw: int) -> list[tuple[str, Sketch]]:
    """(key, sketch) of the num_query_sketches sketches of this query."""

  def render_query(self, key: str, sketch: Sketch) -> np.ndarray:
    return sketch_files.render(sketch, self.sketch_size, key=key)

  def load(self, split: LocalizationSplit, index: int, draw: int = 0) -> LocalizationSample:
    item = split.items[index]
    rec = split.images[item.image]
    image = self.load_image(rec)
    chosen = self.query_sketches(split, rec, item.label, draw)
    target = (rec.labels == item.label) & ~rec.ignore
    return LocalizationSample(
        key=rec.key, image_id=rec.image_id, image=image, boxes=rec.boxes, labels=rec.labels, ignore=rec.ignore,
        query_label=item.label, query_category=self.categories[item.label], query_boxes=rec.boxes[target],
        sketches=np.stack([self.render_query(k, s) for k, s in chosen]),
        sketch_keys=tuple(k for k, _ in chosen), strokes=tuple(s for _, s in chosen))

  def names_of(self, kind: str) -> tuple[str, ...]:
    """The categories of a kind: 'seen', 'unseen' or 'all'."""
    return {"seen": self.seen, "unseen": self.unseen, "all": self.categories}[kind]

  def labels_of(self, kind: str) -> set[int]:
    return {self.categories.index(c) for c in self.names_of(kind)}

  def check_split_name(self, name: str) -> None:
    if name not in self.split_names:
      raise DataError(f"{self.name}: unknown split {name!r}; valid: {list(self.split_names)}")

  @property
  def skipped(self) -> Sequence[tuple[str, str]]:
    """(key, reason) of the bad input dropped so far (splits are indexed on first use)."""
    return ()

  @property
  def dropped(self) -> dict[str, int]:
    """'<split or image set>: <reason>' -> count of what the protocol filtered out (not errors)."""
    return {}


def check_options(name: str, num_query_sketches: int, queries: str, sketch_size: int) -> None:
  if num_query_sketches < 1:
    raise DataError(f"{name}: num_query_sketches must be >= 1 (1, or 3 for multi-sketch queries), "
                    f"got {num_query_sketches}")
  if queries not in QUERY_MODES:
    raise DataError(f"{name}: unknown queries={queries!r}; valid: {list(QUERY_MODES)}")
  if sketch_size < 8:
    raise DataError(f"{name}: sketch_size must be >= 8, got {sketch_size}")


def build_queries(source: LocalizationSource, split: str, records: Sequence[ImageRecord],
                  has_sketches: Callable[[int], bool],
                  dropped: collections.Counter) -> tuple[list[ImageRecord], list[QueryItem]]:
  """The images of `split` that have a query category, and their queries (see the module doc)."""
  query_kind, box_kind = SPLIT_KINDS[split]
  query_labels, box_labels = source.labels_of(query_kind), np.asarray(sorted(source.labels_of(box_kind)))
  kept, present = [], []
  for rec in records:
    keep = np.isin(rec.labels, box_labels)
    if not keep.all():
      dropped[f"{split}: box of a category that is not a target here"] += int((~keep).sum())
      rec = rec.subset(keep)
    found = sorted(set(rec.labels[~rec.ignore].tolist()) & query_labels)
    usable = [label for label in found if has_sketches(label)]
    dropped[f"{split}: query of a category without sketches"] += len(found) - len(usable)
    if not usable:
      dropped[f"{split}: image without a query category"] += 1
      continue
    kept.append(rec)
    present.append(usable)
  items = []
  freq = collections.Counter(int(label) for rec in kept for label in rec.labels[~rec.ignore])
  for i, (rec, usable) in enumerate(zip(kept, present)):
    if source.queries == "one" and len(usable) > 1:  # rarer categories more often, as the release
      p = np.array([1.0 / freq[label] for label in usable])
      rng = np.random.default_rng([source.seed, zlib.crc32(rec.image_id.encode()), _ONE_WORD])
      usable = [usable[int(rng.choice(len(usable), p=p / p.sum()))]]
    items += [QueryItem(i, label) for label in usable]
  return kept, items
