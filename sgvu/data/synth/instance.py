"""One object instance: its attributes, posed geometry and photo rendering.

Everything an instance is follows from its seed, drawn in independent streams
(shape, appearance, pose), so e.g. adding a colour to the palette does not
change any instance's shape.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np

from sgvu.data.synth import background, neighbours, palette, photo
from sgvu.data.synth.geometry import Part, bounds
from sgvu.data.synth.model import Attr, Category

CANVAS = 256
_SHAPE, _LOOK, _POSE, _BACKGROUND, _NOISE = range(5)


@dataclasses.dataclass(frozen=True, eq=False)
class Instance:
  category: str
  options: dict[str, str]  # named part variations (caption phrases)
  values: dict[str, Any]  # continuous proportions and unnamed variations
  colour: str
  texture: str
  place: str
  neighbour: str | None
  pose: dict[str, float]  # rotation (rad), flip (0/1), scale, cx, cy, unit (canvas px per object unit)
  parts: tuple[Part, ...]  # object space, posed (flip, rotation), centred, within [-1, 1]
  look: photo.Look
  seed: tuple[int, ...]
  neighbour_parts: tuple[Part, ...] = ()
  neighbour_look: photo.Look | None = None
  neighbour_pose: tuple[float, float, float] = (0.0, 0.0, 0.0)  # cx, cy, unit

  def attributes(self) -> dict[str, Any]:
    """A flat, printable summary (scene metadata, debugging)."""
    return dict(category=self.category, colour=self.colour, texture=self.texture, place=self.place,
                neighbour=self.neighbour, **self.options,
                **{f"pose_{k}": round(float(v), 3) for k, v in self.pose.items()})


def rng_for(seed: Sequence[int], stream: int) -> np.random.Generator:
  return np.random.default_rng([*seed, stream])


def pose_parts(parts: Sequence[Part], rotation: float, flip: bool) -> tuple[Part, ...]:
  """Centres, flips, rotates and scales parts so the posed object fits [-1, 1]."""
  box = bounds(parts)
  centre = (box[:2] + box[2:]) / 2
  c, s = math.cos(rotation), math.sin(rotation)
  m = np.array([[c, -s], [s, c]]) @ np.diag([-1.0 if flip else 1.0, 1.0])
  posed = (np.concatenate([p.pts for p in parts]) - centre) @ m.T
  m = m / max(float(np.abs(posed).max()), 1e-6)
  offset = -(m @ centre).astype(np.float32)
  return tuple(p.transformed(m.astype(np.float32), offset) for p in parts)


def placed(parts: Sequence[Part], cx: float, cy: float, unit: float) -> list[Part]:
  m = np.eye(2, dtype=np.float32) * unit
  return [p.transformed(m, np.array([cx, cy], np.float32)) for p in parts]


def make_instance(cat: Category, seed: Sequence[int], place: str | None = None) -> Instance:
  seed = tuple(int(v) for v in seed)
  attr = Attr(cat, rng_for(seed, _SHAPE))
  raw = cat.build(attr)
  if not raw:
    raise ValueError(f"category {cat.name!r} built no parts for seed {seed}")

  look_rng = rng_for(seed, _LOOK)
  names = list(cat.colours or palette.COLOURS)
  colour = names[int(look_rng.integers(len(names)))]
  others = [c for c in palette.COLOURS if c != colour]
  colour2 = others[int(look_rng.integers(len(others)))]
  texture = palette.TEXTURES[int(look_rng.integers(len(palette.TEXTURES)))]
  places = list(palette.PLACES)
  chosen_place = places[int(look_rng.integers(len(places)))]
  place = place or chosen_place
  has_neighbour = look_rng.random() >= palette.NO_NEIGHBOUR_PROB
  neighbour = palette.NEIGHBOURS[int(look_rng.integers(len(palette.NEIGHBOURS)))] if has_neighbour else None
  look = photo.Look(rgb=palette.jitter_colour(palette.COLOURS[colour], look_rng),
                    rgb2=palette.jitter_colour(palette.COLOURS[colour2], look_rng), texture=texture,
                    period=float(look_rng.uniform(0.14, 0.3)), angle=float(look_rng.uniform(0, math.pi)),
                    light=float(look_rng.uniform(-2.8, -1.8)))

  pose_rng = rng_for(seed, _POSE)
  rotation = float(np.clip(pose_rng.normal(0.0, 0.12), -0.3, 0.3))
  flip = bool(pose_rng.random() < 0.5)
  parts = pose_parts(raw, rotation, flip)
  scale = float(pose_rng.uniform(0.55, 0.82))
  unit = scale * CANVAS / 2
  box = bounds(parts) * unit
  margin = 8.0
  cx = pose_rng.uniform(margin - box[0], CANVAS - margin - box[2]) if box[2] - box[0] < CANVAS - 2 * margin else CANVAS / 2
  cy = pose_rng.uniform(margin - box[1], CANVAS - margin - box[3]) if box[3] - box[1] < CANVAS - 2 * margin else CANVAS / 2
  pose = dict(rotation=rotation, flip=float(flip), scale=scale, cx=float(cx), cy=float(cy), unit=unit)

  extra = {}
  if neighbour is not None:
    n_parts, n_look = neighbours.neighbour(neighbour, pose_rng)
    n_unit = unit * float(pose_rng.uniform(0.22, 0.35))
    side = 1.0 if cx < CANVAS / 2 else -1.0  # the side with more room
    nx = cx + side * (max(abs(box[0]), abs(box[2])) * 0.9 + n_unit * 0.8)
    ny = cy + box[3] - n_unit * float(pose_rng.uniform(0.6, 1.0))
    nx = float(np.clip(nx, n_unit * 0.6, CANVAS - n_unit * 0.6))
    ny = float(np.clip(ny, n_unit, CANVAS - n_unit))
    extra = dict(neighbour_parts=tuple(pose_parts(n_parts, 0.0, False)), neighbour_look=n_look,
                 neighbour_pose=(nx, ny, n_unit))
  return Instance(category=cat.name, options=dict(attr.options), values=dict(attr.values), colour=colour,
                  texture=texture, place=place, neighbour=neighbour, pose=pose, parts=parts, look=look,
                  seed=seed, **extra)


def paint(img, inst: Instance, cx: float, cy: float, unit: float, k: float) -> None:
  """Paints the instance (and its neighbour, behind it); k = image pixels per canvas unit."""
  if inst.neighbour_look is not None:
    nx, ny, nu = inst.neighbour_pose
    # Scenes move the object; keep the neighbour at the same relative offset.
    nx, ny = cx + (nx - inst.pose["cx"]) * unit / inst.pose["unit"], cy + (ny - inst.pose["cy"]) * unit / inst.pose["unit"]
    nu = nu * unit / inst.pose["unit"]
    photo.paint_object(img, placed(inst.neighbour_parts, nx, ny, nu), inst.neighbour_look, nu, k)
  photo.paint_object(img, placed(inst.parts, cx, cy, unit), inst.look, unit, k)


def render_photo(inst: Instance, size: int) -> np.ndarray:
  """uint8 [size, size, 3]: the instance on its place's cluttered background."""
  img = background.background(inst.place, size, rng_for(inst.seed, _BACKGROUND))
  paint(img, inst, inst.pose["cx"], inst.pose["cy"], inst.pose["unit"], size / CANVAS)
  return photo.finish(img, rng_for((*inst.seed, size), _NOISE))
