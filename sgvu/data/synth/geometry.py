"""Vector primitives the SynthSketch part models are built from.

A category's part model returns a list of `Part`s in an object space where y
points down (image convention) and the object spans roughly [-1, 1]; the world
later normalises, poses and places it. Photos fill the parts, sketches trace
them, so both come from the very same geometry.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np

TAU = 2.0 * math.pi

# Drawing levels: sketches are drawn coarse-to-fine in this order and the
# finer levels are the ones a person tends to leave out.
OUTLINE, PART, DETAIL = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class Part:
  """One closed shape or open polyline.

  pts: float32 [n, 2]. closed: a region (filled in photos when `fill` is set).
  fill: colour role of the region ('body' gets the instance colour and
    texture, see `sgvu.data.synth.palette`), None for an unfilled outline.
  ink: colour role of an open polyline / unfilled outline in photos.
  level: OUTLINE, PART or DETAIL (sketch order and omission).
  width: line width in object units x 100 (photo only).
  """

  pts: np.ndarray
  closed: bool = True
  fill: str | None = "body"
  ink: str = "dark"
  level: int = OUTLINE
  width: float = 3.0

  def transformed(self, matrix: np.ndarray, offset: np.ndarray) -> "Part":
    pts = (self.pts @ matrix.T + offset).astype(np.float32)
    return dataclasses.replace(self, pts=pts)


def shape(pts, fill: str | None = "body", level: int = OUTLINE) -> Part:
  """A filled closed region."""
  return Part(np.asarray(pts, np.float32), True, fill, "dark", level)


def outline(pts, ink: str = "dark", level: int = PART, width: float = 3.0) -> Part:
  """A closed outline that is not filled (e.g. a ring, a frame)."""
  return Part(np.asarray(pts, np.float32), True, None, ink, level, width)


def line(pts, ink: str = "dark", level: int = PART, width: float = 3.0) -> Part:
  """An open polyline (laces, rays, strings)."""
  return Part(np.asarray(pts, np.float32), False, None, ink, level, width)


# ----------------------------------------------------------------------------
# Point generators (all return float32 [n, 2]).


def ellipse(cx: float, cy: float, rx: float, ry: float | None = None, n: int = 40,
            a0: float = 0.0, a1: float = TAU, rot: float = 0.0) -> np.ndarray:
  """Ellipse (or arc from angle a0 to a1, radians, 0 = +x, clockwise on screen)."""
  ry = rx if ry is None else ry
  full = abs(a1 - a0) >= TAU - 1e-6
  t = np.linspace(a0, a1, n, endpoint=not full)
  x, y = rx * np.cos(t), ry * np.sin(t)
  if rot:
    c, s = math.cos(rot), math.sin(rot)
    x, y = c * x - s * y, s * x + c * y
  return np.stack([cx + x, cy + y], axis=1).astype(np.float32)


def rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
  return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def rrect(x0: float, y0: float, x1: float, y1: float, r: float, n: int = 5) -> np.ndarray:
  """Rounded rectangle with corner radius r."""
  r = min(r, (x1 - x0) / 2, (y1 - y0) / 2)
  corners = [(x1 - r, y0 + r, -math.pi / 2), (x1 - r, y1 - r, 0.0),
             (x0 + r, y1 - r, math.pi / 2), (x0 + r, y0 + r, math.pi)]
  pts = [ellipse(cx, cy, r, r, n, a, a + math.pi / 2) for cx, cy, a in corners]
  return np.concatenate(pts, axis=0)


def poly(*pts: Sequence[float]) -> np.ndarray:
  return np.asarray(pts, np.float32)


def bezier(*ctrl: Sequence[float], n: int = 16) -> np.ndarray:
  """Bezier curve of any degree through control points (de Casteljau)."""
  c = np.asarray(ctrl, np.float64)
  t = np.linspace(0.0, 1.0, n)[:, None]
  deg = len(c) - 1
  out = np.zeros((n, 2))
  for i, p in enumerate(c):
    out += math.comb(deg, i) * (1 - t) ** (deg - i) * t ** i * p
  return out.astype(np.float32)


def path(*segments: np.ndarray) -> np.ndarray:
  """Concatenates segments, dropping a point repeated at a joint."""
  out = [np.asarray(segments[0], np.float32)]
  for seg in segments[1:]:
    seg = np.asarray(seg, np.float32)
    if np.allclose(out[-1][-1], seg[0]):
      seg = seg[1:]
    out.append(seg)
  return np.concatenate(out, axis=0)


def regular(cx: float, cy: float, r: float, k: int, rot: float = -math.pi / 2) -> np.ndarray:
  t = rot + np.arange(k) * TAU / k
  return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1).astype(np.float32)


def star(cx: float, cy: float, r_out: float, r_in: float, k: int = 5) -> np.ndarray:
  t = -math.pi / 2 + np.arange(2 * k) * math.pi / k
  r = np.where(np.arange(2 * k) % 2 == 0, r_out, r_in)
  return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1).astype(np.float32)


def wave(x0: float, x1: float, y: float, amp: float, periods: float, n: int = 24) -> np.ndarray:
  x = np.linspace(x0, x1, n)
  return np.stack([x, y + amp * np.sin((x - x0) / (x1 - x0) * periods * TAU)], axis=1).astype(np.float32)


def mirror_x(pts: np.ndarray, about: float = 0.0) -> np.ndarray:
  """Mirror image across the vertical line x = about, order reversed (stays a ring)."""
  out = np.asarray(pts, np.float32)[::-1].copy()
  out[:, 0] = 2 * about - out[:, 0]
  return out


def rotate(pts: np.ndarray, angle: float, cx: float = 0.0, cy: float = 0.0) -> np.ndarray:
  c, s = math.cos(angle), math.sin(angle)
  p = np.asarray(pts, np.float32) - (cx, cy)
  return (p @ np.array([[c, s], [-s, c]], np.float32) + (cx, cy)).astype(np.float32)


def bounds(parts: Sequence[Part]) -> np.ndarray:
  """[x0, y0, x1, y1] of all parts."""
  allp = np.concatenate([p.pts for p in parts], axis=0)
  return np.concatenate([allp.min(axis=0), allp.max(axis=0)]).astype(np.float32)


def densify(pts: np.ndarray, closed: bool, step: float) -> np.ndarray:
  """Resamples a polyline so consecutive points are at most ~step apart."""
  pts = np.asarray(pts, np.float32)
  if closed:
    pts = np.concatenate([pts, pts[:1]], axis=0)
  if len(pts) < 2:
    return pts
  seg = np.diff(pts, axis=0)
  length = np.hypot(seg[:, 0], seg[:, 1])
  reps = np.maximum(1, np.ceil(length / step).astype(int))
  idx = np.repeat(np.arange(len(seg)), reps)
  t = (np.arange(len(idx)) - np.repeat(np.cumsum(reps) - reps, reps)) / reps[idx]
  out = pts[idx] + seg[idx] * t[:, None]
  return np.concatenate([out, pts[-1:]], axis=0).astype(np.float32)


def lathe(right: np.ndarray) -> np.ndarray:
  """A left-right symmetric ring from its right half, listed top to bottom."""
  right = np.asarray(right, np.float32)
  return np.concatenate([right, mirror_x(right)], axis=0)


def scallop(cx: float, cy: float, rx: float, ry: float, bumps: int, depth: float = 0.15,
            n: int = 72, phase: float = 0.0) -> np.ndarray:
  """A bumpy ellipse (bushy crown, cloud): radius swells `bumps` times around."""
  t = np.linspace(0.0, TAU, n, endpoint=False) + phase
  r = 1.0 - depth + depth * np.abs(np.sin(bumps * (t - phase) / 2)) ** 0.5
  return np.stack([cx + rx * r * np.cos(t), cy + ry * r * np.sin(t)], axis=1).astype(np.float32)


def crescent(radius: float, offset: float, inner: float, n: int = 40) -> np.ndarray:
  """The part of a circle (centre 0) outside another circle shifted right by `offset`."""
  x = (radius ** 2 - inner ** 2 + offset ** 2) / (2 * offset)
  alpha = math.acos(max(-1.0, min(1.0, x / radius)))
  beta = math.atan2(radius * math.sin(alpha), x - offset)
  outer = ellipse(0, 0, radius, radius, n, alpha, TAU - alpha)
  inner_arc = ellipse(offset, 0, inner, inner, n, TAU - beta, beta)
  return np.concatenate([outer, inner_arc[1:-1]], axis=0)


def band(centre: np.ndarray, half_width) -> np.ndarray:
  """A closed ribbon of (per-point) half width around a centre polyline."""
  c = np.asarray(centre, np.float32)
  d = np.gradient(c, axis=0)
  nrm = np.stack([-d[:, 1], d[:, 0]], axis=1)
  nrm /= np.linalg.norm(nrm, axis=1, keepdims=True) + 1e-6
  hw = np.broadcast_to(np.asarray(half_width, np.float32), (len(c),))[:, None]
  return np.concatenate([c + nrm * hw, (c - nrm * hw)[::-1]], axis=0).astype(np.float32)
