"""SynthSketch part models: things people wear and carry."""

from __future__ import annotations

import math

import numpy as np

from sgvu.data.synth.geometry import (DETAIL, OUTLINE, PART, bezier, ellipse, line, outline, path, poly,
                                      rect, rrect, shape)
from sgvu.data.synth.model import Attr, category, yes_no


@category("shoe", options={"heel": {"flat": "a flat sole", "high": "a high heel"}, "laces": {"yes": "laces", "no": "no laces"},
                           "toe": {"round": "a round toe", "pointed": "a pointed toe"}})
def shoe(a: Attr):
  ground, st, back = 0.55, a.u("sole", 0.05, 0.1), -0.85
  high, laces = a.opt("heel") == "high", a.opt("laces") == "yes"
  heel_h = a.u("heel_h", 0.35, 0.55) if high else a.u("heel_h", 0.06, 0.12)
  y_hb = ground - heel_h  # bottom of the upper at the heel
  top_back = y_hb - (a.u("upper_h", 0.3, 0.45) if high else a.u("upper_h", 0.55, 0.85))
  dip = a.u("dip", 0.1, 0.2)  # depth of the collar opening
  throat_x = a.u("throat_x", 0.0, 0.3) if high else a.u("throat_x", -0.3, 0.0)
  tongue_y = top_back + dip * 0.5 - (a.u("tongue", 0.0, 0.12) if laces else -dip * 0.8)
  toe_h = a.u("toe_h", 0.2, 0.3)
  vamp = (0.45, ground - toe_h - a.u("vamp", 0.08, 0.18))
  pointed = a.opt("toe") == "pointed"
  tip_x = 1.05 if pointed else 0.92
  ball = (0.2, ground - st)
  toe = (poly((tip_x, ground - st - 0.03)) if pointed else
         bezier((0.8, ground - toe_h), (tip_x + 0.04, ground - toe_h), (tip_x, ground - st), n=8))
  upper = path(
      bezier((back, y_hb), (back - 0.06, top_back + 0.2), (back + 0.08, top_back), n=8),
      bezier((back + 0.08, top_back), (back + 0.35, top_back + dip), (throat_x - 0.2, top_back + dip), n=8),
      bezier((throat_x - 0.2, top_back + dip), (throat_x - 0.1, tongue_y), (throat_x, tongue_y), n=6),
      bezier((throat_x, tongue_y), (vamp[0] - 0.2, vamp[1] - 0.05), vamp, (0.8, ground - toe_h), n=10),
      toe, poly(ball),
      bezier(ball, (-0.3, ground - st), (back + 0.1, y_hb), (back, y_hb), n=10))
  sole = path(bezier((back, y_hb), (back + 0.1, y_hb), (-0.3, ground - st), ball, n=10),
              poly((tip_x, ground - st), (tip_x - 0.02, ground), (0.2, ground)),
              bezier((0.2, ground), (-0.3, ground), (back + 0.1, y_hb + st), (back, y_hb + st), n=10))
  parts = [shape(upper), shape(sole, "dark", OUTLINE)]
  if high:
    parts.append(shape(poly((back, y_hb), (back + 0.25, y_hb + 0.05), (back + 0.14, ground), (back + 0.06, ground)), "dark", PART))
  else:
    parts.append(shape(rect(back, y_hb, back + 0.3, ground), "dark", PART))
  if laces:
    n = a.pick("lace_rows", (3, 4))
    for i in range(n):
      t = (i + 0.5) / n
      x = throat_x + t * (vamp[0] - throat_x) * 0.9
      y = tongue_y + t * (vamp[1] - tongue_y) + 0.07
      parts.append(line(poly((x - 0.07, y - 0.05), (x + 0.07, y + 0.04)), "light", PART, width=3))
      parts.append(line(poly((x - 0.07, y + 0.04), (x + 0.07, y - 0.05)), "light", PART, width=3))
  if a.coin("stripe"):
    parts.append(line(bezier((back + 0.3, ground - st - 0.12), (0.0, ground - 0.35), (0.35, ground - st - 0.1), n=8),
                      "accent", DETAIL, width=5))
  parts.append(line(poly((back + 0.12, top_back + 0.08), (back + 0.08, y_hb - 0.05)), level=DETAIL, width=1.5))
  return parts


@category("hat", options={"crown": {"tall": "a tall crown", "round": "a round crown"}, "band": yes_no("a band"),
                          "feather": yes_no("a feather")})
def hat(a: Attr):
  bw, cw = a.u("brim", 0.85, 1.0), a.u("crown_w", 0.45, 0.55)
  base = a.u("base", 0.2, 0.35)
  parts = [shape(ellipse(0, base, bw, a.u("brim_h", 0.12, 0.2), 36))]
  if a.opt("crown") == "tall":
    top = base - a.u("height", 0.8, 1.0)
    parts.append(shape(path(poly((-cw, base), (-cw * 0.92, top)), bezier((-cw * 0.92, top), (0, top - 0.08), (cw * 0.92, top), n=8),
                            poly((cw, base)))))
  else:
    top = base - a.u("height", 0.5, 0.65)
    parts.append(shape(path(bezier((-cw, base), (-cw * 1.05, top), (cw * 1.05, top), (cw, base), n=20))))
  if a.opt("band") == "yes":
    parts.append(shape(poly((-cw, base - 0.02), (cw, base - 0.02), (cw * 0.98, base - 0.18), (-cw * 0.98, base - 0.18)), "accent", PART))
  if a.opt("feather") == "yes":
    parts.append(shape(ellipse(cw * 0.9, base - 0.45, 0.1, 0.35, 16, rot=0.5), "white", PART))
    parts.append(line(poly((cw * 0.75, base - 0.15), (cw * 1.05, base - 0.75)), "metal", DETAIL, width=2))
  return parts


@category("shirt", options={"sleeves": {"short": "short sleeves", "long": "long sleeves"}, "collar": yes_no("a collar"),
                            "pocket": yes_no("a pocket")})
def shirt(a: Attr):
  w, sh = a.u("width", 0.5, 0.6), -0.75
  long_ = a.opt("sleeves") == "long"
  sl = a.u("sleeve", 0.85, 1.0) if long_ else a.u("sleeve", 0.35, 0.45)
  ang = a.u("arm_angle", 0.9, 1.2)
  c, s = math.cos(ang), math.sin(ang)
  sw = 0.22
  pts = [(-0.18, sh - 0.05), (-w, sh), (-w - c * sl, sh + s * sl), (-w - c * sl + s * sw, sh + s * sl + c * sw * 0.3),
         (-w + 0.02, sh + 0.35), (-w + 0.02, 0.95), (w - 0.02, 0.95), (w - 0.02, sh + 0.35),
         (w + c * sl - s * sw, sh + s * sl + c * sw * 0.3), (w + c * sl, sh + s * sl), (w, sh), (0.18, sh - 0.05)]
  neck = bezier((0.18, sh - 0.05), (0.0, sh + 0.2), (-0.18, sh - 0.05), n=8)[1:-1]
  parts = [shape(np.concatenate([poly(*pts), neck]))]
  if a.opt("collar") == "yes":
    for sgn in (-1, 1):
      parts.append(shape(poly((sgn * 0.2, sh - 0.07), (sgn * 0.02, sh + 0.15), (sgn * 0.22, sh + 0.12)), "light", PART))
    for y in np.linspace(sh + 0.3, 0.8, 4):
      parts.append(shape(ellipse(0, y, 0.03, n=8), "dark", DETAIL))
  if a.opt("pocket") == "yes":
    parts.append(outline(rect(w * 0.3, sh + 0.35, w * 0.75, sh + 0.65), "dark", PART, width=2.5))
  return parts


@category("trousers", options={"legs": {"long": "", "short": "short legs"}, "belt": yes_no("a belt")})
def trousers(a: Attr):
  w, top = a.u("width", 0.5, 0.6), -0.95
  length = 0.95 if a.opt("legs") == "long" else a.u("short_len", 0.0, 0.15)
  flare = a.u("flare", 0.0, 0.12)
  crotch = a.u("crotch", -0.35, -0.2)
  parts = [shape(poly((-w, top), (w, top), (w + 0.05 + flare, length), (0.06, length), (0, crotch), (-0.06, length),
                      (-w - 0.05 - flare, length)))]
  if a.opt("belt") == "yes":
    parts.append(shape(rect(-w, top, w, top + 0.12), "accent", PART))
    parts.append(outline(rect(-0.08, top + 0.01, 0.08, top + 0.11), "gold", DETAIL, width=2.5))
  parts.append(line(poly((0, top + 0.12), (0, crotch)), level=DETAIL, width=2))
  for sgn in (-1, 1):
    parts.append(line(bezier((sgn * w * 0.45, top + 0.12), (sgn * w * 0.5, top + 0.3), (sgn * w, top + 0.35), n=6),
                      level=DETAIL, width=2))
  return parts


@category("glasses", options={"lenses": {"round": "round lenses", "square": "square lenses"},
                              "tint": {"clear": "", "dark": "dark lenses"}})
def glasses(a: Attr):
  r, gap = a.u("lens", 0.33, 0.42), a.u("bridge", 0.12, 0.2)
  tint = "dark" if a.opt("tint") == "dark" else "glass"
  parts = []
  for sgn in (-1, 1):
    cx = sgn * (gap + r)
    if a.opt("lenses") == "round":
      frame, lens = ellipse(cx, 0, r, r * 0.9, 32), ellipse(cx, 0, r - 0.06, r * 0.9 - 0.06, 32)
    else:
      frame = rrect(cx - r, -r * 0.8, cx + r, r * 0.8, 0.08)
      lens = rrect(cx - r + 0.06, -r * 0.8 + 0.06, cx + r - 0.06, r * 0.8 - 0.06, 0.05)
    parts.append(shape(frame))
    parts.append(shape(lens, tint, PART))
    parts.append(line(poly((sgn * (gap + 2 * r), -r * 0.3), (sgn * (gap + 2 * r + 0.15), -r * 0.5),
                           (sgn * (gap + 2 * r + 0.2), r * 0.6)), "body", PART, width=5))
  parts.append(line(bezier((-gap - 0.02, -r * 0.2), (0, -r * 0.55), (gap + 0.02, -r * 0.2), n=6), "body", OUTLINE, width=5))
  return parts


@category("handbag", options={"handle": {"one": "a short handle", "strap": "a long strap"}, "flap": yes_no("a flap")})
def handbag(a: Attr):
  tw, bw, top = a.u("top_w", 0.55, 0.7), a.u("bot_w", 0.75, 0.9), a.u("top", -0.15, 0.1)
  parts = []
  if a.opt("handle") == "one":
    parts.append(line(ellipse(0, top, tw * 0.55, a.u("handle_h", 0.35, 0.5), 20, math.pi, 2 * math.pi), "accent", PART, width=8))
  else:
    parts.append(line(poly((-tw * 0.9, top), (0, -0.98), (tw * 0.9, top)), "accent", PART, width=4))
  parts.append(shape(path(poly((-tw, top), (tw, top)), bezier((tw, top), (bw, top + 0.3), (bw, 0.85), n=8),
                          poly((-bw, 0.85)), bezier((-bw, 0.85), (-bw, top + 0.3), (-tw, top), n=8))))
  if a.opt("flap") == "yes":
    parts.append(shape(path(poly((-tw, top), (tw, top)), bezier((tw, top), (tw * 0.9, top + 0.35), (0, top + 0.45), n=8),
                            bezier((0, top + 0.45), (-tw * 0.9, top + 0.35), (-tw, top), n=8)), "accent", PART))
  parts.append(shape(rect(-0.07, top + 0.35, 0.07, top + 0.48), "gold", DETAIL))
  return parts


@category("umbrella", options={"handle": {"hook": "a hooked handle", "straight": "a straight handle"},
                               "edge": {"scalloped": "a scalloped edge", "smooth": ""}})
def umbrella(a: Attr):
  w, h = a.u("width", 0.9, 1.0), a.u("height", 0.45, 0.6)
  base = a.u("base", -0.25, -0.1)
  k = a.pick("panels", (4, 5, 6))
  dome = ellipse(0, base, w, h, 24, math.pi, 2 * math.pi)
  if a.opt("edge") == "scalloped":
    xs = np.linspace(w, -w, k + 1)
    edge = path(*[bezier((x0, base), ((x0 + x1) / 2, base - 0.15), (x1, base), n=6) for x0, x1 in zip(xs[:-1], xs[1:])])
  else:
    edge = poly((w, base), (-w, base))
  parts = [shape(path(dome, edge))]
  for x in np.linspace(-w, w, k + 1)[1:-1]:
    parts.append(line(bezier((0, base - h), (x * 0.6, base - h * 0.8), (x, base), n=6), "dark", DETAIL, width=1.5))
  shaft_bottom = a.u("shaft", 0.7, 0.85)
  parts.append(line(poly((0, base - h - 0.1), (0, shaft_bottom)), "dark", OUTLINE, width=4))
  if a.opt("handle") == "hook":
    parts.append(line(ellipse(-0.13, shaft_bottom, 0.13, 0.13, 10, 0, math.pi), "accent", PART, width=7))
  else:
    parts.append(line(poly((0, shaft_bottom - 0.15), (0, shaft_bottom + 0.1)), "accent", PART, width=9))
  return parts


@category("crown", options={"points": {"three": "three points", "five": "five points"}, "jewels": yes_no("jewels")},
          colours=("yellow", "orange", "red", "purple", "blue", "grey"))
def crown(a: Attr):
  w, top, base = a.u("width", 0.8, 0.95), a.u("top", -0.7, -0.5), 0.45
  n = 3 if a.opt("points") == "three" else 5
  valley = a.u("valley", -0.05, 0.1)
  xs = np.linspace(-w, w, n)
  pts = [(-w, base)]
  for i, x in enumerate(xs):
    pts.append((float(x), top))
    if i < n - 1:
      pts.append((float(x + (xs[1] - xs[0]) / 2), valley))
  pts.append((w, base))
  parts = [shape(poly(*pts)), shape(rect(-w, base - 0.05, w, base + 0.2), "accent", PART)]
  for x in xs:
    parts.append(shape(ellipse(float(x), top - 0.05, 0.07, n=10), "gold", DETAIL))
  if a.opt("jewels") == "yes":
    for x in np.linspace(-w * 0.6, w * 0.6, 3):
      parts.append(shape(ellipse(float(x), base + 0.075, 0.07, 0.06, 10), "red", PART))
  return parts
