"""SynthSketch scenes as a localization source: no files, deterministic by (seed, scene index).

Images are `SynthSketch.scene` renders (2-4 objects of the world's categories, with boxes). Scene
indices are cut into train / val / test: scenes [0, n_train), then n_val, then n_test.

Seen / unseen: the world's fixed zero-shot split (catalog.SEEN_CATEGORIES / UNSEEN_CATEGORIES,
60 / 15 of the 75 categories), the same one zs_sbir uses, so a localization model's unseen
categories are unseen for every sgvu system.

Query sketches come from the world's photo instances (keys synth/<category>/<instance>/sketch<k>),
never from a scene object: scene objects are seeded with their own word (scene.py), so the query
is always another instance of the category, like a QuickDraw sketch of a COCO object. Each split
draws from its own range of instances (train [0, q_train), val next, test next), as QuickDraw's
train / valid / test sketch parts are disjoint; a k-sketch query uses k different instances.

Indexing a split renders its scenes once (~15 ms each at 128 px on one core) to learn which
categories each holds; `materialize=True` keeps those renders (and the query sketches) in memory,
so every later epoch is indexing, like `pipeline.materialize` for retrieval.
"""

from __future__ import annotations

import collections
from typing import Sequence

import numpy as np

from sgvu.data import localization as loc
from sgvu.data.base import DataError, Sketch, SketchItem
from sgvu.data.synth import catalog
from sgvu.data.synth.world import SynthSketch

_PARTS = ("train", "val", "test")
_SKETCH_WORD = 1_000_003  # keeps the sketch-number draw apart from the instance draw


def _part(split: str) -> str:
  return "test" if split.startswith("test") else split


class SynthLocalization(loc.LocalizationSource):
  """Localization queries over SynthSketch scenes.

  num_scenes / query_instances: (train, val, test) scene counts / per-category sketch instances.
  sketches_per_instance: sketches drawn per query instance (a query picks one of them).
  """

  name = "synth"
  split_names = ("train", "val", "test", "test_seen", "test_unseen")

  def __init__(self, seed: int = 0, *, categories: Sequence[str] | None = None, image_size: int = 128,
               num_objects: tuple[int, int] = (2, 4), num_scenes: Sequence[int] = (1000, 100, 200),
               query_instances: Sequence[int] = (200, 50, 50), sketches_per_instance: int = 3,
               num_query_sketches: int = 1, sketch_size: int = 128, queries: str = "each",
               materialize: bool = False):
    loc.check_options(self.name, num_query_sketches, queries, sketch_size)
    if len(num_scenes) != 3 or min(num_scenes) < 0 or len(query_instances) != 3 or min(query_instances) < 1:
      raise DataError(f"synth: num_scenes (>= 0) and query_instances (>= 1) are (train, val, test) counts, "
                      f"got {tuple(num_scenes)} and {tuple(query_instances)}")
    if len(num_objects) != 2 or not 1 <= num_objects[0] <= num_objects[1]:
      raise DataError(f"synth: num_objects must be (min, max) with 1 <= min <= max, got {tuple(num_objects)}")
    if image_size < 16 or sketches_per_instance < 1:
      raise DataError(f"synth: image_size must be >= 16 and sketches_per_instance >= 1, "
                      f"got {image_size}, {sketches_per_instance}")
    # protocol 'instance' takes any category subset; its photo splits are not used here.
    self.world = SynthSketch(seed=seed, protocol="instance", categories=categories, photos_per_category=2,
                             sketches_per_photo=1, test_fraction=0.5)
    self.seed, self.categories = int(seed), self.world.categories
    self.seen = tuple(c for c in self.categories if c in catalog.SEEN_CATEGORIES)
    self.unseen = tuple(c for c in self.categories if c in catalog.UNSEEN_CATEGORIES)
    self.image_size, self.num_objects = int(image_size), tuple(num_objects)
    self.num_query_sketches, self.sketch_size, self.queries = num_query_sketches, sketch_size, queries
    self.sketches_per_instance = sketches_per_instance
    starts = np.cumsum([0, *num_scenes])
    self.scene_ranges = {p: range(int(starts[i]), int(starts[i + 1])) for i, p in enumerate(_PARTS)}
    starts = np.cumsum([0, *query_instances])
    self.instance_ranges = {p: range(int(starts[i]), int(starts[i + 1])) for i, p in enumerate(_PARTS)}
    self._records: dict[str, list[loc.ImageRecord]] = {}
    self._splits: dict[str, loc.LocalizationSplit] = {}
    self._dropped: collections.Counter = collections.Counter()
    self._keep = bool(materialize)
    self._images: dict[int, np.ndarray] = {}  # scene index -> render (materialised)
    self._sketch_images: dict[str, np.ndarray] = {}  # sketch key -> render (materialised)
    if materialize:
      self.materialize()

  # -- index
  def _scene_records(self, part: str) -> list[loc.ImageRecord]:
    if part not in self._records:
      records = []
      for i in self.scene_ranges[part]:
        scene = self.world.scene(i, self.image_size, self.num_objects)
        if self._keep:
          self._images[i] = scene["image"]
        boxes = scene["boxes"]
        ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        self._dropped[f"{part}: zero-area scene box"] += int((~ok).sum())
        records.append(loc.ImageRecord(key=f"synth_scene/{self.seed}/{i:06d}", image_id=str(i), boxes=boxes[ok],
                                       labels=scene["labels"][ok], ignore=np.zeros(int(ok.sum()), bool)))
      self._records[part] = records
    return self._records[part]

  def split(self, name: str) -> loc.LocalizationSplit:
    self.check_split_name(name)
    if name not in self._splits:
      images, items = loc.build_queries(self, name, self._scene_records(_part(name)), lambda label: True,
                                        self._dropped)
      self._splits[name] = loc.LocalizationSplit(self, name, self.names_of(loc.SPLIT_KINDS[name][0]), images, items,
                                                 _part(name))
    return self._splits[name]

  def materialize(self, splits: Sequence[str] | None = None) -> SynthLocalization:
    """Renders the scenes and draw-0 query sketches of `splits` (default: all) into memory, once."""
    self._keep = True
    for name in splits or self.split_names:
      sp = self.split(name)
      for rec in sp.images:
        if int(rec.image_id) not in self._images:
          self._images[int(rec.image_id)] = self.load_image(rec)
      for item in sp.items:
        for key, sketch in self.query_sketches(sp, sp.images[item.image], item.label, 0):
          self.render_query(key, sketch)
    return self

  # -- loading
  def load_image(self, record: loc.ImageRecord) -> np.ndarray:
    i = int(record.image_id)
    if i in self._images:
      return self._images[i]
    return self.world.scene(i, self.image_size, self.num_objects)["image"]

  def query_instances(self, split: loc.LocalizationSplit, record: loc.ImageRecord, label: int,
                      draw: int = 0) -> list[tuple[int, int]]:
    """(world instance, sketch number) of each query sketch: k distinct instances of the split's range."""
    pool = self.instance_ranges[split.sketch_part]
    k = self.num_query_sketches
    inst = loc.sketch_rule(len(pool), k, self.seed, record.image_id, label, draw)
    num = loc.sketch_rule(self.sketches_per_instance, k, self.seed + _SKETCH_WORD, record.image_id, label, draw)
    return [(pool[int(i)], int(n)) for i, n in zip(inst, num)]

  def query_sketches(self, split: loc.LocalizationSplit, record: loc.ImageRecord, label: int,
                     draw: int) -> list[tuple[str, Sketch]]:
    out = []
    for inst, n in self.query_instances(split, record, label, draw):
      key = f"synth/{self.categories[label].replace(' ', '_')}/{inst:05d}/sketch{n}"
      out.append((key, self.world.load_sketch(SketchItem(key, label))))
    return out

  def render_query(self, key: str, sketch: Sketch) -> np.ndarray:
    if key in self._sketch_images:
      return self._sketch_images[key]
    img = super().render_query(key, sketch)
    if self._keep:
      self._sketch_images[key] = img
    return img

  @property
  def dropped(self) -> dict[str, int]:
    return {k: v for k, v in self._dropped.items() if v}
