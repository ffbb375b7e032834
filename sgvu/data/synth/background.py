"""Cluttered photo backgrounds, one recognisable look per place."""

from __future__ import annotations

from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from sgvu.data.synth import palette

Rgb = tuple[int, int, int]
# place -> (top colour, horizon-top colour, horizon-bottom colour, bottom colour, horizon fraction range)
_BANDS: dict[str, tuple[Rgb, Rgb, Rgb, Rgb, tuple[float, float]]] = {
    "field": ((120, 170, 225), (200, 225, 240), (110, 170, 70), (60, 120, 40), (0.25, 0.45)),
    "beach": ((110, 165, 225), (195, 220, 240), (230, 210, 160), (210, 185, 130), (0.3, 0.45)),
    "table": ((215, 205, 190), (195, 185, 170), (165, 115, 70), (120, 80, 45), (0.15, 0.35)),
    "street": ((150, 175, 200), (200, 205, 210), (120, 120, 125), (85, 85, 90), (0.35, 0.5)),
    "snow": ((175, 195, 215), (225, 232, 240), (240, 243, 248), (215, 222, 235), (0.25, 0.45)),
    "forest": ((70, 110, 70), (100, 140, 90), (85, 110, 55), (55, 75, 35), (0.45, 0.6)),
    "room": ((225, 210, 185), (210, 195, 170), (160, 120, 85), (125, 90, 60), (0.55, 0.7)),
    "sky": ((60, 120, 210), (110, 165, 230), (150, 195, 240), (185, 215, 245), (0.5, 0.5)),
}


def background(place: str, size: int, rng: np.random.Generator) -> Image.Image:
  """A size x size RGB background for `place` (see palette.PLACES)."""
  if place not in _BANDS:
    raise KeyError(f"unknown place {place!r}; valid: {sorted(_BANDS)}")
  top, h_top, h_bot, bottom, (lo, hi) = _BANDS[place]
  horizon = rng.uniform(lo, hi)
  # Gradient + low-frequency blotches computed on a small grid and upsampled:
  # smooth by nature, and most of the cost otherwise.
  n = min(size, 96)
  y = (np.arange(n, dtype=np.float32)[:, None] + 0.5) / n
  above = np.clip(y / max(horizon, 1e-3), 0, 1)
  below = np.clip((y - horizon) / max(1 - horizon, 1e-3), 0, 1)
  sky = (1 - above) * np.array(top, np.float32) + above * np.array(h_top, np.float32)
  ground = (1 - below) * np.array(h_bot, np.float32) + below * np.array(bottom, np.float32)
  rows = np.where(y < horizon, sky, ground)  # [n, 3]
  blot = rng.normal(0.0, 10.0, (6, 6, 3)).astype(np.float32)
  blot = np.asarray(Image.fromarray((blot + 128).clip(0, 255).astype(np.uint8)).resize(
      (n, n), Image.Resampling.BILINEAR), np.float32) - 128
  arr = np.clip(rows[:, None, :] + blot, 0, 255).astype(np.uint8)
  img = Image.fromarray(arr).resize((size, size), Image.Resampling.BILINEAR)
  draw = ImageDraw.Draw(img, "RGBA")
  _CLUTTER[place](draw, size, horizon * size, rng)
  _distractor_shapes(draw, size, rng)
  return img


def _distractor_shapes(draw: ImageDraw.ImageDraw, hi: int, rng: np.random.Generator) -> None:
  """Unnamed, half-transparent random shapes: clutter a model must ignore."""
  for _ in range(int(rng.integers(2, 6))):
    col = tuple(int(v) for v in rng.integers(30, 230, 3)) + (int(rng.integers(50, 130)),)
    x, y = rng.uniform(0, hi, 2)
    r = rng.uniform(0.03, 0.12) * hi
    kind = rng.integers(4)
    if kind == 0:
      draw.ellipse((x - r, y - r * rng.uniform(0.5, 1), x + r, y + r), fill=col)
    elif kind == 1:
      draw.rectangle((x - r, y - r * 0.6, x + r, y + r * 0.6), fill=col)
    elif kind == 2:
      draw.polygon([(x, y - r), (x + r, y + r), (x - r, y + r)], fill=col)
    else:
      x2, y2 = rng.uniform(0, hi, 2)
      draw.line([(x, y), (x2, y2)], fill=col, width=max(1, int(hi * 0.01)))


def _blades(draw, hi, horizon, rng, colours, n, length):
  for _ in range(n):
    x, y = rng.uniform(0, hi), rng.uniform(horizon, hi)
    col = colours[int(rng.integers(len(colours)))]
    ln = length * hi * (0.5 + (y - horizon) / hi)
    draw.line([(x, y), (x + rng.normal(0, ln * 0.3), y - ln)], fill=col, width=max(1, hi // 160))


def _field(draw, hi, horizon, rng):
  _blades(draw, hi, horizon, rng, [(70, 130, 45, 200), (140, 190, 80, 200), (50, 100, 35, 200)], 70, 0.04)
  for _ in range(int(rng.integers(3, 9))):
    x, y, r = rng.uniform(0, hi), rng.uniform(horizon, hi), hi * 0.008
    draw.ellipse((x - r, y - r, x + r, y + r), fill=(250, 240, 90, 230))


def _beach(draw, hi, horizon, rng):
  sea = horizon + hi * rng.uniform(0.05, 0.12)
  draw.rectangle((0, horizon, hi, sea), fill=(60, 120, 180, 255))
  for i in range(3):
    y = horizon + (sea - horizon) * (i + 1) / 4
    draw.line([(0, y), (hi, y + rng.normal(0, 2))], fill=(200, 225, 245, 140), width=max(1, hi // 200))
  for _ in range(int(rng.integers(4, 10))):
    x, y, r = rng.uniform(0, hi), rng.uniform(sea, hi), hi * rng.uniform(0.006, 0.015)
    draw.ellipse((x - r, y - r * 0.7, x + r, y + r * 0.7), fill=(245, 235, 220, 230))


def _table(draw, hi, horizon, rng):
  for y in np.arange(horizon, hi, hi * rng.uniform(0.12, 0.2)):
    draw.line([(0, y), (hi, y)], fill=(90, 55, 30, 160), width=max(1, hi // 180))
  for _ in range(14):
    y = rng.uniform(horizon, hi)
    pts = [(x, y + 2 * np.sin(x / hi * 9 + y)) for x in np.linspace(0, hi, 12)]
    draw.line(pts, fill=(185, 135, 85, 90), width=max(1, hi // 256))


def _street(draw, hi, horizon, rng):
  x = -rng.uniform(0, hi * 0.1)
  while x < hi:
    w, h = hi * rng.uniform(0.12, 0.25), hi * rng.uniform(0.15, 0.4)
    g = int(rng.integers(90, 180))
    draw.rectangle((x, horizon - h, x + w, horizon), fill=(g, g - 10, g - 20, 255))
    for wy in np.arange(horizon - h + hi * 0.03, horizon - hi * 0.03, hi * 0.05):
      for wx in np.arange(x + hi * 0.02, x + w - hi * 0.03, hi * 0.05):
        draw.rectangle((wx, wy, wx + hi * 0.02, wy + hi * 0.025), fill=(230, 220, 150, 200))
    x += w + hi * rng.uniform(0.0, 0.05)
  mid = (horizon + hi) / 2
  for x in np.arange(rng.uniform(0, hi * 0.1), hi, hi * 0.15):
    draw.rectangle((x, mid - hi * 0.006, x + hi * 0.07, mid + hi * 0.006), fill=(235, 235, 235, 220))


def _snow(draw, hi, horizon, rng):
  pts = [(x, horizon - hi * 0.08 * abs(np.sin(x / hi * 4 + rng.uniform(0, 6)))) for x in np.linspace(0, hi, 16)]
  draw.polygon(pts + [(hi, horizon), (0, horizon)], fill=(170, 185, 205, 255))
  for _ in range(60):
    x, y, r = rng.uniform(0, hi), rng.uniform(0, hi), hi * rng.uniform(0.002, 0.006)
    draw.ellipse((x - r, y - r, x + r, y + r), fill=(255, 255, 255, 220))


def _forest(draw, hi, horizon, rng):
  for _ in range(int(rng.integers(5, 10))):
    x, w = rng.uniform(0, hi), hi * rng.uniform(0.03, 0.07)
    draw.rectangle((x, 0, x + w, horizon + hi * rng.uniform(0, 0.15)), fill=(80, 55, 35, 230))
  for _ in range(25):
    x, y, r = rng.uniform(0, hi), rng.uniform(0, horizon), hi * rng.uniform(0.03, 0.08)
    draw.ellipse((x - r, y - r, x + r, y + r), fill=(40, int(rng.integers(80, 130)), 40, 150))
  _blades(draw, hi, horizon, rng, [(40, 80, 30, 200), (90, 120, 50, 200)], 40, 0.03)


def _room(draw, hi, horizon, rng):
  x, y = rng.uniform(0.05, 0.6) * hi, rng.uniform(0.05, 0.2) * hi
  w, h = hi * rng.uniform(0.2, 0.35), hi * rng.uniform(0.15, 0.25)
  draw.rectangle((x, y, x + w, y + h), fill=(110, 80, 50, 255))
  draw.rectangle((x + hi * 0.015, y + hi * 0.015, x + w - hi * 0.015, y + h - hi * 0.015),
                 fill=tuple(int(v) for v in rng.integers(60, 220, 3)) + (255,))
  draw.rectangle((0, horizon - hi * 0.02, hi, horizon), fill=(240, 235, 225, 255))
  for px in np.arange(0, hi, hi * rng.uniform(0.1, 0.16)):
    draw.line([(px, horizon), (px - hi * 0.1, hi)], fill=(95, 65, 40, 140), width=max(1, hi // 200))


def _sky(draw, hi, horizon, rng):
  for _ in range(int(rng.integers(2, 5))):
    x, y, r = rng.uniform(0, hi), rng.uniform(0, hi), hi * rng.uniform(0.04, 0.09)
    for dx in (-1.2, 0, 1.2):
      draw.ellipse((x + dx * r - r, y - r * 0.7, x + dx * r + r, y + r * 0.7), fill=(250, 250, 255, 210))


_CLUTTER: dict[str, Callable] = {
    "field": _field, "beach": _beach, "table": _table, "street": _street,
    "snow": _snow, "forest": _forest, "room": _room, "sky": _sky,
}
assert set(_CLUTTER) == set(_BANDS) == set(palette.PLACES)
