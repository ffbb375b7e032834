"""SynthSketch part models: vehicles (side views)."""

from __future__ import annotations

import math

import numpy as np

from sgvu.data.synth.geometry import (DETAIL, OUTLINE, PART, bezier, ellipse, lathe, line, outline, path,
                                      poly, rect, rrect, shape)
from sgvu.data.synth.model import Attr, category, yes_no


def _wheel(x: float, y: float, r: float):
  return [shape(ellipse(x, y, r, n=28), "dark", OUTLINE), shape(ellipse(x, y, r * 0.45, n=14), "metal", DETAIL)]


@category("car", options={"doors": {"two": "two doors", "four": "four doors"}, "spoiler": yes_no("a spoiler"),
                          "wheels": {"small": "", "big": "big wheels"}})
def car(a: Attr):
  L, body_top, ground = 1.0, a.u("body_top", -0.05, 0.1), 0.55
  wr = a.u("wheel", 0.2, 0.24) if a.opt("wheels") == "small" else a.u("wheel", 0.28, 0.33)
  roof = body_top - a.u("cabin_h", 0.35, 0.5)
  c0, c1 = a.u("cabin_x0", -0.6, -0.45), a.u("cabin_x1", 0.3, 0.5)
  parts = [shape(poly((c0, body_top), (c0 + 0.2, roof), (c1 - 0.1, roof), (c1 + 0.15, body_top)), "body", OUTLINE)]
  parts.append(shape(rrect(-L, body_top, L, ground, 0.12)))
  four = a.opt("doors") == "four"
  mid = (c0 + c1) / 2
  panes = ((c0 + 0.06, mid - 0.03), (mid + 0.03, c1 - 0.02)) if four else ((c0 + 0.06, c1 - 0.02),)
  for x0, x1 in panes:
    parts.append(shape(poly((x0, body_top - 0.03), (max(x0, c0 + 0.22), roof + 0.05), (min(x1, c1 - 0.12), roof + 0.05),
                            (x1 + 0.05 * (x1 == panes[-1][1]), body_top - 0.03)), "glass", PART))
  doors = (c0 + 0.02, mid, c1) if four else (c0 + 0.02, c1)
  for x in doors:
    parts.append(line(poly((x, body_top), (x, ground - 0.12)), level=DETAIL, width=2))
  for x in (-L * 0.62, L * 0.62):
    parts += _wheel(x, ground, wr)
  parts.append(shape(ellipse(L - 0.08, body_top + 0.12, 0.06, 0.05, 10), "gold", DETAIL))
  if a.opt("spoiler") == "yes":
    parts.append(shape(poly((-L, body_top), (-L - 0.08, body_top - 0.18), (-L + 0.3, body_top - 0.18), (-L + 0.25, body_top)),
                       "accent", PART))
  return parts


@category("bus", options={"windows": {"four": "four windows", "five": "five windows"},
                          "decks": {"one": "", "two": "two decks"}})
def bus(a: Attr):
  L, ground = 1.0, 0.5
  two = a.opt("decks") == "two"
  top = -0.6 if two else a.u("top", -0.25, -0.1)
  parts = [shape(rrect(-L, top, L, ground, 0.1))]
  n = 4 if a.opt("windows") == "four" else 5
  rows = (top + 0.08, top + 0.5) if two else (top + 0.08,)
  door_x = L - 0.3 if a.coin("front_door") else -0.1
  for wy in rows:
    for i in range(n):
      x0 = -L + 0.1 + i * (2 * L - 0.55) / n
      parts.append(shape(rect(x0, wy, x0 + (2 * L - 0.55) / n - 0.08, wy + 0.28), "glass", PART))
  parts.append(shape(rect(L - 0.32, top + 0.08, L - 0.05, top + 0.4), "glass", PART))
  parts.append(shape(rect(door_x, top + (0.5 if two else 0.08) + 0.32, door_x + 0.22, ground - 0.06), "dark", PART))
  parts.append(line(poly((-L, ground - 0.2), (L, ground - 0.2)), "accent", DETAIL, width=5))
  for x in (-L * 0.65, L * 0.55):
    parts += _wheel(x, ground, a.u("wheel", 0.18, 0.22))
  return parts


@category("truck", options={"cargo": {"box": "a box", "open": "an open bed"}, "axles": {"two": "", "three": "three axles"}})
def truck(a: Attr):
  L, ground = 1.0, 0.45
  cab_x = L - a.u("cab_len", 0.45, 0.55)
  cab_top = a.u("cab_top", -0.45, -0.3)
  parts = [shape(path(poly((cab_x, ground), (cab_x, cab_top), (L - 0.2, cab_top)),
                      poly((L, cab_top + 0.25), (L, ground))), "accent", OUTLINE)]
  parts.append(shape(poly((cab_x + 0.08, cab_top + 0.06), (L - 0.22, cab_top + 0.06), (L - 0.06, cab_top + 0.27),
                          (cab_x + 0.08, cab_top + 0.27)), "glass", PART))
  if a.opt("cargo") == "box":
    parts.append(shape(rect(-L, a.u("box_top", -0.65, -0.45), cab_x - 0.05, ground - 0.1)))
  else:
    parts.append(shape(rect(-L, ground - 0.4, cab_x - 0.05, ground - 0.1)))
    for x in np.linspace(-L + 0.2, cab_x - 0.25, 3):
      parts.append(line(poly((x, ground - 0.4), (x, ground - 0.1)), level=DETAIL, width=2))
  parts.append(shape(rect(-L, ground - 0.12, L, ground + 0.02), "dark", PART))
  xs = (-L * 0.7, L * 0.7) if a.opt("axles") == "two" else (-L * 0.75, -L * 0.35, L * 0.7)
  for x in xs:
    parts += _wheel(x, ground + 0.05, a.u("wheel", 0.17, 0.21))
  return parts


@category("bicycle", options={"basket": yes_no("a basket"), "frame": {"diamond": "", "low": "a low frame"}})
def bicycle(a: Attr):
  wr, gap = a.u("wheel", 0.4, 0.48), a.u("gap", 0.5, 0.6)
  bx, fx, y = -gap, gap, 0.35
  parts = []
  for x in (bx, fx):
    parts.append(outline(ellipse(x, y, wr, n=32), "dark", OUTLINE, width=7))
    parts.append(shape(ellipse(x, y, 0.04, n=8), "metal", DETAIL))
  crank = (-0.05, y)
  seat = (-0.22, y - 0.62)
  head = (fx - 0.18, y - 0.55)
  if a.opt("frame") == "diamond":
    tubes = [(crank, seat), (seat, head), (head, crank), (crank, (bx, y)), (seat, (bx, y))]
  else:
    tubes = [(crank, seat), (crank, (head[0] - 0.05, head[1] + 0.2)), (crank, (bx, y)), (seat, (bx, y))]
  for p, q in tubes:
    parts.append(line(poly(p, q), "body", OUTLINE, width=7))
  parts.append(line(poly(head, (fx, y)), "body", PART, width=7))
  parts.append(line(poly(head, (head[0] - 0.05, head[1] - 0.18), (head[0] - 0.22, head[1] - 0.22)), "dark", PART, width=5))
  parts.append(shape(poly((seat[0] - 0.18, seat[1] - 0.05), (seat[0] + 0.12, seat[1] - 0.08), (seat[0] + 0.1, seat[1] + 0.02),
                          (seat[0] - 0.15, seat[1] + 0.03)), "dark", PART))
  parts.append(shape(ellipse(*crank, 0.08, n=10), "metal", DETAIL))
  if a.opt("basket") == "yes":
    parts.append(shape(poly((head[0] + 0.05, head[1] - 0.05), (head[0] + 0.4, head[1] - 0.05), (head[0] + 0.35, head[1] + 0.22),
                            (head[0] + 0.08, head[1] + 0.22)), "wood", PART))
  return parts


@category("sailboat", options={"sails": {"one": "one sail", "two": "two sails"}, "flag": yes_no("a flag")})
def sailboat(a: Attr):
  hull_top, L = a.u("hull_top", 0.35, 0.5), a.u("length", 0.85, 1.0)
  parts = [shape(poly((-L, hull_top), (L, hull_top), (L * 0.7, 0.85), (-L * 0.75, 0.85)))]
  mast_x, top = a.u("mast_x", -0.15, 0.1), -0.95
  parts.append(line(poly((mast_x, hull_top), (mast_x, top)), "wood", OUTLINE, width=5))
  parts.append(shape(poly((mast_x + 0.04, top + 0.05), (mast_x + 0.04, hull_top - 0.08), (L * 0.75, hull_top - 0.08)), "white", PART))
  if a.opt("sails") == "two":
    parts.append(shape(poly((mast_x - 0.04, top + 0.2), (mast_x - 0.04, hull_top - 0.08), (-L * 0.7, hull_top - 0.08)),
                       "accent", PART))
  if a.opt("flag") == "yes":
    parts.append(shape(poly((mast_x, top), (mast_x - 0.3, top + 0.08), (mast_x, top + 0.16)), "red", PART))
  for x in np.linspace(-L * 0.5, L * 0.4, 3):
    parts.append(shape(ellipse(x, (hull_top + 0.85) / 2 - 0.05, 0.06, n=10), "white", DETAIL))
  return parts


@category("airplane", options={"engines": {"two": "two engines", "none": ""},
                               "propeller": {"jet": "", "propeller": "a propeller"}})
def airplane(a: Attr):
  L, h = 1.0, a.u("fuselage_h", 0.18, 0.25)
  parts = [shape(poly((L * 0.55, -h * 0.5), (L * 0.8, -h - a.u("fin", 0.4, 0.55)), (L, -h - a.u("fin", 0.4, 0.55)),
                      (L * 0.95, 0)), "accent", PART)]
  nose = a.u("nose", 0.15, 0.3)
  body = path(ellipse(-L + nose, 0, nose, h, 12, math.pi / 2, 3 * math.pi / 2), poly((L, -h * 0.6), (L, h * 0.2)),
              bezier((L, h * 0.2), (L * 0.5, h), (-L + nose, h), n=8))
  parts.append(shape(body))
  sweep = a.u("sweep", 0.15, 0.35)
  parts.append(shape(poly((-0.2, h * 0.2), (0.25, h * 0.2), (0.25 + sweep, h + 0.55), (0.05 + sweep, h + 0.55)), "accent", OUTLINE))
  for i in range(a.pick("num_windows", (5, 6, 7))):
    parts.append(shape(ellipse(-L + nose + 0.15 + i * 0.2, -h * 0.3, 0.04, n=8), "glass", DETAIL))
  if a.opt("engines") == "two":
    for dx in (0.0, 0.22):
      parts.append(shape(rrect(0.0 + dx, h + 0.15 + dx * 0.5, 0.18 + dx, h + 0.27 + dx * 0.5, 0.05), "metal", PART))
  if a.opt("propeller") == "propeller":
    parts.append(line(poly((-L - 0.05, -h - 0.3), (-L - 0.05, h + 0.3)), "dark", PART, width=5))
  return parts


@category("rocket", options={"fins": {"two": "two fins", "three": "three fins"}, "window": yes_no("a round window"),
                             "flames": yes_no("flames")})
def rocket(a: Attr):
  w, nose = a.u("width", 0.25, 0.33), a.u("nose", 0.35, 0.5)
  top, bot = -0.95, 0.55
  right = path(bezier((0, top), (w * 0.9, top + nose * 0.4), (w, top + nose), n=10), poly((w, bot)))
  parts = []
  n = 2 if a.opt("fins") == "two" else 3
  fin_h = a.u("fin_h", 0.3, 0.45)
  for s in (-1, 1):
    parts.append(shape(poly((s * w, bot - fin_h), (s * (w + 0.28), bot + 0.1), (s * w, bot)), "accent", PART))
  parts.append(shape(lathe(right)))
  if n == 3:
    parts.append(shape(poly((-0.04, bot - fin_h * 0.6), (0.04, bot - fin_h * 0.6), (0.04, bot + 0.12), (-0.04, bot + 0.12)),
                       "accent", PART))
  parts.append(shape(path(bezier((0, top), (w * 0.9, top + nose * 0.4), (w, top + nose), n=8),
                          poly((-w, top + nose)), bezier((-w, top + nose), (-w * 0.9, top + nose * 0.4), (0, top), n=8)),
                     "accent", PART))
  if a.opt("window") == "yes":
    parts.append(shape(ellipse(0, top + nose + 0.28, w * 0.5, n=18), "metal", PART))
    parts.append(shape(ellipse(0, top + nose + 0.28, w * 0.35, n=16), "glass", DETAIL))
  if a.opt("flames") == "yes":
    parts.append(shape(poly((-w * 0.8, bot), (w * 0.8, bot), (w * 0.4, bot + 0.3), (0, bot + 0.45), (-w * 0.4, bot + 0.3)),
                       "flame", PART))
  return parts


@category("helicopter", options={"landing": {"skids": "skids", "wheels": "wheels"},
                                 "tail": {"long": "a long tail", "short": ""}})
def helicopter(a: Attr):
  cx, rx, ry = -0.3, a.u("rx", 0.45, 0.55), a.u("ry", 0.32, 0.4)
  tail_end = 1.0 if a.opt("tail") == "long" else 0.7
  parts = [shape(poly((cx + rx * 0.6, -0.1), (tail_end, -0.15), (tail_end, 0.0), (cx + rx * 0.6, 0.12)), "body", OUTLINE)]
  parts.append(shape(ellipse(cx, 0, rx, ry, 36)))
  parts.append(shape(path(ellipse(cx, 0, rx, ry, 12, math.pi, 1.5 * math.pi), poly((cx - 0.05, -ry), (cx - 0.05, 0.0))),
                     "glass", PART))
  parts.append(line(poly((cx, -ry), (cx, -ry - 0.15)), "dark", PART, width=6))
  span = a.u("rotor", 0.85, 1.05)
  parts.append(line(poly((cx - span, -ry - 0.15), (cx + span, -ry - 0.15)), "dark", OUTLINE, width=5))
  parts.append(outline(ellipse(tail_end - 0.02, -0.1, 0.14, 0.14, 12), "dark", PART, width=4))
  if a.opt("landing") == "skids":
    for x in (cx - rx * 0.5, cx + rx * 0.5):
      parts.append(line(poly((x, ry * 0.8), (x, ry + 0.2)), "dark", PART, width=4))
    parts.append(line(path(poly((cx - rx * 1.1, ry + 0.2), (cx + rx * 1.1, ry + 0.2)),
                           bezier((cx + rx * 1.1, ry + 0.2), (cx + rx * 1.3, ry + 0.2), (cx + rx * 1.35, ry + 0.1), n=4)),
                      "dark", PART, width=5))
  else:
    for x in (cx - rx * 0.5, cx + rx * 0.5):
      parts.append(line(poly((x, ry * 0.8), (x, ry + 0.1)), "dark", PART, width=4))
      parts += _wheel(x, ry + 0.15, 0.09)
  return parts


@category("train", options={"chimney": yes_no("a chimney"), "carriage": yes_no("a carriage")})
def train(a: Attr):
  ground = 0.45
  carriage = a.opt("carriage") == "yes"
  x0 = -0.2 if carriage else -1.0
  cab_w = a.u("cab_w", 0.35, 0.45) * (0.7 if carriage else 1.0)
  parts = [shape(rect(x0, -0.6, x0 + cab_w, ground - 0.05))]
  parts.append(shape(rect(x0 - 0.05, -0.72, x0 + cab_w + 0.05, -0.6), "accent", PART))
  parts.append(shape(rect(x0 + 0.08, -0.5, x0 + cab_w - 0.08, -0.25), "glass", PART))
  parts.append(shape(rect(x0 + cab_w, a.u("boiler_top", -0.3, -0.15), 0.85, ground - 0.05)))
  parts.append(shape(poly((0.85, ground - 0.25), (1.0, ground + 0.1), (0.85, ground + 0.1)), "dark", PART))
  if a.opt("chimney") == "yes":
    parts.append(shape(poly((0.55, -0.25), (0.7, -0.25), (0.75, -0.55), (0.5, -0.55)), "dark", PART))
  for x in np.linspace(x0 + 0.15, 0.7, 3 if carriage else 4):
    parts += _wheel(float(x), ground + 0.05, a.u("wheel", 0.12, 0.16))
  if carriage:
    parts.append(shape(rect(-1.0, -0.35, -0.28, ground - 0.05), "accent", PART))
    for x in (-0.8, -0.45):
      parts += _wheel(x, ground + 0.05, a.u("wheel", 0.12, 0.16))
  return parts
