"""Named appearance attributes: colours, textures, places, neighbouring objects.

Everything here is what a sketch cannot show; captions name it, photos show it.
"""

from __future__ import annotations

import numpy as np

# Instance colours (caption word -> base RGB; each instance jitters it a little).
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (200, 35, 40),
    "orange": (235, 125, 30),
    "yellow": (240, 205, 45),
    "green": (60, 150, 60),
    "blue": (45, 90, 200),
    "purple": (120, 60, 165),
    "pink": (235, 130, 175),
    "brown": (125, 80, 45),
    "black": (35, 35, 40),
    "white": (238, 238, 235),
    "grey": (140, 140, 145),
}

# Fixed colour roles parts may use besides 'body' (instance colour + texture)
# and 'accent' (the instance's second colour).
ROLES: dict[str, tuple[int, int, int]] = {
    "dark": (40, 38, 42),
    "light": (230, 230, 228),
    "metal": (170, 172, 178),
    "wood": (150, 100, 60),
    "trunk": (105, 70, 40),
    "leaf": (50, 135, 55),
    "glass": (175, 210, 235),
    "flame": (250, 170, 40),
    "skin": (235, 195, 160),
    "gold": (215, 175, 55),
    "white": (245, 245, 245),
    "red": (205, 40, 40),
}

TEXTURES: tuple[str, ...] = ("plain", "striped", "dotted", "checked")

# Place -> caption phrase. Backgrounds are drawn by `sgvu.data.synth.photo`.
PLACES: dict[str, str] = {
    "field": "on a grassy field",
    "beach": "on a sandy beach",
    "table": "on a wooden table",
    "street": "on a city street",
    "snow": "in the snow",
    "forest": "in a forest",
    "room": "in a living room",
    "sky": "under a blue sky",
}

# Small objects drawn next to the main one ("next to a ball"); None: nothing.
NEIGHBOURS: tuple[str, ...] = ("ball", "box", "stone", "flower", "cone", "plant")
NO_NEIGHBOUR_PROB = 0.2


def jitter_colour(rgb, rng: np.random.Generator, amount: float = 14.0) -> tuple[int, int, int]:
  out = np.clip(np.asarray(rgb, float) + rng.normal(0.0, amount, 3), 0, 255)
  return tuple(int(v) for v in out)


def shade(rgb, factor: float) -> tuple[int, int, int]:
  """Darker (factor < 1) or lighter (> 1) version of a colour."""
  if factor <= 1:
    return tuple(int(min(255, max(0, v * factor))) for v in rgb)
  return tuple(int(min(255, v + (255 - v) * (factor - 1))) for v in rgb)


def mix(a, b, t: float) -> tuple[int, int, int]:
  return tuple(int(round((1 - t) * x + t * y)) for x, y in zip(a, b))
