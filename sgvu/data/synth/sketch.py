"""Human-like sketches traced from an instance's part geometry.

A person sketching a photo draws the big shapes first and the details last,
leaves small details out, simplifies curves, wobbles, over- or undershoots
where a stroke should close, and distorts proportions a little. Each of those
is simulated here with its own random draw, so sketches of one photo differ
from each other while keeping the shape details that identify the instance.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from sgvu.data import strokes as strokes_lib
from sgvu.data.synth.geometry import DETAIL, PART, Part, densify

_STEP = 0.02  # densification step in object units (an object spans ~2)
# Probability of leaving a part out, by level (outline parts always drawn).
_DROP = {PART: 0.08, DETAIL: 0.3}


def draw_sketch(parts: Sequence[Part], rng: np.random.Generator) -> list[np.ndarray]:
  """Strokes (float32 [n, 2], integer-valued, 256 canvas) in drawing order."""
  shaky = rng.uniform(0.008, 0.022)  # this "person's" hand wobble
  every = int(rng.integers(3, 6))  # how much they simplify curves
  affine = _random_affine(rng)
  warp = rng.uniform(0.0, 0.03), rng.uniform(1.0, 2.5), rng.uniform(0, 2 * math.pi, 2)

  order = sorted(range(len(parts)), key=lambda i: (parts[i].level, i + rng.normal(0.0, 1.5)))
  out = []
  for i in order:
    part = parts[i]
    if part.level in _DROP and rng.random() < _DROP[part.level]:
      continue
    pts = part.pts @ affine.T
    pts = pts + warp[0] * np.sin(pts[:, ::-1] * warp[1] + warp[2])
    for stroke in _part_strokes(pts, part.closed, rng):
      out.append(_human_line(stroke, shaky, every, rng))
  if not out:  # every part dropped: a sketch always shows the outline
    out = [_human_line(densify(p.pts, p.closed, _STEP), shaky, every, rng) for p in parts[:1]]
  margin = rng.uniform(10.0, 28.0)
  out = strokes_lib.normalize_to_canvas(out, margin)
  shift = rng.uniform(-(margin - 6), margin - 6, 2).astype(np.float32)
  return [np.clip(np.round(s + shift), 0, 255).astype(np.float32) for s in out]


def _random_affine(rng: np.random.Generator) -> np.ndarray:
  rot = rng.normal(0.0, 0.05)
  sx, sy = 1.0 + rng.normal(0.0, 0.06, 2)
  shear = rng.normal(0.0, 0.06)
  c, s = math.cos(rot), math.sin(rot)
  return np.array([[c, -s], [s, c]]) @ np.array([[sx, shear], [0.0, sy]])


def _part_strokes(pts: np.ndarray, closed: bool, rng: np.random.Generator) -> list[np.ndarray]:
  """One part as the 1-2 strokes a person would draw for it, with over/undershoot."""
  dense = densify(pts, closed, _STEP)
  n = len(dense)
  if closed and n > 3:
    ring = dense[:-1]
    ring = np.roll(ring, -int(rng.integers(len(ring))), axis=0)  # start anywhere
    m = len(ring)
    # Overshoot past the start (positive) or stop short of it (negative).
    end = m + int(round(rng.uniform(-0.06, 0.1) * m))
    loop = ring[np.arange(max(end, 2)) % m]
    if m * _STEP > 3.0 and rng.random() < 0.35:  # long outlines: often two strokes
      cut = int(rng.uniform(0.4, 0.6) * len(loop))
      return [loop[:cut + 1], loop[cut + int(rng.integers(0, 3)):]]
    return [loop]
  if n >= 2:
    if rng.random() < 0.4:
      dense = dense[::-1]
    trim = int(rng.uniform(0.0, 0.06) * n)
    dense = dense[trim:] if n - trim >= 2 else dense
    if rng.random() < 0.5:  # overshoot the end along its direction
      d = dense[-1] - dense[-2]
      d = d / (np.linalg.norm(d) + 1e-6)
      dense = np.concatenate([dense, dense[-1:] + d * rng.uniform(0.01, 0.06)], axis=0)
  return [dense]


def _human_line(dense: np.ndarray, shaky: float, every: int, rng: np.random.Generator) -> np.ndarray:
  """Wobbles a densified stroke smoothly and keeps corners plus every k-th point."""
  n = len(dense)
  if n <= 2:
    return (dense + rng.normal(0.0, shaky, dense.shape)).astype(np.float32)
  knots = max(2, int(n * _STEP / 0.25) + 2)
  t = np.linspace(0.0, 1.0, n)
  kt = np.linspace(0.0, 1.0, knots)
  noise = rng.normal(0.0, shaky, (knots, 2))
  smooth = np.stack([np.interp(t, kt, noise[:, 0]), np.interp(t, kt, noise[:, 1])], axis=1)
  wobbly = dense + smooth + rng.normal(0.0, shaky * 0.15, dense.shape)
  keep = np.zeros(n, bool)
  keep[::every] = True
  keep[[0, -1]] = True
  keep[1:-1] |= _turn_angles(dense) > math.radians(30)
  return wobbly[keep].astype(np.float32)


def _turn_angles(pts: np.ndarray) -> np.ndarray:
  d = np.diff(pts, axis=0)
  a = np.arctan2(d[:, 1], d[:, 0])
  turn = np.abs((np.diff(a) + math.pi) % (2 * math.pi) - math.pi)
  return turn
