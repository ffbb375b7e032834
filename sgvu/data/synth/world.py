"""SynthSketch: the embedded procedural sketch/photo world as a `Source`."""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from sgvu.data import base
from sgvu.data.synth import caption as caption_lib
from sgvu.data.synth import catalog, palette, scene as scene_lib
from sgvu.data.synth.catalog import category_seed
from sgvu.data.synth.instance import Instance, make_instance, render_photo
from sgvu.data.synth.sketch import draw_sketch

PROTOCOLS = ("zero_shot", "instance")
_PREFIX = "synth"
_SKETCH_STREAM = 101


class SynthSketch(base.Source):
  """Deterministic categories x instances x sketches, rendered on demand.

  protocol 'zero_shot': train = the chosen SEEN categories, test = the chosen
    UNSEEN ones (all `photos_per_category` instances each).
  protocol 'instance': every chosen category in both splits, with disjoint
    photo instances (the last `test_fraction` of each category's instances).
  cache_size: instances (geometry) and sketches (strokes) kept per process,
    ~13 KB per instance with one sketch; later epochs then only rasterise.
  """

  name = "synthsketch"

  def __init__(self, seed: int = 0, protocol: str = "zero_shot", categories: Sequence[str] | None = None,
               photos_per_category: int = 40, sketches_per_photo: int = 3, test_fraction: float = 0.2,
               cache_size: int = 8192):
    if protocol not in PROTOCOLS:
      raise ValueError(f"unknown SynthSketch protocol {protocol!r}; valid: {PROTOCOLS}")
    cats = tuple(categories) if categories is not None else catalog.ALL_CATEGORIES
    for c in cats:
      catalog.get(c)  # raises naming the valid ones
    if len(set(cats)) != len(cats) or not cats:
      raise ValueError(f"categories must be non-empty and unique, got {cats}")
    if photos_per_category < 1 or sketches_per_photo < 1:
      raise ValueError(f"photos_per_category ({photos_per_category}) and sketches_per_photo "
                       f"({sketches_per_photo}) must be >= 1")
    self.seed, self.protocol, self.categories = int(seed), protocol, cats
    self.photos_per_category, self.sketches_per_photo = photos_per_category, sketches_per_photo
    self.test_fraction, self.cache_size = test_fraction, cache_size
    if protocol == "zero_shot":
      seen = tuple(c for c in cats if c in catalog.SEEN_CATEGORIES)
      unseen = tuple(c for c in cats if c in catalog.UNSEEN_CATEGORIES)
      if not seen or not unseen:
        raise ValueError(f"protocol 'zero_shot' needs seen and unseen categories; got seen={seen}, unseen={unseen} "
                         f"(unseen are {catalog.UNSEEN_CATEGORIES})")
      ranges = {"train": (seen, range(photos_per_category)), "test": (unseen, range(photos_per_category))}
    else:
      n_test = int(round(test_fraction * photos_per_category))
      if not 1 <= n_test < photos_per_category:
        raise ValueError(f"test_fraction={test_fraction} of photos_per_category={photos_per_category} leaves "
                         f"{n_test} test photos; both splits need at least one")
      n_train = photos_per_category - n_test
      ranges = {"train": (cats, range(n_train)), "test": (cats, range(n_train, photos_per_category))}
    self._splits = {name: self._make_split(name, *r) for name, r in ranges.items()}
    self._init_caches()

  # -- pickling (grain workers): caches are rebuilt, not shipped.
  def __getstate__(self):
    state = dict(self.__dict__)
    state.pop("_instance", None)
    state.pop("_sketch", None)
    return state

  def __setstate__(self, state):
    self.__dict__.update(state)
    self._init_caches()

  def _init_caches(self) -> None:
    self._instance = functools.lru_cache(maxsize=self.cache_size)(self._make_instance)
    self._sketch = functools.lru_cache(maxsize=self.cache_size)(self._make_sketch)

  def _make_split(self, name: str, cats: Sequence[str], instances: range) -> base.Split:
    photos, sketches = [], []
    for c in cats:
      label = self.categories.index(c)
      for i in instances:
        key = f"{_PREFIX}/{c.replace(' ', '_')}/{i:05d}"
        for k in range(self.sketches_per_photo):
          sketches.append(base.SketchItem(f"{key}/sketch{k}", label, len(photos)))
        photos.append(base.PhotoItem(key, label))
    return base.Split(name, tuple(cats), tuple(photos), tuple(sketches))

  def split(self, name: str) -> base.Split:
    if name not in self._splits:
      raise KeyError(f"unknown split {name!r} of SynthSketch; valid: {sorted(self._splits)}")
    return self._splits[name]

  # -- instances
  def _make_instance(self, category: str, index: int) -> Instance:
    return make_instance(catalog.get(category), (self.seed, category_seed(category), index))

  def _make_sketch(self, category: str, index: int, k: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng([self.seed, category_seed(category), index, _SKETCH_STREAM, k])
    return tuple(draw_sketch(self._instance(category, index).parts, rng))

  def instance(self, item: base.PhotoItem | base.SketchItem) -> Instance:
    category, index, _ = parse_key(item.key)
    return self._instance(category, index)

  def load_photo(self, item: base.PhotoItem, size: int | None = None) -> np.ndarray:
    size = 224 if size is None else int(size)
    if size < 8:
      raise base.BadSample(item.key, f"photo size {size} is too small (>= 8)")
    return render_photo(self.instance(item), size)

  def load_sketch(self, item: base.SketchItem) -> base.Sketch:
    category, index, k = parse_key(item.key)
    if k is None:
      raise base.BadSample(item.key, "not a sketch key (expected .../sketch<k>)")
    return base.Sketch(strokes=[s.copy() for s in self._sketch(category, index, k)])

  def caption(self, item: base.PhotoItem | base.SketchItem, rng: np.random.Generator | None = None,
              keep: float = 1.0) -> str:
    if rng is None or keep >= 1.0:
      return caption_lib.caption(self.instance(item))
    return caption_lib.partial_caption(self.instance(item), rng, keep)

  def attributes(self, item: base.PhotoItem | base.SketchItem) -> dict[str, str]:
    inst = self.instance(item)
    return {"colour": inst.colour, "texture": inst.texture, "place": inst.place}

  @staticmethod
  def attribute_prompts(category: str) -> dict[str, dict[str, str]]:
    """Attribute -> {value: a partial caption naming only it}, e.g. colour: {'red': 'a red shoe'}."""
    def a(words: str) -> str:
      return f"{caption_lib.article(words)} {words}"
    return {"colour": {c: a(f"{c} {category}") for c in palette.COLOURS},
            "texture": {t: a(f"{t} {category}") for t in palette.TEXTURES},
            "place": {p: f"{a(category)} {phrase}" for p, phrase in palette.PLACES.items()}}

  @staticmethod
  def vocabulary() -> list[str]:
    return caption_lib.vocabulary()

  def scene(self, index: int, size: int = 256, num_objects: tuple[int, int] = (2, 5)) -> dict:
    """A scene of several of this world's categories: image, boxes, labels, attributes, caption."""
    return scene_lib.render_scene(self.seed, self.categories, index, size, num_objects)


def parse_key(key: str) -> tuple[str, int, int | None]:
  """'synth/<category>/<instance>[/sketch<k>]' -> (category, instance, k or None)."""
  parts = key.split("/")
  try:
    if parts[0] != _PREFIX or len(parts) not in (3, 4):
      raise ValueError
    category, index = parts[1].replace("_", " "), int(parts[2])
    k = int(parts[3][len("sketch"):]) if len(parts) == 4 and parts[3].startswith("sketch") else None
    if len(parts) == 4 and k is None:
      raise ValueError
  except ValueError:
    raise base.BadSample(key, "not a SynthSketch key (expected synth/<category>/<instance>[/sketch<k>])") from None
  if category not in catalog.ALL_CATEGORIES:
    raise base.BadSample(key, f"unknown SynthSketch category {category!r}")
  return category, index, k
