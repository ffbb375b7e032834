"""Composed (sketch + text) retrieval data: a query is a sketch plus words that name what it cannot show.

Two kinds of source (`ComposedSource.kind`):
- 'scene' (CSTBIR): the target is a scene image; the query sketches ONE object in it and the text is the
  scene caption with that object's words replaced by PLACEHOLDER ("a * and a plain blue cup on a grassy field").
- 'instance' (the sketch+text duet, fine-grained): the target is the sketch's own photo; the text names its
  colour / texture / place ("red striped * on a sandy beach").
Synthetic sources are generated here; the real readers (CSTBIR, FS-COCO, QMUL duet) are in composed_real.py.
Errors follow sgvu.data.base: a bad sample raises BadSample naming its key / file.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import itertools
import zlib
from typing import Any, Sequence

import numpy as np

from sgvu.data import base, images, sketch_files
from sgvu.data.synth import background, caption as caption_lib, catalog, palette, photo
from sgvu.data.synth.geometry import bounds
from sgvu.data.synth.instance import CANVAS, make_instance, placed
from sgvu.data.synth.sketch import draw_sketch
from sgvu.data.synth.world import SynthSketch

PLACEHOLDER = "*"  # the slot in a query text where the sketch goes


@dataclasses.dataclass(frozen=True)
class ComposedQuery:
  key: str  # unique id (a file path or path:line for real data)
  sketch: str  # key / path of the query sketch (source.load_sketch(query) decodes it)
  text: str  # query words; contains PLACEHOLDER exactly once
  target: int  # index into the split's `images` of the image this query must find
  label: int  # category of the sketched object, index into source.categories
  box: tuple[float, float, float, float] | None = None  # sketched object in the target, (x0, y0, x1, y1) fractions


@dataclasses.dataclass(frozen=True)
class ComposedSplit:
  name: str
  categories: tuple[str, ...]  # sketched-object categories present in this split
  images: tuple[str, ...]  # gallery image keys
  image_labels: tuple[int, ...]  # per image: its category (instance kind) or -1 (scene kind)
  queries: tuple[ComposedQuery, ...]


class ComposedSource(abc.ABC):
  """A composed-retrieval dataset: per split a gallery of images and (sketch, text) queries."""

  name: str
  kind: str  # 'scene' | 'instance'
  categories: tuple[str, ...]
  split_names: tuple[str, ...]

  @abc.abstractmethod
  def split(self, name: str) -> ComposedSplit:
    """The index of one split; an unknown name raises KeyError naming the valid ones."""

  @abc.abstractmethod
  def load_image(self, split: str, index: int, size: int | None = None) -> np.ndarray:
    """uint8 [H, W, 3] of images[index]: synthetic sources render size x size, files return native size."""

  @abc.abstractmethod
  def load_sketch(self, query: ComposedQuery) -> base.Sketch:
    """The query's sketch; raises BadSample for an empty or corrupt one."""

  @property
  def skipped(self) -> Sequence[tuple[str, str]]:
    """(key, reason) of everything dropped while building the index."""
    return ()

  def _check_split(self, name: str) -> None:
    if name not in self.split_names:
      raise KeyError(f"unknown split {name!r} of {self.name}; valid: {list(self.split_names)}")


def render_query_sketch(source: ComposedSource, query: ComposedQuery, size: int) -> np.ndarray:
  """uint8 [size, size, 3], white paper and dark ink, as pipeline.render_sketch draws a sketch."""
  return sketch_files.render(source.load_sketch(query), size, key=query.sketch)


def load_image_square(source: ComposedSource, split: str, index: int, size: int) -> np.ndarray:
  """uint8 [size, size, 3]: the gallery image padded to square with white and resized."""
  img = np.asarray(source.load_image(split, index, size=size))
  if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
    key = source.split(split).images[index]
    raise base.BadSample(key, f"image must be uint8 [H, W, 3], got {img.dtype} {img.shape}")
  return images.to_square(img, size)


def _index_of(source: ComposedSource, split: str, index: int) -> str:
  """The key of images[index]; raises BadSample for an index outside the gallery."""
  keys = source.split(split).images
  if not 0 <= int(index) < len(keys):
    raise base.BadSample(f"{source.name}/{split}[{index}]", f"image index outside the gallery of {len(keys)}")
  return keys[int(index)]


# ---------------------------------------------------------------------------- synthetic scenes (CSTBIR analogue)

_WORD = 7_100_003  # stream word of these scenes: apart from scene.py's (7_000_001) and the photo instances
_SPLIT_WORDS = {"train": 1, "test1k": 2, "test5k": 3, "open": 4, "val": 5}
_PLAN, _PLACE, _BACKGROUND, _NOISE, _SKETCH, _SUBSET = range(6)
_PREFIX = "synth_composed"
# Placement: big objects (seen at 48 px) rarely fit 3 to a canvas, so each failed try shrinks the object a little.
_TRIES, _SHRINK, _MAX_OVERLAP = 40, 0.97, 0.1


@dataclasses.dataclass(frozen=True, eq=False)
class _Scene:
  place: str
  objects: tuple  # (instance, cx, cy, unit) in painting order: farther (higher) objects first
  boxes: np.ndarray  # float32 [K, 4] canvas pixels, same order
  sketched: int  # position of the sketched object in `objects`


class SynthComposedScenes(ComposedSource):
  """Scenes of 2-3 SynthSketch objects; each query sketches one object, its text is the rest of the caption.

  Deterministic from (seed, split, index); splits are independent streams, so resizing one changes no other.
  'train' / 'val' / 'test1k' / 'test5k' use only seen categories; 'open' sketches an unseen one (others: any
  category). 'val' (new scenes of seen categories, its own stream) is where hyperparameters are chosen.
  test5k / open query a subset of their gallery (num_test_5k_queries / num_open_queries; default 4/5 and 3/4,
  as CSTBIR's 4K of 5K and 750 of 1K).
  A split is indexed on first use: its scene layouts are built (~6 ms a scene on one core) but not painted.
  cache_size: scene layouts (~40 KB each) and query sketches kept per process.
  """

  name = "synth_scenes"
  kind = "scene"
  split_names = ("train", "val", "test1k", "test5k", "open")

  def __init__(self, seed: int = 0, categories: Sequence[str] | None = None, num_train: int = 5000,
               num_test_1k: int = 1000, num_test_5k: int = 5000, num_open: int = 1000, num_val: int = 1000,
               num_test_5k_queries: int | None = None, num_open_queries: int | None = None,
               num_objects: tuple[int, int] = (2, 3), object_scale: tuple[float, float] = (0.28, 0.4),
               cache_size: int = 2048):
    cats = tuple(categories) if categories is not None else catalog.ALL_CATEGORIES
    for c in cats:
      catalog.get(c)  # raises naming the valid ones
    if not cats or len(set(cats)) != len(cats):
      raise base.DataError(f"{self.name}: categories must be non-empty and unique, got {cats}")
    if len(num_objects) != 2 or not 1 <= num_objects[0] <= num_objects[1] <= 3:
      # More than 3 objects overflows the 24-token caption budget.
      raise base.DataError(f"{self.name}: num_objects must be (min, max) with 1 <= min <= max <= 3, got {num_objects}")
    if len(object_scale) != 2 or not 0.05 <= object_scale[0] <= object_scale[1] <= 0.45:
      raise base.DataError(f"{self.name}: object_scale must be (min, max) in [0.05, 0.45], got {object_scale}")
    self.seed, self.categories = int(seed), cats
    self.seen = tuple(c for c in cats if c in catalog.SEEN_CATEGORIES)
    self.unseen = tuple(c for c in cats if c in catalog.UNSEEN_CATEGORIES)
    self.num_objects, self.object_scale = tuple(num_objects), tuple(object_scale)
    self.counts = {"train": num_train, "test1k": num_test_1k, "test5k": num_test_5k, "open": num_open,
                   "val": num_val}
    self.num_queries = dict(self.counts, test5k=_fraction(num_test_5k_queries, num_test_5k, 0.8),
                            open=_fraction(num_open_queries, num_open, 0.75))
    for s, n in self.counts.items():
      if n < 0 or not 0 <= self.num_queries[s] <= n:
        raise base.DataError(f"{self.name}: split {s!r} needs 0 <= queries <= images, got "
                             f"{self.num_queries[s]} queries of {n}")
    if not self.seen and num_train + num_test_1k + num_test_5k + num_val > 0:
      raise base.DataError(f"{self.name}: train / test splits need seen categories; none in {cats}")
    if not self.unseen and num_open > 0:
      raise base.DataError(f"{self.name}: the open split needs unseen categories ({catalog.UNSEEN_CATEGORIES}); "
                           f"none in {cats} (or pass num_open=0)")
    self.cache_size = cache_size
    self._splits: dict[str, ComposedSplit] = {}
    self._init_caches()

  # -- pickling (grain workers): caches are rebuilt, not shipped.
  def __getstate__(self):
    state = dict(self.__dict__)
    state.pop("_scene", None)
    state.pop("_sketch", None)
    return state

  def __setstate__(self, state):
    self.__dict__.update(state)
    self._init_caches()

  def _init_caches(self) -> None:
    self._scene = functools.lru_cache(maxsize=self.cache_size)(self._make_scene)
    self._sketch = functools.lru_cache(maxsize=self.cache_size)(self._make_sketch)

  def _rng(self, split: str, *words: int) -> np.random.Generator:
    return np.random.default_rng([self.seed, _WORD, _SPLIT_WORDS[split], *words])

  def _make_scene(self, split: str, index: int) -> _Scene:
    rng = self._rng(split, index, _PLAN)
    place = list(palette.PLACES)[int(rng.integers(len(palette.PLACES)))]
    n = int(rng.integers(self.num_objects[0], self.num_objects[1] + 1))
    pool = self.unseen if split == "open" else self.seen
    sketched = int(rng.integers(n))  # random placement turn: later objects shrink to fit, so not always the first
    query_cat = pool[int(rng.integers(len(pool)))]
    others = [c for c in (self.categories if split == "open" else self.seen) if c != query_cat] or [query_cat]
    cats = [query_cat if j == sketched else others[int(rng.integers(len(others)))] for j in range(n)]
    rng = self._rng(split, index, _PLACE)
    objects, taken = [], []
    for j, cat in enumerate(cats):
      inst = make_instance(catalog.get(cat), (self.seed, catalog.category_seed(cat), _WORD, _SPLIT_WORDS[split],
                                              index, j), place=place)
      best = None
      for attempt in range(_TRIES):  # rejection-sample a spot that barely overlaps the others, shrinking to fit
        unit = float(rng.uniform(*self.object_scale)) * CANVAS * _SHRINK ** attempt
        b = bounds(inst.parts) * unit
        cx = rng.uniform(-b[0] + 2, CANVAS - 2 - b[2])
        cy = rng.uniform(-b[1] + 2, CANVAS - 2 - b[3])
        box = np.array([b[0] + cx, b[1] + cy, b[2] + cx, b[3] + cy], np.float32)
        worst = max([_overlap(box, t) for t in taken], default=0.0)
        if best is None or worst < best[0]:
          best = (worst, (inst, float(cx), float(cy), unit, box, j))
        if worst < _MAX_OVERLAP:
          break
      taken.append(best[1][4])
      objects.append(best[1])
    objects.sort(key=lambda o: o[4][3])  # nearer (lower) objects are painted last, over farther ones
    return _Scene(place, tuple(o[:4] for o in objects), np.stack([o[4] for o in objects]),
                  [o[5] for o in objects].index(sketched))

  def _make_sketch(self, split: str, index: int) -> tuple[np.ndarray, ...]:
    scene = self._scene(split, index)
    return tuple(draw_sketch(scene.objects[scene.sketched][0].parts, self._rng(split, index, _SKETCH)))

  def _count(self, split: str, index: int) -> None:
    self._check_split(split)
    if not 0 <= int(index) < self.counts[split]:
      raise base.BadSample(f"{_PREFIX}/{split}/{index}", f"scene index outside the {self.counts[split]} of {split!r}")

  def scene(self, split: str, index: int) -> dict[str, Any]:
    """dict(caption, text (the query's), place, sketched (its object's row), and per object in painting order:
    labels int32 [K], boxes float32 [K, 4] (x0, y0, x1, y1 fractions), attributes [{category, colour, texture}])."""
    self._count(split, index)
    scene = self._scene(split, int(index))
    phrases = [caption_lib.object_phrase(o[0], with_parts=False) for o in scene.objects]
    place = palette.PLACES[scene.place]
    query = list(phrases)
    query[scene.sketched] = f"a {PLACEHOLDER}"  # the article is always 'a': the sketch hides the category
    return dict(caption=" and ".join(phrases) + " " + place, text=" and ".join(query) + " " + place,
                place=scene.place, sketched=scene.sketched,
                attributes=[dict(category=o[0].category, colour=o[0].colour, texture=o[0].texture)
                            for o in scene.objects],
                labels=np.array([self.categories.index(o[0].category) for o in scene.objects], np.int32),
                boxes=np.clip(scene.boxes / CANVAS, 0.0, 1.0).astype(np.float32))

  def split(self, name: str) -> ComposedSplit:
    self._check_split(name)
    if name not in self._splits:
      self._splits[name] = self._make_split(name)
    return self._splits[name]

  def _make_split(self, name: str) -> ComposedSplit:
    n, nq = self.counts[name], self.num_queries[name]
    chosen = range(n) if nq == n else sorted(self._rng(name, _SUBSET).permutation(n)[:nq].tolist())
    queries = []
    for i in chosen:
      info = self.scene(name, i)
      k = info["sketched"]
      queries.append(ComposedQuery(key=f"{_PREFIX}/{name}/{i:05d}", sketch=f"{_PREFIX}/{name}/{i:05d}/sketch",
                                   text=info["text"], target=i, label=int(info["labels"][k]),
                                   box=tuple(float(v) for v in info["boxes"][k])))
    labels = {q.label for q in queries}
    return ComposedSplit(name, tuple(c for i, c in enumerate(self.categories) if i in labels),
                         tuple(f"{_PREFIX}/{name}/{i:05d}" for i in range(n)), (-1,) * n, tuple(queries))

  def load_image(self, split: str, index: int, size: int | None = None) -> np.ndarray:
    size = 224 if size is None else int(size)
    self._count(split, index)
    if size < 8:
      raise base.BadSample(f"{_PREFIX}/{split}/{index:05d}", f"image size {size} is too small (>= 8)")
    scene = self._scene(split, int(index))
    img = background.background(scene.place, size, self._rng(split, index, _BACKGROUND))
    for inst, cx, cy, unit in scene.objects:
      photo.paint_object(img, placed(inst.parts, cx, cy, unit), inst.look, unit, size / CANVAS)
    return photo.finish(img, self._rng(split, index, _NOISE, size))

  def load_sketch(self, query: ComposedQuery) -> base.Sketch:
    parts = query.sketch.split("/")
    try:
      if len(parts) != 4 or parts[0] != _PREFIX or parts[3] != "sketch" or parts[1] not in _SPLIT_WORDS:
        raise ValueError
      split, index = parts[1], int(parts[2])
    except ValueError:
      raise base.BadSample(query.sketch, f"not a {self.name} sketch key ({_PREFIX}/<split>/<index>/sketch)") from None
    self._count(split, index)
    return base.Sketch(strokes=[s.copy() for s in self._sketch(split, index)])


def _fraction(explicit: int | None, n: int, fraction: float) -> int:
  return int(round(fraction * n)) if explicit is None else int(explicit)


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
  """Intersection over the smaller box's area."""
  iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
  ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
  small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
  return float(iw * ih / max(small, 1e-6))


# ---------------------------------------------------------------------------- synthetic instances (duet analogue)

WORDS = ("colour", "texture", "place")
_TEXT_WORD = 7_100_011


class SynthComposedInstances(ComposedSource):
  """Fine-grained composed queries over SynthSketch's zero-shot split: train = seen, test = unseen categories.

  holdout_every > 0: validation instead (sgvu.data.holdout): every holdout_every-th seen category becomes
  'test' and the other seen categories 'train'; the unseen categories are never touched.

  One query per sketch; its target is the sketch's photo; its text names a random non-empty subset (>= min_words,
  fixed per query key) of `words` in SynthSketch caption order, the placeholder in the noun's place.
  `photo_source` is the wrapped SynthSketch (its loaders, captions and attributes).
  """

  name = "synth_instances"
  kind = "instance"
  split_names = ("train", "test")

  def __init__(self, seed: int = 0, categories: Sequence[str] | None = None, photos_per_category: int = 40,
               sketches_per_photo: int = 3, words: Sequence[str] = WORDS, min_words: int = 1,
               cache_size: int = 8192, holdout_every: int = 0):
    words = tuple(words)
    if not words or len(set(words)) != len(words) or any(w not in WORDS for w in words):
      raise base.DataError(f"{self.name}: words must be a non-empty subset of {WORDS}, got {words}")
    if not 1 <= min_words <= len(words):
      raise base.DataError(f"{self.name}: min_words must be in [1, {len(words)}], got {min_words}")
    self.photo_source = SynthSketch(seed, "zero_shot", categories, photos_per_category, sketches_per_photo,
                                    cache_size=cache_size)
    if holdout_every:
      from sgvu.data.holdout import Holdout  # pylint: disable=g-import-not-at-top
      self.photo_source = Holdout(self.photo_source, "categories", holdout_every)
    self.seed, self.categories = int(seed), self.photo_source.categories
    self.words, self.min_words = words, int(min_words)
    self._subsets = [s for r in range(min_words, len(words) + 1) for s in itertools.combinations(words, r)]
    self._splits: dict[str, ComposedSplit] = {}

  def text(self, key: str, attributes: dict[str, str]) -> str:
    """The query text of sketch `key` of a photo with `attributes` (SynthSketch.attributes)."""
    rng = np.random.default_rng([self.seed, _TEXT_WORD, zlib.crc32(key.encode())])
    chosen = self._subsets[int(rng.integers(len(self._subsets)))]
    look = [attributes["colour"]] * ("colour" in chosen)
    if "texture" in chosen:  # caption order: 'plain red' but 'red striped'
      look = [attributes["texture"]] + look if attributes["texture"] == "plain" else look + [attributes["texture"]]
    place = [palette.PLACES[attributes["place"]]] * ("place" in chosen)
    return " ".join(look + [PLACEHOLDER] + place)

  def split(self, name: str) -> ComposedSplit:
    self._check_split(name)
    if name not in self._splits:
      sp = self.photo_source.split(name)
      queries = tuple(ComposedQuery(key=s.key, sketch=s.key, text=self.text(s.key, self.photo_source.attributes(
          sp.photos[s.photo])), target=int(s.photo), label=s.label) for s in sp.sketches)
      self._splits[name] = ComposedSplit(name, sp.categories, tuple(p.key for p in sp.photos),
                                         tuple(p.label for p in sp.photos), queries)
    return self._splits[name]

  def load_image(self, split: str, index: int, size: int | None = None) -> np.ndarray:
    self._check_split(split)
    _index_of(self, split, index)
    return self.photo_source.load_photo(self.photo_source.split(split).photos[int(index)], size)

  def load_sketch(self, query: ComposedQuery) -> base.Sketch:
    return self.photo_source.load_sketch(base.SketchItem(query.sketch, query.label, query.target))
