"""SynthSketch part models: blades, music, toys, treats and landmarks."""

from __future__ import annotations

import math

import numpy as np

from sgvu.data.synth.geometry import (DETAIL, OUTLINE, PART, bezier, ellipse, lathe, line, outline, path, poly,
                                      rect, rotate, rrect, shape, star)
from sgvu.data.synth.model import Attr, category, yes_no


@category("scissors", options={"handles": {"round": "round handles", "long": "long handles"},
                               "state": {"open": "open blades", "closed": ""}})
def scissors(a: Attr):
  ang = a.u("open", 0.35, 0.6) if a.opt("state") == "open" else a.u("open", 0.05, 0.12)
  bl = a.u("blade", 0.85, 1.0)
  parts = []
  for sgn in (-1, 1):
    blade = poly((0, -0.06), (bl, -0.02), (bl, 0.0), (0, 0.06))
    blade = rotate(blade, sgn * ang / 2)
    parts.append(shape(blade, "metal", OUTLINE))
    hx = -0.35
    if a.opt("handles") == "round":
      ring = ellipse(hx, 0, 0.2, 0.2, 20)
    else:
      ring = ellipse(hx - 0.05, 0, 0.3, 0.14, 20)
    ring = rotate(ring, -sgn * ang / 2 + sgn * 0.35)
    parts.append(outline(ring, "body", OUTLINE, width=9))
    arm = rotate(poly((0, 0), (hx + 0.18, 0)), -sgn * ang / 2 + sgn * 0.35)
    parts.append(line(arm, "body", PART, width=9))
  parts.append(shape(ellipse(0, 0, 0.05, n=10), "dark", DETAIL))
  return parts


@category("saw", options={"handle": {"closed": "a closed handle", "open": ""}, "teeth": {"fine": "fine teeth", "coarse": "coarse teeth"}})
def saw(a: Attr):
  x0, x1, top = -0.35, 1.0, a.u("top", -0.3, -0.2)
  tip_h = a.u("tip_h", 0.12, 0.2)
  n = 14 if a.opt("teeth") == "fine" else 7
  xs = np.linspace(x1, x0, 2 * n + 1)
  teeth = [(float(x), 0.3 + (0.08 if i % 2 else 0.0) * (1.0 if n == 14 else 1.8)) for i, x in enumerate(xs)]
  parts = [shape(poly((x0, top), (x1, 0.3 - tip_h), *teeth), "metal")]
  parts.append(shape(ellipse(-0.2, -0.05, 0.04, n=8), "dark", DETAIL))
  grip = rrect(-1.0, -0.5, -0.3, 0.45, 0.15)
  parts.append(shape(grip))
  if a.opt("handle") == "closed":
    parts.append(shape(rrect(-0.8, -0.28, -0.5, 0.25, 0.1), "light", PART))
  else:
    parts.append(shape(rect(-1.02, -0.2, -0.65, 0.47), "light", PART))
  return parts


@category("sword", options={"guard": {"cross": "a cross guard", "round": "a round guard"},
                            "blade": {"straight": "a straight blade", "curved": "a curved blade"}})
def sword(a: Attr):
  bw, gy = a.u("blade_w", 0.09, 0.14), a.u("guard_y", 0.35, 0.45)
  if a.opt("blade") == "straight":
    blade = poly((-bw, gy), (-bw, -0.8), (0, -1.0), (bw, -0.8), (bw, gy))
  else:
    left = bezier((-bw, gy), (-bw - 0.05, -0.4), (0.15, -0.8), (0.35, -1.0), n=14)
    right = bezier((0.35, -1.0), (0.25, -0.7), (bw + 0.05, -0.4), (bw, gy), n=14)
    blade = path(left, right)
  parts = [shape(blade, "metal")]
  parts.append(line(poly((0, gy - 0.05), (0, -0.6)), "light", DETAIL, width=2))
  gw = a.u("guard_w", 0.3, 0.4)
  if a.opt("guard") == "cross":
    parts.append(shape(rrect(-gw, gy, gw, gy + 0.09, 0.04), "body", OUTLINE))
  else:
    parts.append(shape(ellipse(0, gy + 0.05, gw * 0.6, 0.09, 20)))
  parts.append(shape(rect(-0.06, gy + 0.09, 0.06, 0.85), "dark", PART))
  for y in np.linspace(gy + 0.2, 0.78, 4):
    parts.append(line(poly((-0.06, y), (0.06, y + 0.05)), "metal", DETAIL, width=2))
  parts.append(shape(ellipse(0, 0.9, 0.09, n=12), "gold", PART))
  return parts


@category("guitar", options={"cutaway": yes_no("a cutaway"), "head": {"straight": "", "angled": "an angled head"}})
def guitar(a: Attr):
  lw, uw, waist = a.u("lower", 0.45, 0.52), a.u("upper", 0.33, 0.4), a.u("waist", 0.25, 0.3)
  right = bezier((0, -0.05), (uw * 1.3, -0.05), (uw * 1.2, 0.25), (waist, 0.3), (lw * 1.4, 0.4), (lw * 1.3, 1.0), (0, 1.0), n=34)
  body = lathe(right)
  if a.opt("cutaway") == "yes":
    c, r = np.array([uw * 0.9, 0.0]), 0.22
    d = body - c
    dist = np.linalg.norm(d, axis=1, keepdims=True)
    body = np.where(dist < r, c + d / np.maximum(dist, 1e-6) * r, body).astype(np.float32)
  parts = [shape(rect(-0.06, -0.85, 0.06, 0.2), "wood", OUTLINE), shape(body)]
  head_top = -1.05
  if a.opt("head") == "angled":
    parts.append(shape(poly((-0.08, -0.85), (0.08, -0.85), (0.2, head_top), (0.03, head_top - 0.02)), "dark", PART))
  else:
    parts.append(shape(rrect(-0.1, head_top, 0.1, -0.82, 0.03), "dark", PART))
  parts.append(shape(ellipse(0, 0.3, 0.13, n=18), "dark", PART))
  parts.append(shape(rect(-0.15, 0.68, 0.15, 0.74), "dark", DETAIL))
  for x in (-0.03, 0.0, 0.03):
    parts.append(line(poly((x, -0.85), (x, 0.7)), "light", DETAIL, width=1))
  return parts


@category("anchor", options={"stock": yes_no("a cross bar"), "rope": yes_no("a rope")}, colours=("black", "grey", "blue", "brown", "red"))
def anchor(a: Attr):
  top, arm_y, span = -0.65, a.u("arm_y", 0.4, 0.55), a.u("span", 0.6, 0.75)
  parts = [shape(rect(-0.07, top, 0.07, arm_y + 0.4))]
  parts.append(outline(ellipse(0, top - 0.17, 0.15, n=16), "body", OUTLINE, width=8))
  arc = ellipse(0, arm_y - 0.1, span, 0.5, 20, 0.15, math.pi - 0.15)
  parts.append(line(arc, "body", OUTLINE, width=12))
  for end, sgn in ((arc[0], 1), (arc[-1], -1)):
    parts.append(shape(poly(end + (0.0, -0.05), end + (sgn * 0.1, -0.3), end + (-sgn * 0.15, 0.02)), "body", PART))
  if a.opt("stock") == "yes":
    parts.append(shape(rrect(-0.4, top + 0.1, 0.4, top + 0.2, 0.04), "body", PART))
  if a.opt("rope") == "yes":
    t = np.linspace(0, 1, 20)
    rope = np.stack([0.15 * np.sin(t * 3 * math.pi) + 0.05, top - 0.3 + t * 1.0], axis=1)
    parts.append(line(rope, "wood", PART, width=4))
  return parts


@category("kite", options={"shape": {"diamond": "a diamond shape", "delta": "a triangle shape"}, "bows": yes_no("bows on its tail")})
def kite(a: Attr):
  w, cy = a.u("width", 0.45, 0.6), a.u("cross_y", -0.55, -0.4)
  if a.opt("shape") == "diamond":
    body = poly((0, -1.0), (w, cy), (0, 0.35), (-w, cy))
    bottom = (0, 0.35)
    spars = [((0, -1.0), (0, 0.35)), ((-w, cy), (w, cy))]
  else:
    body = poly((0, -1.0), (w * 1.2, 0.1), (0, -0.05), (-w * 1.2, 0.1))
    bottom = (0, -0.05)
    spars = [((0, -1.0), (0, -0.05)), ((-w * 0.8, -0.2), (w * 0.8, -0.2))]
  parts = [shape(body)]
  for p, q in spars:
    parts.append(line(poly(p, q), "wood", PART, width=3))
  t = np.linspace(0, 1, 24)
  tail = np.stack([bottom[0] + 0.15 * np.sin(t * 2.5 * math.pi + a.u("phase", 0, 3)), bottom[1] + t * (0.95 - bottom[1])], axis=1)
  parts.append(line(tail, "dark", PART, width=2.5))
  if a.opt("bows") == "yes":
    for i in (6, 12, 18):
      x, y = tail[i]
      parts.append(shape(poly((x - 0.1, y - 0.06), (x + 0.1, y + 0.06), (x + 0.1, y - 0.06), (x - 0.1, y + 0.06)), "accent", PART))
  return parts


@category("balloon", options={"shape": {"round": "", "heart": "a heart shape"}, "ribbon": yes_no("a ribbon")})
def balloon(a: Attr):
  r = a.u("radius", 0.45, 0.55)
  cy = -0.45
  if a.opt("shape") == "round":
    body = ellipse(0, cy, r, r * a.u("stretch", 1.1, 1.25), 36)
    bottom = cy + r * a.u("stretch", 1.1, 1.25)
  else:
    t = np.linspace(0, 2 * math.pi, 48, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    body = (np.stack([x, y], axis=1) * (r / 16)).astype(np.float32) + (0, cy)
    bottom = cy + 17 * r / 16
  parts = [shape(body)]
  parts.append(shape(poly((0, bottom - 0.02), (0.07, bottom + 0.08), (-0.07, bottom + 0.08)), "body", PART))
  t = np.linspace(0, 1, 18)
  string = np.stack([0.08 * np.sin(t * 3 * math.pi), bottom + 0.08 + t * (1.0 - bottom - 0.08)], axis=1)
  parts.append(line(string, "dark", OUTLINE, width=2))
  parts.append(line(ellipse(-r * 0.35, cy - r * 0.3, r * 0.4, r * 0.45, 8, math.pi + 0.3, 1.5 * math.pi), "white", DETAIL, width=4))
  if a.opt("ribbon") == "yes":
    y = bottom + 0.12
    parts.append(shape(poly((0, y), (-0.18, y - 0.08), (-0.18, y + 0.08)), "accent", PART))
    parts.append(shape(poly((0, y), (0.18, y - 0.08), (0.18, y + 0.08)), "accent", PART))
  return parts


@category("ice cream", options={"scoops": {"one": "one scoop", "two": "two scoops", "three": "three scoops"},
                                "cherry": yes_no("a cherry")})
def ice_cream(a: Attr):
  cw, tip = a.u("cone_w", 0.3, 0.4), 1.0
  n = {"one": 1, "two": 2, "three": 3}[a.opt("scoops")]
  cone_top = 0.1
  parts = [shape(poly((-cw, cone_top), (cw, cone_top), (0, tip)), "skin")]
  for d in (-0.1, 0.1):
    parts.append(line(poly((-cw * 0.7 + d, cone_top + 0.1), (cw * 0.3 + d, cone_top + 0.55)), "wood", DETAIL, width=2))
    parts.append(line(poly((cw * 0.7 + d, cone_top + 0.1), (-cw * 0.3 + d, cone_top + 0.55)), "wood", DETAIL, width=2))
  sr = cw * a.u("scoop", 1.05, 1.2)
  y = cone_top - sr * 0.5
  for i in range(n):
    role = "body" if i % 2 == 0 else "accent"
    parts.append(shape(path(ellipse(0, y, sr, sr * 0.85, 24, math.pi * 0.9, math.pi * 2.1),
                            bezier((sr * 0.95, y + 0.15), (0, y + 0.3), (-sr * 0.95, y + 0.15), n=8)), role, OUTLINE if i == 0 else PART))
    y -= sr * 1.05
  if a.opt("cherry") == "yes":
    parts.append(shape(ellipse(0, y + sr * 0.55, 0.1, n=12), "red", PART))
    parts.append(line(poly((0, y + sr * 0.45), (0.1, y + sr * 0.2)), "trunk", DETAIL, width=2))
  return parts


@category("cake", options={"tiers": {"one": "one tier", "two": "two tiers"}, "candles": yes_no("candles")})
def cake(a: Attr):
  w, base = a.u("width", 0.75, 0.9), 0.7
  parts = [shape(ellipse(0, base + 0.05, w + 0.15, 0.1, 28), "light", PART)]
  tiers = [(w, a.u("tier_h", 0.4, 0.55))]
  if a.opt("tiers") == "two":
    tiers.append((w * 0.6, a.u("tier2_h", 0.3, 0.4)))
  y = base
  for tw, th in tiers:
    parts.append(shape(rect(-tw, y - th, tw, y)))
    x = np.linspace(-tw, tw, 9)
    drip = np.stack([x, y - th + 0.08 + 0.05 * (np.arange(9) % 2)], axis=1)
    parts.append(shape(np.concatenate([poly((-tw, y - th), (tw, y - th)), drip[::-1]]), "white", PART))
    y -= th
  if a.opt("candles") == "yes":
    tw = tiers[-1][0]
    for x in np.linspace(-tw * 0.6, tw * 0.6, a.pick("num_candles", (2, 3, 4))):
      parts.append(shape(rect(float(x) - 0.03, y - 0.25, float(x) + 0.03, y), "accent", PART))
      parts.append(shape(ellipse(float(x), y - 0.32, 0.04, 0.07, 10), "flame", DETAIL))
  return parts


@category("tent", options={"door": {"open": "an open door", "closed": ""}, "flag": yes_no("a flag")})
def tent(a: Attr):
  w, top = a.u("width", 0.85, 1.0), a.u("top", -0.7, -0.5)
  base = 0.65
  parts = [shape(poly((0, top), (w, base), (-w, base)))]
  dw = a.u("door_w", 0.25, 0.35)
  if a.opt("door") == "open":
    parts.append(shape(poly((0, top + 0.35), (dw, base), (-dw, base)), "dark", PART))
  else:
    parts.append(line(poly((0, top + 0.05), (0, base)), level=PART, width=3))
  for sgn in (-1, 1):
    parts.append(line(poly((sgn * w * 0.45, (top + base) / 2 - 0.1), (sgn * (w + 0.1), base + 0.1)), "metal", DETAIL, width=1.5))
  if a.opt("flag") == "yes":
    parts.append(line(poly((0, top), (0, top - 0.3)), level=PART, width=3))
    parts.append(shape(poly((0, top - 0.3), (0.25, top - 0.23), (0, top - 0.16)), "red", PART))
  return parts


@category("windmill", options={"blades": {"four": "four blades", "five": "five blades"}, "door": yes_no("a door")})
def windmill(a: Attr):
  tw, bw, top = a.u("top_w", 0.2, 0.28), a.u("bot_w", 0.35, 0.45), a.u("top", -0.2, -0.05)
  parts = [shape(poly((-tw, top), (tw, top), (bw, 1.0), (-bw, 1.0)))]
  parts.append(shape(path(ellipse(0, top, tw + 0.05, 0.2, 14, math.pi, 2 * math.pi), poly((tw + 0.05, top), (-tw - 0.05, top))),
                     "accent", PART))
  hub = np.array([0.0, top - 0.05])
  n = 4 if a.opt("blades") == "four" else 5
  bl, t0 = a.u("blade_len", 0.75, 0.9), a.u("turn", 0, 1)
  for k in range(n):
    t = t0 + k * 2 * math.pi / n
    blade = rotate(poly((0.1, -0.04), (bl, -0.12), (bl, 0.08), (0.1, 0.04)), t) + hub
    parts.append(shape(blade, "light", OUTLINE if k < 2 else PART))
  parts.append(shape(ellipse(*hub, 0.07, n=10), "dark", PART))
  if a.opt("door") == "yes":
    parts.append(shape(path(ellipse(0, 0.78, 0.12, 0.1, 8, math.pi, 2 * math.pi), poly((0.12, 1.0), (-0.12, 1.0))), "wood", PART))
  parts.append(shape(rect(-0.07, 0.35, 0.07, 0.5), "glass", DETAIL))
  return parts


@category("traffic light", options={"lights": {"three": "three lights", "two": "two lights"}, "visors": yes_no("visors")},
          colours=("black", "grey", "yellow", "green", "blue"))
def traffic_light(a: Attr):
  n = 3 if a.opt("lights") == "three" else 2
  w, lr = a.u("width", 0.28, 0.34), a.u("light", 0.16, 0.2)
  h = n * (2 * lr + 0.12) / 2 + 0.05
  top = -0.95
  parts = [shape(rect(-0.05, top + 2 * h, 0.05, 1.0), "metal", PART), shape(rrect(-w, top, w, top + 2 * h, 0.1))]
  roles = ("red", "gold", "leaf")[:n] if n == 3 else ("red", "leaf")
  for i, role in enumerate(roles):
    y = top + 0.1 + lr + i * (2 * lr + 0.12)
    parts.append(shape(ellipse(0, y, lr, n=20), role, OUTLINE))
    if a.opt("visors") == "yes":
      parts.append(line(ellipse(0, y, lr + 0.04, lr + 0.04, 10, math.pi + 0.2, 2 * math.pi - 0.2), "dark", PART, width=5))
  return parts


@category("trophy", options={"handles": {"two": "two handles", "none": ""}, "base": {"low": "", "tall": "a tall base"}},
          colours=("yellow", "grey", "orange", "brown"))
def trophy(a: Attr):
  cw, top = a.u("cup_w", 0.5, 0.6), -0.9
  cup_bottom = a.u("cup_bottom", -0.05, 0.15)
  right = path(poly((cw, top)), bezier((cw, top), (cw, cup_bottom - 0.1), (0.12, cup_bottom), n=12), poly((0.07, cup_bottom + 0.3)))
  parts = [shape(lathe(right))]
  if a.opt("handles") == "two":
    for sgn in (-1, 1):
      parts.append(line(bezier((sgn * cw * 0.98, top + 0.12), (sgn * (cw + 0.4), top + 0.1), (sgn * (cw + 0.3), top + 0.6),
                               (sgn * cw * 0.5, cup_bottom - 0.05), n=12), "body", PART, width=6))
  stem_bottom = cup_bottom + 0.3
  base_h = 0.45 if a.opt("base") == "tall" else 0.2
  parts.append(shape(rect(-0.3, stem_bottom, 0.3, stem_bottom + 0.1), "body", PART))
  parts.append(shape(rect(-0.42, stem_bottom + 0.1, 0.42, stem_bottom + 0.1 + base_h), "wood", OUTLINE))
  parts.append(shape(star(0, top + 0.35, 0.15, 0.06), "white", DETAIL))
  return parts
