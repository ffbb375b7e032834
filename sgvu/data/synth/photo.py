"""Photo rendering: coloured, textured, shaded objects painted with PIL.

Geometry arrives in 256-canvas coordinates. Objects are drawn supersampled on
their own bounding box and box-filtered down (anti-aliased edges); the
smooth background is drawn directly at the output size.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from sgvu.data.synth import palette
from sgvu.data.synth.geometry import Part, bounds

CANVAS = 256
_SHADOW_LUT = [int(v * 0.45) for v in range(256)]


@dataclasses.dataclass(frozen=True)
class Look:
  """How an object is painted (the photo-only attributes)."""

  rgb: tuple[int, int, int]
  rgb2: tuple[int, int, int]
  texture: str = "plain"
  period: float = 0.25  # texture period in object units
  angle: float = 0.0  # stripe angle, radians
  light: float = -2.3  # direction the light comes from, radians

  def role(self, name: str) -> tuple[int, int, int]:
    if name == "body":
      return self.rgb
    if name == "accent":
      return self.rgb2
    try:
      return palette.ROLES[name]
    except KeyError:
      raise KeyError(f"unknown colour role {name!r}; valid: body, accent, {sorted(palette.ROLES)}") from None


def supersample(size: int) -> int:
  """Object drawing scale: small images need more supersampling to look smooth."""
  return 4 if size <= 96 else 2


def paint_object(img: Image.Image, parts: Sequence[Part], look: Look, unit: float, k: float,
                 shadow: bool = True) -> None:
  """Paints parts (canvas coords) onto img in place; k = output pixels per canvas unit.

  The object is drawn supersampled on its own bounding box and box-filtered
  down (anti-aliased edges); the background is only touched where it shows.
  unit: canvas units per object unit (sets line widths and texture scale).
  """
  size = img.size[0]
  ss = supersample(size)
  box = bounds(parts) * k
  x0, y0 = max(0, int(box[0]) - 2), max(0, int(box[1]) - 2)
  x1, y1 = min(size, int(math.ceil(box[2])) + 2), min(size, int(math.ceil(box[3])) + 2)
  if x1 <= x0 or y1 <= y0:
    return
  w, h = (x1 - x0) * ss, (y1 - y0) * ss
  kk = k * ss
  layer = Image.new("RGB", (w, h))
  mask = Image.new("L", (w, h), 0)
  draw, draw_mask = ImageDraw.Draw(layer), ImageDraw.Draw(mask)
  texture = None
  edge = max(1, int(round(0.012 * unit * kk)))
  for part in parts:
    xy = [(float(x), float(y)) for x, y in (part.pts * kk - (x0 * ss, y0 * ss)).tolist()]
    if part.fill is not None and len(xy) >= 3:
      col = look.role(part.fill)
      if part.fill == "body" and look.texture != "plain":
        if texture is None:
          texture = _texture(look, (w, h), unit * kk)
        region = Image.new("L", (w, h), 0)
        ImageDraw.Draw(region).polygon(xy, fill=255)
        layer.paste(texture, (0, 0), region)
      else:
        draw.polygon(xy, fill=col)
      draw.line(xy + xy[:1], fill=palette.shade(col, 0.55), width=edge, joint="curve")
      draw_mask.polygon(xy, fill=255)
      draw_mask.line(xy + xy[:1], fill=255, width=edge)
    else:
      col = look.role(part.ink)
      width = max(1, int(round(part.width * 0.01 * unit * kk)))
      if part.closed:
        xy = xy + xy[:1]
      draw.line(xy, fill=col, width=width, joint="curve")
      draw_mask.line(xy, fill=255, width=width, joint="curve")
  layer = _shade(layer, look.light).resize((x1 - x0, y1 - y0), Image.Resampling.BOX)
  mask = mask.resize((x1 - x0, y1 - y0), Image.Resampling.BOX)
  if shadow:
    _drop_shadow(img, mask, (x0, y0), unit * k)
  img.paste(layer, (x0, y0), mask)


def _shade(layer: Image.Image, light: float) -> Image.Image:
  """Linear lighting ramp across the object: darker away from the light."""
  w, h = layer.size
  xs = np.linspace(-1.0, 1.0, w, dtype=np.float32)[None, :]
  ys = np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None]
  t = (xs * math.cos(light) + ys * math.sin(light)) * (1 / math.sqrt(2))  # -1..1 (1: lit side)
  gain = Image.fromarray(((0.86 + 0.14 * t) * 255).astype(np.uint8), "L")
  return ImageChops.multiply(layer, Image.merge("RGB", (gain, gain, gain)))


def _drop_shadow(img: Image.Image, mask: Image.Image, origin: tuple[int, int], px_per_unit: float) -> None:
  soft = mask.filter(ImageFilter.BoxBlur(max(1.0, px_per_unit * 0.03))).point(_SHADOW_LUT)
  off = max(1, int(round(px_per_unit * 0.05)))
  img.paste((20, 20, 25), (origin[0] + off, origin[1] + off), soft)


def _texture(look: Look, size: tuple[int, int], px_per_unit: float) -> Image.Image:
  w, h = size
  tex = Image.new("RGB", size, look.rgb)
  draw = ImageDraw.Draw(tex)
  p = max(4.0, look.period * px_per_unit)
  col = look.rgb2
  if look.texture == "striped":
    d = np.array([math.cos(look.angle), math.sin(look.angle)])
    nrm = np.array([-d[1], d[0]])
    c = np.array([w / 2, h / 2])
    reach = math.hypot(w, h)
    for o in np.arange(-reach, reach, p):
      a, b = c + nrm * o - d * reach, c + nrm * o + d * reach
      draw.line([tuple(a), tuple(b)], fill=col, width=max(1, int(p * 0.45)))
  elif look.texture == "dotted":
    r = p * 0.2
    for j, y in enumerate(np.arange(p / 2, h + p, p)):
      for x in np.arange((j % 2) * p / 2, w + p, p):
        draw.ellipse((x - r, y - r, x + r, y + r), fill=col)
  elif look.texture == "checked":
    q = p / 2
    for j, y in enumerate(np.arange(0, h, q)):
      for x in np.arange((j % 2) * q, w, 2 * q):
        draw.rectangle((x, y, x + q, y + q), fill=col)
  else:
    raise ValueError(f"unknown texture {look.texture!r}; valid: {palette.TEXTURES}")
  return tex


def finish(img: Image.Image, rng: np.random.Generator, noise: float = 3.5) -> np.ndarray:
  """Adds sensor noise to the final-size image."""
  size = img.size[0]
  arr = np.asarray(img).astype(np.int16)
  tile = _noise_tile()
  reps = -(-size // tile.shape[0])
  if reps > 1:
    tile = np.tile(tile, (reps, reps, 1))
  # A random window of a fixed Gaussian tile: deterministic, and far cheaper
  # than drawing fresh normals per pixel.
  oy, ox = rng.integers(0, tile.shape[0] - size + 1, 2)
  noisy = arr + (tile[oy:oy + size, ox:ox + size] * (noise / _NOISE_SCALE)).astype(np.int16)
  return np.clip(noisy, 0, 255).astype(np.uint8)


_NOISE_SCALE = 8.0
_NOISE_TILE: np.ndarray | None = None


def _noise_tile() -> np.ndarray:
  global _NOISE_TILE
  if _NOISE_TILE is None:
    _NOISE_TILE = (np.random.default_rng(20261122).normal(0.0, _NOISE_SCALE, (512, 512, 3))).astype(np.float32)
  return _NOISE_TILE
