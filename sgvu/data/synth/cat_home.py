"""SynthSketch part models: buildings, furniture and household objects."""

from __future__ import annotations

import math

import numpy as np

from sgvu.data.synth.geometry import (DETAIL, OUTLINE, PART, bezier, ellipse, lathe, line, outline,
                                      path, poly, rect, rrect, shape, wave)
from sgvu.data.synth.model import Attr, category, yes_no


@category("house", options={"roof": {"pointed": "a pointed roof", "flat": "a flat roof"},
                            "chimney": yes_no("a chimney"),
                            "windows": {"one": "one window", "two": "two windows"}})
def house(a: Attr):
  w, h = a.u("width", 0.6, 0.95), a.u("height", 0.7, 1.1)
  y0 = 0.9 - h
  parts = []
  rh = a.u("roof_height", 0.4, 0.75) if a.opt("roof") == "pointed" else 0.18
  if a.opt("chimney") == "yes":
    cx = a.u("chimney_x", 0.2, 0.55) * w
    parts.append(shape(rect(cx, y0 - rh * 0.85, cx + 0.16, y0 - 0.02), "accent", PART))
  parts.append(shape(rect(-w, y0, w, 0.9)))
  if a.opt("roof") == "pointed":
    peak = a.u("peak", -0.15, 0.15)
    parts.append(shape(poly((-w - 0.12, y0), (peak, y0 - rh), (w + 0.12, y0)), "accent"))
  else:
    parts.append(shape(rect(-w - 0.08, y0 - rh, w + 0.08, y0), "accent"))
  dx, dw, dh = a.u("door_x", -0.5, 0.5) * w, a.u("door_w", 0.14, 0.22), h * a.u("door_h", 0.4, 0.6)
  parts.append(shape(rect(dx - dw, 0.9 - dh, dx + dw, 0.9), "wood", PART))
  parts.append(shape(ellipse(dx + dw * 0.55, 0.9 - dh * 0.45, 0.03, n=8), "dark", DETAIL))
  side = -1 if dx > 0 else 1
  xs = [side * w * 0.55] if a.opt("windows") == "one" else [-side * w * 0.0 + side * w * 0.3, side * w * 0.72]
  ws = 0.14 if a.opt("windows") == "two" else 0.2
  wy = y0 + h * a.u("window_y", 0.22, 0.35)
  for x in xs:
    parts.append(shape(rect(x - ws, wy - ws, x + ws, wy + ws), "glass", PART))
    parts.append(line(poly((x, wy - ws), (x, wy + ws)), level=DETAIL))
    parts.append(line(poly((x - ws, wy), (x + ws, wy)), level=DETAIL))
  return parts


@category("chair", options={"arms": {"yes": "arms", "no": "no arms"},
                            "back": {"square": "a square back", "round": "a round back", "tall": "a tall back"},
                            "legs": {"four": "four legs", "one": "one central leg"}})
def chair(a: Attr):
  w, seat_y = a.u("width", 0.45, 0.65), a.u("seat_y", 0.0, 0.2)
  th = a.u("seat_thick", 0.08, 0.15)
  back_h = {"square": 0.7, "round": 0.75, "tall": 1.05}[a.opt("back")] * a.u("back_scale", 0.85, 1.1)
  top = seat_y - back_h
  parts = []
  if a.opt("back") == "round":
    parts.append(shape(path(ellipse(0, top + w * 0.8, w * 0.9, w * 0.8, 20, math.pi, 2 * math.pi),
                            poly((w * 0.9, seat_y), (-w * 0.9, seat_y)))))
  else:
    parts.append(shape(rect(-w * 0.9, top, w * 0.9, seat_y)))
    if a.opt("back") == "tall":
      for x in (-w * 0.3, w * 0.3):
        parts.append(line(poly((x, top + 0.1), (x, seat_y - 0.05)), level=DETAIL))
  parts.append(shape(poly((-w * 0.9, seat_y), (w * 0.9, seat_y), (w * 1.05, seat_y + th * 2),
                          (-w * 1.05, seat_y + th * 2)), "accent"))
  parts.append(shape(rect(-w * 1.05, seat_y + th * 2, w * 1.05, seat_y + th * 3), "accent", PART))
  foot = 0.95
  if a.opt("legs") == "four":
    for x, bottom in ((-w, foot), (w * 0.92, foot), (-w * 0.7, foot - 0.12), (w * 0.62, foot - 0.12)):
      parts.append(shape(rect(x, seat_y + th * 3, x + 0.07, bottom), "wood", PART))
  else:
    parts.append(shape(rect(-0.05, seat_y + th * 3, 0.05, foot - 0.1), "metal", PART))
    for x in (-w, 0.0, w):
      parts.append(line(poly((0, foot - 0.1), (x, foot)), level=PART, width=5))
  if a.opt("arms") == "yes":
    ay = seat_y - a.u("arm_h", 0.22, 0.35)
    for s in (-1, 1):
      parts.append(shape(rect(min(s * w * 0.9, s * w * 1.15), ay, max(s * w * 0.9, s * w * 1.15), ay + 0.07),
                         "accent", PART))
      parts.append(line(poly((s * w * 1.05, ay + 0.07), (s * w * 1.05, seat_y + th)), level=PART))
  return parts


@category("table", options={"legs": {"four": "four legs", "one": "one central leg"},
                            "top": {"square": "", "round": "a round top"},
                            "drawer": yes_no("a drawer")})
def table(a: Attr):
  w, ty, th = a.u("width", 0.8, 1.0), a.u("top_y", -0.3, 0.0), a.u("thick", 0.06, 0.12)
  parts = []
  if a.opt("top") == "round":
    parts.append(shape(ellipse(0, ty, w, w * a.u("depth", 0.2, 0.35), 36)))
  else:
    d = w * a.u("depth", 0.15, 0.3)
    parts.append(shape(poly((-w + d, ty - d), (w - d, ty - d), (w, ty + d * 0.4), (-w, ty + d * 0.4))))
  edge = ty + 0.1
  parts.append(shape(rect(-w * 0.95, edge - 0.03, w * 0.95, edge + th), "accent", PART))
  if a.opt("legs") == "four":
    for x, b in ((-w * 0.88, 0.95), (w * 0.8, 0.95), (-w * 0.6, 0.8), (w * 0.52, 0.8)):
      parts.append(shape(rect(x, edge + th, x + 0.08, b), "wood", PART))
  else:
    parts.append(shape(rect(-0.06, edge + th, 0.06, 0.9), "wood", PART))
    parts.append(shape(ellipse(0, 0.92, w * 0.45, 0.06, 24), "wood", PART))
  if a.opt("drawer") == "yes":
    parts.append(shape(rect(-w * 0.35, edge + th, w * 0.35, edge + th + 0.16), "accent", DETAIL))
    parts.append(shape(ellipse(0, edge + th + 0.08, 0.03, n=8), "dark", DETAIL))
  return parts


@category("lamp", options={"shade": {"cone": "a cone shade", "drum": "a drum shade"},
                           "base": {"round": "a round base", "square": "a square base"}})
def lamp(a: Attr):
  sw, sh, stem = a.u("shade_w", 0.45, 0.7), a.u("shade_h", 0.4, 0.6), a.u("stem", 0.7, 1.0)
  top = 0.85 - stem - sh
  parts = [shape(rect(-0.04, top + sh, 0.04, 0.85), "metal", PART)]
  if a.opt("base") == "round":
    parts.append(shape(ellipse(0, 0.88, a.u("base_w", 0.3, 0.45), 0.08, 24), "accent", OUTLINE))
  else:
    bw = a.u("base_w", 0.3, 0.45)
    parts.append(shape(rect(-bw, 0.8, bw, 0.95), "accent", OUTLINE))
  if a.opt("shade") == "cone":
    parts.append(shape(poly((-sw * 0.45, top), (sw * 0.45, top), (sw, top + sh), (-sw, top + sh))))
  else:
    parts.append(shape(rect(-sw * 0.8, top, sw * 0.8, top + sh)))
  if a.coin("chain"):
    x = sw * 0.5
    parts.append(line(poly((x, top + sh), (x, top + sh + 0.25)), level=DETAIL, width=2))
  return parts


@category("bed", options={"headboard": {"tall": "a tall headboard", "low": ""},
                          "pillows": {"one": "one pillow", "two": "two pillows"},
                          "footboard": yes_no("a footboard")})
def bed(a: Attr):
  L, mh = a.u("length", 0.9, 1.0), a.u("mattress_h", 0.15, 0.25)
  base = 0.45
  hb = a.u("head_h", 0.65, 0.9) if a.opt("headboard") == "tall" else a.u("head_h", 0.3, 0.45)
  parts = [shape(rrect(-L - 0.1, base - hb - mh, -L + 0.02, base + 0.25, 0.08), "wood")]
  parts.append(shape(rect(-L, base, L, base + 0.22), "wood"))
  parts.append(shape(rrect(-L, base - mh, L, base + 0.02, 0.05), "light", PART))
  n = 1 if a.opt("pillows") == "one" else 2
  for i in range(n):
    parts.append(shape(ellipse(-L + 0.28 + i * 0.12, base - mh - 0.06 + i * 0.03, 0.22, 0.09, 20),
                       "light", DETAIL))
  bx = -L + a.u("blanket_x", 0.55, 0.8)
  parts.append(shape(path(poly((bx, base - mh - 0.02), (L + 0.02, base - mh - 0.02)),
                          poly((L + 0.02, base + 0.12), (bx, base + 0.12))), "body", PART))
  if a.opt("footboard") == "yes":
    parts.append(shape(rrect(L - 0.02, base - mh - 0.12, L + 0.1, base + 0.25, 0.05), "wood", PART))
  for x in (-L, L - 0.08):
    parts.append(shape(rect(x, base + 0.22, x + 0.08, base + 0.38), "wood", PART))
  return parts


@category("door", options={"panels": {"two": "two panels", "four": "four panels"},
                           "window": yes_no("a small window"),
                           "top": {"flat": "", "arched": "an arched top"}})
def door(a: Attr):
  w, h = a.u("width", 0.42, 0.6), 0.95

  def outline_of(half_w: float, top: float):
    if a.opt("top") == "arched":
      return path(ellipse(0, top + half_w, half_w, half_w, 20, math.pi, 2 * math.pi), poly((half_w, h), (-half_w, h)))
    return rect(-half_w, top, half_w, h)

  parts = [shape(outline_of(w + 0.08, -h - 0.08), "wood", OUTLINE), shape(outline_of(w, -h))]
  rows = 1 if a.opt("panels") == "two" else 2
  y_start = -h + (w + 0.1 if a.opt("top") == "arched" else 0.15)
  if a.opt("window") == "yes":
    parts.append(shape(ellipse(0, y_start + 0.2, w * 0.45, 0.16, 20), "glass", PART))
    y_start += 0.45
  ph = (h - 0.12 - y_start) / (2 * rows) - 0.04
  for r in range(2 * rows):
    y = y_start + r * (ph + 0.08)
    for x0, x1 in ((-w + 0.1, -0.05), (0.05, w - 0.1)) if rows == 2 else ((-w + 0.1, w - 0.1),):
      parts.append(outline(rect(x0, y, x1, y + ph), level=DETAIL, width=2))
  kx = w * 0.72 * a.pick("knob_side", (-1, 1))
  parts.append(shape(ellipse(kx, a.u("knob_y", 0.0, 0.15), 0.05, n=10), "gold", PART))
  return parts


@category("window", options={"panes": {"two": "two panes", "four": "four panes", "six": "six panes"},
                             "curtains": yes_no("curtains"), "top": {"flat": "", "arched": "an arched top"}})
def window(a: Attr):
  w, h = a.u("width", 0.55, 0.8), a.u("height", 0.6, 0.85)
  arched = a.opt("top") == "arched"
  frame = (path(ellipse(0, -h + w, w, w, 20, math.pi, 2 * math.pi), poly((w, h), (-w, h))) if arched
           else rect(-w, -h, w, h))
  parts = [shape(frame)]
  inner = w - 0.08
  glass = (path(ellipse(0, -h + w, inner, inner, 20, math.pi, 2 * math.pi), poly((inner, h - 0.08), (-inner, h - 0.08)))
           if arched else rect(-inner, -h + 0.08, inner, h - 0.08))
  parts.append(shape(glass, "glass", PART))
  cols, rows = {"two": (2, 1), "four": (2, 2), "six": (2, 3)}[a.opt("panes")]
  parts.append(line(poly((0, -h + (0 if arched else 0.08)), (0, h - 0.08)), level=PART, width=4))
  for r in range(1, rows):
    y = -h + 0.08 + r * (2 * h - 0.16) / rows
    parts.append(line(poly((-inner, y), (inner, y)), level=DETAIL, width=4))
  parts.append(shape(rect(-w - 0.12, h, w + 0.12, h + 0.1), "accent", PART))
  if a.opt("curtains") == "yes":
    for s in (-1, 1):
      x0, x1 = s * (w + 0.15), s * (w - a.u("curtain_w", 0.2, 0.35))
      parts.append(shape(path(poly((x0, -h - 0.1), (x1, -h - 0.1)), bezier((x1, -h - 0.1), (x1 * 0.9, 0), (x0, h * 0.6)),
                              poly((x0, h * 0.6),)), "accent", PART))
  return parts


@category("clock", options={"kind": {"wall": "", "alarm": "bells on top"},
                            "marks": {"four": "four marks", "twelve": "twelve marks"}})
def clock(a: Attr):
  r = a.u("radius", 0.65, 0.8)
  parts = []
  if a.opt("kind") == "alarm":
    for s in (-1, 1):
      parts.append(shape(ellipse(s * r * 0.7, -r * 0.95, 0.22, 0.16, 20, rot=s * 0.5), "metal", PART))
      parts.append(line(poly((s * r * 0.6, r * 0.8), (s * r * 0.8, r + 0.15)), level=PART, width=5))
  parts.append(shape(ellipse(0, 0, r, r, 44)))
  parts.append(shape(ellipse(0, 0, r * 0.85, r * 0.85, 40), "light", PART))
  n = 4 if a.opt("marks") == "four" else 12
  for k in range(n):
    t = k * 2 * math.pi / n
    c, s = math.cos(t), math.sin(t)
    parts.append(line(poly((c * r * 0.7, s * r * 0.7), (c * r * 0.8, s * r * 0.8)), level=DETAIL, width=3))
  for name, length in (("hour", 0.45), ("minute", 0.7)):
    t = a.u(name, 0, 2 * math.pi)
    parts.append(line(poly((0, 0), (math.cos(t) * r * length, math.sin(t) * r * length)), level=PART, width=5))
  return parts


@category("bottle", options={"neck": {"long": "a long neck", "short": "a short neck"},
                             "label": yes_no("a label")})
def bottle(a: Attr):
  w = a.u("width", 0.3, 0.45)
  neck = a.u("neck_len", 0.45, 0.6) if a.opt("neck") == "long" else a.u("neck_len", 0.15, 0.25)
  nw = w * a.u("neck_w", 0.35, 0.5)
  shoulder = -0.9 + neck + 0.15
  right = path(poly((nw, -0.85)), poly((nw, -0.9 + neck)), bezier((nw, -0.9 + neck), (w, -0.9 + neck),
                                                                    (w, shoulder + 0.2), n=8),
               poly((w, 0.85)), bezier((w, 0.85), (w, 0.95), (w - 0.1, 0.95), n=4), poly((0, 0.95)))
  parts = [shape(lathe(right[:-1]))]
  parts.append(shape(rect(-nw - 0.03, -0.98, nw + 0.03, -0.85), "accent", PART))
  if a.opt("label") == "yes":
    ly = a.u("label_y", 0.05, 0.35)
    parts.append(shape(rect(-w, ly - 0.2, w, ly + 0.2), "light", PART))
    parts.append(line(poly((-w * 0.5, ly), (w * 0.5, ly)), level=DETAIL, width=2))
  return parts


@category("vase", options={"handles": {"two": "two handles", "none": ""},
                           "neck": {"wide": "a wide mouth", "narrow": "a narrow neck"}})
def vase(a: Attr):
  belly, by = a.u("belly", 0.45, 0.7), a.u("belly_y", 0.1, 0.4)
  nw = a.u("neck_w", 0.3, 0.45) if a.opt("neck") == "wide" else a.u("neck_w", 0.12, 0.2)
  right = path(poly((nw + 0.06, -0.9)), bezier((nw, -0.8), (nw * 0.9, -0.4), (belly * 1.2, by - 0.2), (belly, by + 0.3),
                                               (belly * 0.5, 0.9), n=22), poly((0.0, 0.9)))
  parts = [shape(lathe(right[:-1]))]
  parts.append(line(wave(-belly * 0.8, belly * 0.8, by, 0.05, 3), "accent", DETAIL))
  if a.opt("handles") == "two":
    for s in (-1, 1):
      parts.append(line(bezier((s * nw, -0.7), (s * (belly + 0.35), -0.75), (s * belly * 0.95, by - 0.2), n=12),
                        "body", PART, width=6))
  return parts


@category("teapot", options={"spout": {"long": "a long spout", "short": "a short spout"},
                             "lid": {"knob": "", "flat": "a flat lid"}})
def teapot(a: Attr):
  rx, ry = a.u("rx", 0.55, 0.7), a.u("ry", 0.4, 0.55)
  cy = 0.3
  parts = [shape(ellipse(0, cy, rx, ry, 40))]
  sl = a.u("spout", 0.45, 0.6) if a.opt("spout") == "long" else a.u("spout", 0.2, 0.3)
  parts.append(shape(poly((rx * 0.85, cy + 0.05), (rx + sl, cy - ry - 0.1), (rx + sl + 0.08, cy - ry - 0.05),
                          (rx * 0.9, cy + 0.25)), "body", PART))
  parts.append(line(path(bezier((-rx * 0.9, cy - 0.2), (-rx - 0.45, cy - 0.15), (-rx - 0.3, cy + 0.3),
                                (-rx * 0.85, cy + 0.25), n=14)), "body", PART, width=7))
  parts.append(shape(ellipse(0, cy - ry + 0.02, rx * 0.5, 0.1, 24), "accent", PART))
  if a.opt("lid") == "knob":
    parts.append(shape(ellipse(0, cy - ry - 0.1, 0.08, 0.07, 12), "accent", DETAIL))
  return parts


@category("cup", options={"handle": {"yes": "a handle", "no": "no handle"},
                          "saucer": yes_no("a saucer"), "steam": yes_no("steam")})
def cup(a: Attr):
  top_w, bot_w, h = a.u("top_w", 0.5, 0.65), a.u("bot_w", 0.3, 0.5), a.u("height", 0.8, 1.1)
  y0, y1 = 0.75 - h, 0.75
  parts = []
  if a.opt("saucer") == "yes":
    parts.append(shape(ellipse(0, y1, top_w + 0.35, 0.12, 30), "accent", PART))
  parts.append(shape(path(poly((-top_w, y0), (top_w, y0)), bezier((top_w, y0), (bot_w * 1.1, y1 - 0.05), (bot_w * 0.8, y1), n=6),
                          poly((-bot_w * 0.8, y1)), bezier((-bot_w * 0.8, y1), (-bot_w * 1.1, y1 - 0.05), (-top_w, y0), n=6))))
  parts.append(shape(ellipse(0, y0, top_w, 0.08, 28), "dark", PART))
  if a.opt("handle") == "yes":
    hx = (top_w + bot_w) / 2
    parts.append(line(bezier((hx - 0.02, y0 + h * 0.2), (hx + 0.45, y0 + h * 0.1), (hx + 0.35, y0 + h * 0.75),
                             (bot_w * 0.95, y0 + h * 0.75), n=14), "body", PART, width=8))
  if a.opt("steam") == "yes":
    for x in (-0.15, 0.12):
      parts.append(line(np.flip(wave(y0 - 0.55, y0 - 0.12, x, 0.05, 1.5), axis=1), "metal", DETAIL, width=3))
  return parts
