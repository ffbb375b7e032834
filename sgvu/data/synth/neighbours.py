"""The small named objects that stand next to a photo's main object."""

from __future__ import annotations

import numpy as np

from sgvu.data.synth import palette
from sgvu.data.synth.geometry import (DETAIL, PART, Part, bezier, ellipse, line, poly, rect, rrect,
                                      shape, wave)
from sgvu.data.synth.photo import Look


def neighbour(name: str, rng: np.random.Generator) -> tuple[list[Part], Look]:
  """Part geometry (object space, ~[-1, 1]) and look of neighbour `name`."""
  if name not in _BUILDERS:
    raise KeyError(f"unknown neighbour {name!r}; valid: {sorted(_BUILDERS)}")
  colours = list(palette.COLOURS.values())
  rgb = palette.jitter_colour(colours[int(rng.integers(len(colours)))], rng)
  rgb2 = palette.jitter_colour(colours[int(rng.integers(len(colours)))], rng)
  parts, fixed = _BUILDERS[name](rng)
  if fixed is not None:
    rgb = palette.jitter_colour(fixed, rng)
  return parts, Look(rgb=rgb, rgb2=rgb2, light=float(rng.uniform(-2.8, -1.8)))


def _ball(rng):
  return [shape(ellipse(0, 0, 1, 1, 32)),
          Part(bezier((-0.95, -0.2), (0, 0.35), (0.95, -0.2)), False, None, "accent", PART, 12)], None


def _box(rng):
  d = rng.uniform(0.2, 0.4)
  return [shape(rect(-0.9, -0.5, 0.6, 0.9)),
          shape(poly((-0.9, -0.5), (-0.9 + d, -0.5 - d), (0.6 + d, -0.5 - d), (0.6, -0.5)), "accent", PART),
          shape(poly((0.6, -0.5), (0.6 + d, -0.5 - d), (0.6 + d, 0.9 - d), (0.6, 0.9)), "dark", PART)], (170, 125, 75)


def _stone(rng):
  t = np.linspace(0, 2 * np.pi, 14, endpoint=False)
  r = 1 + rng.uniform(-0.15, 0.15, len(t))
  pts = np.stack([np.cos(t) * r, 0.2 + np.sin(t) * r * 0.65], axis=1)
  return [shape(pts)], (130, 128, 122)


def _flower(rng):
  parts = [line(poly((0, 0.2), (0, 1.0)), "leaf", PART, width=10),
           shape(ellipse(0.25, 0.65, 0.25, 0.1, 12, rot=-0.5), "leaf", DETAIL)]
  for k in range(6):
    a = k * np.pi / 3
    parts.append(shape(ellipse(0.3 * np.cos(a), -0.3 + 0.3 * np.sin(a), 0.26, 0.15, 12, rot=a)))
  parts.append(shape(ellipse(0, -0.3, 0.17, 0.17, 12), "gold", PART))
  return parts, None


def _cone(rng):
  return [shape(rrect(-0.8, 0.75, 0.8, 0.95, 0.05), "dark"),
          shape(poly((-0.12, -0.95), (0.12, -0.95), (0.55, 0.75), (-0.55, 0.75))),
          shape(poly((-0.27, -0.2), (0.27, -0.2), (0.35, 0.15), (-0.35, 0.15)), "white", PART)], (240, 110, 30)


def _plant(rng):
  parts = [shape(poly((-0.5, 0.2), (0.5, 0.2), (0.38, 1.0), (-0.38, 1.0)), "accent")]
  for k in range(5):
    a = -2.6 + k * 0.5
    tip = (0.9 * np.cos(a), 0.2 + 1.0 * np.sin(a))
    parts.append(shape(np.concatenate([bezier((0, 0.2), (tip[0] * 0.3 - 0.2, tip[1] * 0.6), tip, n=8),
                                       bezier(tip, (tip[0] * 0.6 + 0.2, tip[1] * 0.4), (0, 0.2), n=8)[1:]]),
                       "leaf", PART))
  parts.append(line(wave(-0.4, 0.4, 0.35, 0.05, 2), "dark", DETAIL, width=4))
  return parts, None


_BUILDERS = {"ball": _ball, "box": _box, "stone": _stone, "flower": _flower, "cone": _cone, "plant": _plant}
assert set(_BUILDERS) == set(palette.NEIGHBOURS)
