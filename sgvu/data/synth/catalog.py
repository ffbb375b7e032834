"""Every SynthSketch category and the fixed zero-shot seen / unseen split."""

from __future__ import annotations

import zlib

# Importing the part-model modules registers their categories.
from sgvu.data.synth import cat_animals, cat_fun, cat_home, cat_nature, cat_objects, cat_vehicles, cat_wear  # noqa: F401
from sgvu.data.synth.model import REGISTRY, Category

ALL_CATEGORIES: tuple[str, ...] = tuple(sorted(REGISTRY))

# The standard zero-shot split: ~20% of the categories never seen in training.
# Chosen, like Sketchy's, to include names whose part vocabulary overlaps seen
# ones (door / window vs house, teapot vs cup) so transfer is possible but not trivial.
_UNSEEN_CANDIDATES = ("door", "guitar", "helicopter", "kite", "pear", "rabbit", "saw", "scissors", "snail", "sword",
                      "teapot", "tree", "umbrella", "windmill", "window")
UNSEEN_CATEGORIES: tuple[str, ...] = tuple(c for c in ALL_CATEGORIES if c in _UNSEEN_CANDIDATES)
SEEN_CATEGORIES: tuple[str, ...] = tuple(c for c in ALL_CATEGORIES if c not in _UNSEEN_CANDIDATES)


def get(name: str) -> Category:
  if name not in REGISTRY:
    raise KeyError(f"unknown SynthSketch category {name!r}; valid: {', '.join(ALL_CATEGORIES)}")
  return REGISTRY[name]


def category_seed(name: str) -> int:
  """Stable per-category seed word: instances do not depend on which categories are chosen."""
  return zlib.crc32(name.encode())
