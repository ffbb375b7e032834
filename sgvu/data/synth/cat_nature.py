"""SynthSketch part models: plants, fruit, sky and landscape."""

from __future__ import annotations

import math

import numpy as np

from sgvu.data.synth.geometry import (DETAIL, OUTLINE, PART, bezier, crescent, ellipse, lathe, line,
                                      path, poly, rect, rrect, scallop, shape, star)
from sgvu.data.synth.model import Attr, category, yes_no

NATURAL = ("green", "yellow", "orange", "red", "brown")


@category("tree", options={"crown": {"round": "a round crown", "pointed": "a pointed crown", "bushy": "a bushy crown"},
                           "fruit": yes_no("fruit")}, colours=("green", "yellow", "orange", "red"))
def tree(a: Attr):
  tw, cr = a.u("trunk_w", 0.1, 0.18), a.u("crown_r", 0.55, 0.75)
  crown_bottom = a.u("crown_bottom", 0.2, 0.45)
  parts = [shape(poly((-tw * 1.4, 1.0), (tw * 1.4, 1.0), (tw, crown_bottom - 0.2), (-tw, crown_bottom - 0.2)), "trunk")]
  kind = a.opt("crown")
  if kind == "round":
    cy = crown_bottom - cr * a.u("crown_ry", 0.85, 1.05)
    parts.append(shape(ellipse(0, cy, cr, cr * a.u("crown_ry", 0.85, 1.05), 40)))
  elif kind == "pointed":
    tiers = a.pick("tiers", (2, 3))
    for i in range(tiers):
      wb = cr * (1.0 - 0.22 * i)
      yb = crown_bottom - i * 0.45
      parts.append(shape(poly((-wb, yb), (0, yb - 0.75), (wb, yb))))
    cy = crown_bottom - 0.5
  else:
    cy = crown_bottom - cr * 0.9
    parts.append(shape(scallop(0, cy, cr * 1.1, cr * 0.95, a.pick("bumps", (7, 9)), 0.12, phase=a.u("phase", 0, 1))))
  if a.coin("branch"):
    parts.append(line(poly((0, crown_bottom - 0.1), (tw * 2.5, crown_bottom - 0.35)), "trunk", DETAIL, width=4))
  if a.opt("fruit") == "yes":
    for k in range(a.pick("fruits", (3, 4, 5))):
      t = a.u(f"fruit{k}", 0, 2 * math.pi)
      parts.append(shape(ellipse(math.cos(t) * cr * 0.55, cy + math.sin(t) * cr * 0.5, 0.08, n=10), "red", PART))
  return parts


@category("flower", options={"petals": {"five": "five petals", "eight": "eight petals"}, "leaves": yes_no("leaves"),
                             "tips": {"round": "", "pointed": "pointed tips"}},
          colours=("red", "orange", "yellow", "blue", "purple", "pink", "white"))
def flower(a: Attr):
  cy, pr = a.u("head_y", -0.45, -0.3), a.u("petal", 0.3, 0.42)
  parts = [line(bezier((0, cy), (a.u("bend", -0.2, 0.2), 0.3), (0, 1.0), n=10), "leaf", OUTLINE, width=7)]
  if a.opt("leaves") == "yes":
    for s, y in ((-1, 0.45), (1, 0.65)):
      parts.append(shape(ellipse(s * 0.2, y, 0.22, 0.08, 14, rot=-s * 0.5), "leaf", PART))
  n = 5 if a.opt("petals") == "five" else 8
  for k in range(n):
    t = a.u("turn", 0, 1) + k * 2 * math.pi / n
    c, s = math.cos(t), math.sin(t)
    if a.opt("tips") == "round":
      pts = ellipse(c * pr, cy + s * pr, pr * 0.75, pr * (0.45 if n == 5 else 0.3), 16, rot=t)
    else:
      r0, r1, wdt = 0.08, pr * 1.7, pr * (0.4 if n == 5 else 0.28)
      pts = poly((c * r0 - s * wdt * 0.3, cy + s * r0 + c * wdt * 0.3), (c * r1 * 0.55 - s * wdt, cy + s * r1 * 0.55 + c * wdt),
                 (c * r1, cy + s * r1), (c * r1 * 0.55 + s * wdt, cy + s * r1 * 0.55 - c * wdt),
                 (c * r0 + s * wdt * 0.3, cy + s * r0 - c * wdt * 0.3))
    parts.append(shape(pts, "body", OUTLINE if k < 3 else PART))
  parts.append(shape(ellipse(0, cy, pr * 0.4, n=16), "gold", PART))
  return parts


@category("sun", options={"rays": {"straight": "straight rays", "wavy": "wavy rays"}, "face": yes_no("a face")},
          colours=("yellow", "orange", "red"))
def sun(a: Attr):
  r, n = a.u("radius", 0.45, 0.55), a.pick("num_rays", (8, 10, 12))
  parts = [shape(ellipse(0, 0, r, r, 40))]
  r0, r1 = r + 0.1, r + a.u("ray_len", 0.25, 0.4)
  for k in range(n):
    t = k * 2 * math.pi / n + a.u("turn", 0, 1)
    c, s = math.cos(t), math.sin(t)
    if a.opt("rays") == "straight":
      pts = poly((c * r0, s * r0), (c * r1, s * r1))
    else:
      u = np.linspace(0, 1, 12)
      rad = r0 + (r1 - r0) * u
      off = 0.06 * np.sin(u * 2 * math.pi * 1.5)
      pts = np.stack([c * rad - s * off, s * rad + c * off], axis=1)
    parts.append(line(pts, "body", PART, width=6))
  if a.opt("face") == "yes":
    for x in (-r * 0.35, r * 0.35):
      parts.append(shape(ellipse(x, -r * 0.2, 0.05, 0.07, 10), "dark", DETAIL))
    parts.append(line(ellipse(0, 0, r * 0.5, r * 0.5, 10, 0.5, math.pi - 0.5), level=DETAIL, width=3))
  return parts


@category("cloud", options={"rain": yes_no("rain"), "bottom": {"flat": "a flat bottom", "round": ""}},
          colours=("white", "grey", "black", "blue", "pink"))
def cloud(a: Attr):
  w, h = a.u("width", 0.85, 1.0), a.u("height", 0.35, 0.5)
  k = a.pick("bumps", (3, 4, 5))
  top = []
  for i in range(k):
    x0, x1 = -w + 2 * w * i / k, -w + 2 * w * (i + 1) / k
    hump = h * (0.6 + 0.5 * a.u(f"hump{i}"))
    top.append(bezier((x0, 0), (x0, -hump * 1.3), (x1, -hump * 1.3), (x1, 0), n=10))
  if a.opt("bottom") == "flat":
    body = path(*top, poly((w, 0), (w, 0.15), (-w, 0.15)))
  else:
    body = path(*top, bezier((w, 0), (w * 0.5, h * 0.8), (-w * 0.5, h * 0.8), (-w, 0), n=14))
  parts = [shape(body)]
  if a.opt("rain") == "yes":
    for i in range(a.pick("drops", (3, 4, 5))):
      x = -w * 0.7 + i * 0.35
      parts.append(line(poly((x, 0.45), (x - 0.1, 0.75)), "glass", PART, width=5))
  return parts


@category("moon", options={"stars": yes_no("stars"), "face": yes_no("a face")}, colours=("yellow", "white", "orange", "grey"))
def moon(a: Attr):
  r = 0.8
  parts = [shape(crescent(r, a.u("offset", 0.3, 0.55), r * a.u("inner", 0.9, 1.0), 36))]
  if a.opt("face") == "yes":
    parts.append(shape(ellipse(-r * 0.55, -0.15, 0.05, 0.06, 10), "dark", DETAIL))
    parts.append(line(poly((-r * 0.75, 0.15), (-r * 0.55, 0.25)), level=DETAIL, width=3))
  if a.opt("stars") == "yes":
    for i in range(a.pick("num_stars", (2, 3))):
      x, y = 0.55 + 0.2 * (i % 2), -0.6 + i * 0.55
      parts.append(shape(star(x, y, 0.15, 0.06, 5), "gold", PART))
  return parts


@category("mountain", options={"peaks": {"one": "one peak", "two": "two peaks", "three": "three peaks"},
                               "snow": yes_no("snowy tops")}, colours=("grey", "brown", "green", "purple", "blue"))
def mountain(a: Attr):
  n = {"one": 1, "two": 2, "three": 3}[a.opt("peaks")]
  xs = np.linspace(-0.9, 0.9, n + 2)[1:-1] if n > 1 else np.array([a.u("x", -0.2, 0.2)])
  pts = [(-1.0, 0.6)]
  peaks = []
  for i, x in enumerate(xs):
    x = float(x) + a.u(f"dx{i}", -0.1, 0.1)
    y = -a.u(f"peak{i}", 0.4, 0.9)
    if i:
      pts.append(((pts[-1][0] + x) / 2, y * 0.2 + 0.1))
    pts.append((x, y))
    peaks.append((x, y))
  pts.append((1.0, 0.6))
  parts = [shape(poly(*pts))]
  if a.opt("snow") == "yes":
    for x, y in peaks:
      d = 0.25
      parts.append(shape(poly((x, y), (x + d * 0.8, y + d), (x + 0.1, y + d * 0.8), (x - 0.05, y + d * 1.05),
                              (x - d * 0.8, y + d)), "white", PART))
  if a.coin("path"):
    parts.append(line(bezier((0.2, 0.6), (-0.1, 0.4), (0.15, 0.25), (0.0, 0.1), n=10), "light", DETAIL, width=3))
  return parts


@category("leaf", options={"shape": {"oval": "an oval shape", "lobed": "lobes"}, "veins": yes_no("veins")},
          colours=NATURAL)
def leaf(a: Attr):
  length, wdt = a.u("length", 0.75, 0.9), a.u("width", 0.35, 0.55)
  if a.opt("shape") == "oval":
    right = bezier((0, -length), (wdt * 1.3, -length * 0.4), (wdt * 1.1, length * 0.5), (0, length * 0.75), n=20)
    body = lathe(right)
  else:
    body = star(0, 0, length * 0.95, length * a.u("lobe_depth", 0.45, 0.6), 5)
  parts = [shape(body)]
  parts.append(line(poly((0, length * 0.7), (0, 1.0)), "trunk", PART, width=4))
  parts.append(line(poly((0, -length * 0.85), (0, length * 0.7)), "trunk", PART, width=2.5))
  if a.opt("veins") == "yes":
    for y in np.linspace(-0.45, 0.35, 4) * length:
      for s in (-1, 1):
        parts.append(line(poly((0, y + 0.15), (s * wdt * 0.7, y - 0.05)), "trunk", DETAIL, width=2))
  return parts


@category("mushroom", options={"cap": {"round": "a round cap", "flat": "a flat cap"}, "spots": yes_no("spots")},
          colours=("red", "brown", "orange", "yellow", "white", "purple"))
def mushroom(a: Attr):
  cw, sw = a.u("cap_w", 0.85, 1.0), a.u("stem_w", 0.18, 0.3)
  base = a.u("cap_base", -0.1, 0.15)
  ch = a.u("cap_h", 0.7, 0.9) if a.opt("cap") == "round" else a.u("cap_h", 0.3, 0.45)
  parts = [shape(poly((-sw * 1.2, 0.95), (sw * 1.2, 0.95), (sw * 0.85, base), (-sw * 0.85, base)), "light")]
  parts.append(shape(path(bezier((-cw, base), (-cw, base - ch * 1.3), (cw, base - ch * 1.3), (cw, base), n=24),
                          bezier((cw, base), (0, base + 0.15), (-cw, base), n=10))))
  for x in np.linspace(-sw * 0.7, sw * 0.7, 3):
    parts.append(line(poly((x * 2.2, base + 0.06), (x, base + 0.12)), "metal", DETAIL, width=2))
  if a.opt("spots") == "yes":
    for i in range(a.pick("num_spots", (3, 4, 5))):
      x = (-0.6 + 1.2 * (i + 0.5) / 5 + a.u(f"sx{i}", -0.08, 0.08)) * cw
      parts.append(shape(ellipse(x, base - ch * a.u(f"sy{i}", 0.3, 0.7), 0.1, 0.07, 12), "white", PART))
  return parts


@category("cactus", options={"arms": {"one": "one arm", "two": "two arms"}, "pot": yes_no("a pot"),
                             "bloom": yes_no("a flower")}, colours=("green",))
def cactus(a: Attr):
  w, top, bottom = a.u("width", 0.22, 0.3), -0.95, (0.4 if a.opt("pot") == "yes" else 0.95)
  parts = [shape(rrect(-w, top, w, bottom, w))]
  sides = (1,) if a.opt("arms") == "one" else (-1, 1)
  for s in sides:
    aw = w * a.u("arm_w", 0.55, 0.7)
    y, reach = a.u(f"arm_y{s}", -0.4, 0.0), w + 1.6 * aw + a.u(f"reach{s}", 0.08, 0.25)
    up = a.u(f"up{s}", 0.35, 0.55)
    inner, low = reach - 1.6 * aw, y + aw * 1.4
    arm = path(poly((0.0, low)), bezier((0.0, low), (reach, low), (reach, low - aw), n=8),
               ellipse(reach - 0.8 * aw, y - up, 0.8 * aw, 0.8 * aw, 12, 0, -math.pi),
               poly((inner, y), (0.0, y)))
    arm[:, 0] *= s
    parts.append(shape(arm, "body", PART))
  for x, y in ((-w * 0.5, -0.5), (w * 0.4, -0.2), (-w * 0.3, 0.1)):
    parts.append(line(poly((x, y), (x - 0.07, y - 0.05)), "dark", DETAIL, width=2))
  if a.opt("pot") == "yes":
    parts.append(shape(poly((-0.55, 0.45), (0.55, 0.45), (0.42, 1.0), (-0.42, 1.0)), "accent", OUTLINE))
    parts.append(shape(rect(-0.62, 0.35, 0.62, 0.5), "accent", PART))
  if a.opt("bloom") == "yes":
    parts.append(shape(star(0, top, 0.17, 0.08, 5), "red", PART))
  return parts


@category("apple", options={"leaf": yes_no("a leaf"), "bite": yes_no("a bite")}, colours=("red", "green", "yellow"))
def apple(a: Attr):
  w, h = a.u("width", 0.8, 0.95), a.u("height", 0.75, 0.9)
  right = bezier((0, -h * 0.7), (w * 0.6, -h * 1.15), (w * 1.25, -h * 0.3), (w * 0.7, h), (0, h * 0.9), n=28)
  body = lathe(right)
  if a.opt("bite") == "yes":
    c, rb = np.array([w * 1.05, a.u("bite_y", -0.2, 0.2)]), a.u("bite_r", 0.3, 0.4)
    d = body - c
    dist = np.linalg.norm(d, axis=1, keepdims=True)
    body = np.where(dist < rb, c + d / np.maximum(dist, 1e-6) * rb, body).astype(np.float32)
  parts = [shape(body)]
  parts.append(line(bezier((0, -h * 0.7), (0.02, -h * 0.95), (0.12, -h * 1.1), n=6), "trunk", PART, width=6))
  if a.opt("leaf") == "yes":
    parts.append(shape(ellipse(0.3, -h * 1.0, 0.2, 0.08, 14, rot=-0.4), "leaf", PART))
  parts.append(line(bezier((-w * 0.5, -h * 0.3), (-w * 0.6, 0.0), (-w * 0.45, h * 0.3), n=6), "white", DETAIL, width=4))
  return parts


@category("pear", options={"leaf": yes_no("a leaf"), "stem": {"long": "a long stem", "short": ""}},
          colours=("green", "yellow", "brown", "red"))
def pear(a: Attr):
  top_w, bot_w = a.u("top_w", 0.25, 0.35), a.u("bot_w", 0.65, 0.8)
  right = bezier((0, -0.8), (top_w * 1.6, -0.8), (top_w, -0.1), (bot_w * 1.3, 0.3), (bot_w * 0.9, 0.95), (0, 0.95), n=30)
  parts = [shape(lathe(right))]
  sl = a.u("stem", 0.25, 0.35) if a.opt("stem") == "long" else 0.1
  parts.append(line(poly((0, -0.8), (0.05, -0.8 - sl)), "trunk", PART, width=6))
  if a.opt("leaf") == "yes":
    parts.append(shape(ellipse(0.25, -0.82 - sl * 0.6, 0.2, 0.08, 14, rot=-0.3), "leaf", PART))
  return parts


@category("banana", options={"peeled": yes_no("a peeled top"), "spots": yes_no("brown spots")},
          colours=("yellow", "green", "brown"))
def banana(a: Attr):
  bend, thick = a.u("bend", 0.35, 0.6), a.u("thick", 0.22, 0.32)
  outer = bezier((-0.95, -0.5), (-0.5, bend + 0.2), (0.5, bend + 0.2), (0.95, -0.5), n=24)
  inner = bezier((0.9, -0.55), (0.5, bend + 0.2 - thick * 2.2), (-0.5, bend + 0.2 - thick * 2.2), (-0.85, -0.55), n=24)
  parts = [shape(np.concatenate([outer, inner]))]
  parts.append(shape(rect(-1.0, -0.62, -0.85, -0.48), "trunk", PART))
  if a.opt("peeled") == "yes":
    for k, dx in enumerate((-0.18, 0.0, 0.18)):
      parts.append(shape(poly((0.88, -0.52), (0.88 + dx + 0.1, -0.9 + abs(dx)), (0.95 + dx * 0.3, -0.55)), "body", PART))
    parts.append(shape(ellipse(0.95, -0.65, 0.08, 0.14, 12), "light", PART))
  if a.opt("spots") == "yes":
    for i in range(4):
      t = (i + 0.5) / 4
      parts.append(shape(ellipse(-0.6 + 1.2 * t, bend * 0.5 + 0.05 - abs(t - 0.5) * 0.3, 0.05, 0.04, 8), "trunk", DETAIL))
  return parts


@category("carrot", options={"leaves": {"two": "two leaves", "three": "three leaves"}, "ridges": yes_no("ridges")},
          colours=("orange", "yellow", "purple", "red"))
def carrot(a: Attr):
  w, top = a.u("width", 0.25, 0.35), a.u("top", -0.55, -0.4)
  parts = []
  n = 2 if a.opt("leaves") == "two" else 3
  for k in range(n):
    ang = -math.pi / 2 + (k - (n - 1) / 2) * 0.5
    tip = (math.cos(ang) * 0.5, top + math.sin(ang) * 0.5)
    parts.append(shape(ellipse((tip[0]) / 2, (top + tip[1]) / 2, 0.28, 0.08, 14, rot=ang), "leaf", PART))
  parts.append(shape(path(bezier((-w, top), (-w, top - 0.1), (w, top - 0.1), (w, top), n=8),
                          bezier((w, top), (w * 0.8, 0.3), (0.02, 1.0), n=12), bezier((-0.02, 1.0), (-w * 0.8, 0.3), (-w, top), n=12))))
  if a.opt("ridges") == "yes":
    for i, y in enumerate(np.linspace(top + 0.25, 0.6, 4)):
      half = w * (1 - (y - top) / (1.0 - top)) * 0.9
      s = 1 if i % 2 else -1
      parts.append(line(poly((s * half, y), (s * half * 0.3, y + 0.04)), "trunk", PART, width=3))
  return parts
