"""SynthSketch part models: animals (side or front views)."""

from __future__ import annotations

import math

import numpy as np

from sgvu.data.synth.geometry import (DETAIL, OUTLINE, PART, band, bezier, ellipse, line, outline, path, poly,
                                      regular, shape)
from sgvu.data.synth.model import Attr, category, yes_no


def _eye(x: float, y: float, r: float = 0.05):
  return [shape(ellipse(x, y, r * 1.6, n=12), "white", DETAIL), shape(ellipse(x, y, r, n=10), "dark", DETAIL)]


@category("fish", options={"tail": {"forked": "a forked tail", "round": "a round tail"},
                           "fins": {"big": "big fins", "small": ""}})
def fish(a: Attr):
  rx, ry = a.u("rx", 0.6, 0.72), a.u("ry", 0.3, 0.45)
  tx = rx - 0.05
  tl = a.u("tail_len", 0.35, 0.45)
  if a.opt("tail") == "forked":
    tail = poly((tx, 0), (tx + tl, -ry * 0.9), (tx + tl * 0.6, 0), (tx + tl, ry * 0.9))
  else:
    tail = path(poly((tx, 0)), ellipse(tx + tl * 0.6, 0, tl * 0.55, ry * 0.8, 16, -math.pi / 2 - 0.6, math.pi / 2 + 0.6))
  fin = 1.6 if a.opt("fins") == "big" else 1.0
  parts = [shape(tail, "accent")]
  parts.append(shape(poly((-rx * 0.2, -ry * 0.9), (rx * 0.1, -ry - 0.18 * fin), (rx * 0.5, -ry * 0.75)), "accent", PART))
  parts.append(shape(ellipse(0, 0, rx, ry, 40)))
  parts.append(shape(poly((-rx * 0.1, ry * 0.3), (rx * 0.2, ry * 0.3 + 0.15 * fin), (rx * 0.25, ry * 0.45)), "accent", PART))
  parts += _eye(-rx * 0.62, -ry * 0.2)
  parts.append(line(ellipse(-rx * 0.3, 0, 0.12, ry * 0.6, 10, -math.pi / 2 + 0.4, math.pi / 2 - 0.4), level=DETAIL, width=2))
  parts.append(line(poly((-rx, ry * 0.1), (-rx * 0.85, ry * 0.15)), level=DETAIL, width=2))
  return parts


@category("bird", options={"beak": {"short": "a short beak", "long": "a long beak"}, "crest": yes_no("a crest"),
                           "wings": {"up": "raised wings", "down": "folded wings"}})
def bird(a: Attr):
  rx, ry = a.u("rx", 0.5, 0.6), a.u("ry", 0.3, 0.38)
  hx, hy, hr = -rx * 0.85, -ry * 1.1, a.u("head", 0.22, 0.28)
  parts = [shape(poly((rx * 0.7, -0.05), (rx + 0.45, -0.25), (rx + 0.5, 0.05), (rx * 0.8, 0.15)), "accent", PART)]
  for x in (-0.1, 0.12):
    parts.append(line(poly((x, ry * 0.8), (x, ry + 0.35), (x - 0.1, ry + 0.42)), level=PART, width=3))
  parts.append(shape(ellipse(0, 0, rx, ry, 36)))
  parts.append(shape(ellipse(hx, hy, hr, n=24)))
  bl = a.u("beak_len", 0.12, 0.18) if a.opt("beak") == "short" else a.u("beak_len", 0.3, 0.45)
  parts.append(shape(poly((hx - hr * 0.8, hy - 0.07), (hx - hr - bl, hy + 0.02), (hx - hr * 0.8, hy + 0.08)), "gold", PART))
  if a.opt("crest") == "yes":
    for k in range(3):
      base = np.array([hx + (k - 1) * 0.06, hy - hr * 0.9])
      parts.append(line(poly(base, base + (0.06 + k * 0.04, -0.22)), "accent", PART, width=4))
  if a.opt("wings") == "up":
    parts.append(shape(poly((-0.15, -ry * 0.6), (0.35, -ry * 0.5), (0.25, -ry - 0.55), (-0.05, -ry - 0.3)), "accent", PART))
  else:
    parts.append(shape(ellipse(0.1, 0.0, rx * 0.6, ry * 0.5, 20, rot=0.15), "accent", PART))
  parts += _eye(hx - hr * 0.3, hy - hr * 0.2, 0.04)
  return parts


@category("cat", options={"tail": {"up": "a raised tail", "down": "a low tail"}, "collar": yes_no("a collar")})
def cat(a: Attr):
  bw, hr = a.u("body_w", 0.45, 0.55), a.u("head", 0.35, 0.42)
  hy = -0.95 + hr + 0.25
  parts = []
  if a.opt("tail") == "up":
    tail = bezier((bw * 0.8, 0.7), (bw + 0.5, 0.6), (bw + 0.2, 0.0), (bw + 0.45, -0.3), n=14)
  else:
    tail = bezier((bw * 0.8, 0.85), (bw + 0.4, 0.95), (bw + 0.6, 0.7), (bw + 0.7, 0.85), n=14)
  parts.append(shape(band(tail, np.linspace(0.08, 0.05, len(tail))), "body", PART))
  parts.append(shape(path(bezier((-bw * 0.6, hy + hr * 0.7), (-bw * 1.4, 0.5), (-bw * 1.1, 0.95), (0, 0.95), n=14),
                          bezier((0, 0.95), (bw * 1.1, 0.95), (bw * 1.4, 0.5), (bw * 0.6, hy + hr * 0.7), n=14))))
  ear = a.u("ear", 0.22, 0.3)
  for s in (-1, 1):
    parts.append(shape(poly((s * hr * 0.85, hy - hr * 0.3), (s * hr * 0.75, hy - hr - ear), (s * hr * 0.15, hy - hr * 0.85))))
  parts.append(shape(ellipse(0, hy, hr, hr * 0.88, 32)))
  if a.opt("collar") == "yes":
    parts.append(shape(path(bezier((-hr * 0.7, hy + hr * 0.7), (0, hy + hr * 1.05), (hr * 0.7, hy + hr * 0.7), n=8),
                            bezier((hr * 0.75, hy + hr * 0.85), (0, hy + hr * 1.25), (-hr * 0.75, hy + hr * 0.85), n=8)),
                       "red", PART))
  for s in (-1, 1):
    parts.append(shape(ellipse(s * hr * 0.38, hy - hr * 0.1, 0.07, 0.09, 12), "gold", DETAIL))
    for dy in (-0.04, 0.05):
      parts.append(line(poly((s * hr * 0.2, hy + hr * 0.3), (s * (hr + 0.15), hy + hr * 0.3 + dy * 2)), level=DETAIL, width=1.5))
  parts.append(shape(poly((-0.05, hy + hr * 0.2), (0.05, hy + hr * 0.2), (0, hy + hr * 0.3)), "red", DETAIL))
  return parts


@category("snail", options={"shell": {"round": "", "tall": "a tall shell"}, "feelers": {"two": "", "four": "four feelers"}})
def snail(a: Attr):
  sr = a.u("shell_r", 0.45, 0.55)
  sy = 0.55 - sr * (1.25 if a.opt("shell") == "tall" else 1.0)
  parts = [shape(path(poly((-0.95, 0.65)), bezier((-0.95, 0.65), (-0.95, 0.3), (-0.75, 0.2), (-0.6, 0.4), n=8),
                      poly((0.9, 0.55), (0.95, 0.7), (-0.95, 0.7))), "skin")]
  ry = sr * (1.25 if a.opt("shell") == "tall" else 1.0)
  parts.append(shape(ellipse(0.15, sy, sr, ry, 36)))
  t = np.linspace(0, 3.2 * math.pi, 40)
  rr = sr * 0.85 * (1 - t / (3.6 * math.pi))
  parts.append(line(np.stack([0.15 + rr * np.cos(t), sy + rr * np.sin(t) * ry / sr], axis=1), "accent", PART, width=4))
  n = 2 if a.opt("feelers") == "two" else 4
  for k in range(n):
    tip = (-0.95 + (k % 2) * 0.2 - (k // 2) * 0.15, 0.0 - (k % 2) * 0.1 + (k // 2) * 0.15)
    parts.append(line(poly((-0.8 + k * 0.03, 0.3), tip), level=PART, width=3))
    parts.append(shape(ellipse(*tip, 0.04, n=8), "dark", DETAIL))
  return parts


@category("butterfly", options={"wings": {"round": "round wings", "pointed": "pointed wings"}, "spots": yes_no("spots"),
                                "tails": yes_no("wing tails")})
def butterfly(a: Attr):
  uw, lw = a.u("upper", 0.5, 0.6), a.u("lower", 0.32, 0.42)
  parts = []
  for s in (-1, 1):
    if a.opt("wings") == "round":
      upper = ellipse(s * uw * 0.9, -0.35, uw, uw * 0.75, 28, rot=s * 0.4)
    else:
      upper = poly((0, -0.1), (s * uw * 1.9, -0.9), (s * uw * 1.6, 0.05))
    parts.append(shape(upper, "body", OUTLINE))
    parts.append(shape(ellipse(s * lw * 0.95, 0.35, lw, lw * 1.05, 24, rot=-s * 0.3), "body", OUTLINE))
    if a.opt("tails") == "yes":
      parts.append(shape(poly((s * lw * 0.8, 0.6), (s * lw * 1.2, 1.0), (s * lw * 1.2, 0.6)), "body", PART))
    if a.opt("spots") == "yes":
      parts.append(shape(ellipse(s * uw * 1.05, -0.45, 0.12, n=12), "accent", PART))
      parts.append(shape(ellipse(s * lw * 1.1, 0.4, 0.08, n=10), "accent", DETAIL))
    parts.append(line(bezier((0, -0.55), (s * 0.1, -0.8), (s * 0.3, -0.95), n=6), level=PART, width=2.5))
  parts.append(shape(ellipse(0, 0.05, 0.07, 0.6, 16), "dark"))
  return parts


@category("turtle", options={"head": {"out": "", "tucked": "a tucked head"},
                             "pattern": {"hexagons": "a hexagon pattern", "plain": ""}})
def turtle(a: Attr):
  sw, sh = a.u("shell_w", 0.75, 0.85), a.u("shell_h", 0.55, 0.7)
  parts = []
  for x in (-sw * 0.55, sw * 0.55):
    parts.append(shape(ellipse(x, 0.35, 0.15, 0.25, 14), "leaf", PART))
  parts.append(shape(ellipse(sw + 0.12, 0.2, 0.15, 0.05, 10), "leaf", DETAIL))
  if a.opt("head") == "out":
    parts.append(shape(ellipse(-sw - 0.15, -0.05, 0.22, 0.16, 18), "leaf", PART))
    parts += _eye(-sw - 0.25, -0.08, 0.03)
  else:
    parts.append(shape(ellipse(-sw - 0.02, 0.12, 0.13, 0.1, 14), "leaf", PART))
  parts.append(shape(path(ellipse(0, 0.25, sw, sh, 30, math.pi, 2 * math.pi), poly((sw, 0.25), (-sw, 0.25)))))
  parts.append(shape(ellipse(0, 0.28, sw * 1.05, 0.07, 24), "accent", PART))
  if a.opt("pattern") == "hexagons":
    for x, y in ((0, -0.1), (-sw * 0.5, 0.05), (sw * 0.5, 0.05)):
      parts.append(outline(regular(x, y, 0.16, 6, 0), "accent", PART, width=3))
  return parts


@category("rabbit", options={"ears": {"up": "upright ears", "floppy": "floppy ears"}, "whiskers": yes_no("whiskers")},
          colours=("white", "grey", "brown", "black", "pink", "yellow"))
def rabbit(a: Attr):
  rx, ry = a.u("rx", 0.5, 0.6), a.u("ry", 0.4, 0.48)
  hx, hy, hr = -rx * 0.8, -ry * 0.6, a.u("head", 0.26, 0.32)
  el = a.u("ear_len", 0.45, 0.6)
  parts = [shape(ellipse(0.1, 0.35, rx, ry, 32)), shape(ellipse(rx + 0.1, 0.2, 0.15, n=14), "white", PART)]
  for k in range(2):
    if a.opt("ears") == "up":
      ear = ellipse(hx + 0.05 + k * 0.12, hy - hr - el * 0.45, 0.09, el * 0.55, 16, rot=0.15 + k * 0.2)
    else:
      ear = ellipse(hx + 0.25 + k * 0.08, hy - hr * 0.3 + el * 0.2, 0.09, el * 0.5, 16, rot=-1.1 + k * 0.2)
    parts.append(shape(ear, "body", OUTLINE))
  parts.append(shape(ellipse(hx, hy, hr, hr * 0.9, 24)))
  parts.append(shape(ellipse(-0.1, 0.8, 0.25, 0.08, 12), "body", PART))
  parts += _eye(hx - hr * 0.35, hy - hr * 0.2, 0.035)
  parts.append(shape(ellipse(hx - hr * 0.9, hy + hr * 0.15, 0.04, n=8), "red", DETAIL))
  if a.opt("whiskers") == "yes":
    for dy in (-0.05, 0.05):
      parts.append(line(poly((hx - hr * 0.85, hy + hr * 0.25), (hx - hr - 0.25, hy + hr * 0.25 + dy * 2)), level=PART,
                        width=1.5))
  return parts


@category("snake", options={"curves": {"two": "two curves", "three": "three curves"}, "tongue": yes_no("a forked tongue")})
def snake(a: Attr):
  n = 2 if a.opt("curves") == "two" else 3
  x = np.linspace(-0.75, 0.95, 48)
  amp = a.u("amp", 0.25, 0.4)
  y = amp * np.sin((x + 0.75) / 1.7 * n * math.pi + a.u("phase", 0, 0.5)) + 0.1
  centre = np.stack([x, y], axis=1)
  width = np.linspace(0.13, 0.02, len(x))
  parts = [shape(band(centre, width))]
  hx, hy = -0.8, float(y[0])
  parts.append(shape(ellipse(hx, hy, 0.2, 0.15, 20, rot=0.2)))
  parts += _eye(hx - 0.05, hy - 0.05, 0.03)
  if a.opt("tongue") == "yes":
    parts.append(line(poly((hx - 0.18, hy + 0.02), (hx - 0.35, hy + 0.02), (hx - 0.42, hy - 0.04)), "red", PART, width=2.5))
    parts.append(line(poly((hx - 0.35, hy + 0.02), (hx - 0.42, hy + 0.08)), "red", DETAIL, width=2.5))
  return parts
