"""SynthSketch part models: small everyday objects and tools."""

from __future__ import annotations

import math

from sgvu.data.synth.geometry import (DETAIL, PART, bezier, ellipse, lathe, line, outline,
                                      path, poly, rect, rrect, shape)
from sgvu.data.synth.model import Attr, category, yes_no


@category("bucket", options={"handle": {"up": "a raised handle", "down": ""}, "water": yes_no("water")})
def bucket(a: Attr):
  tw, bw, top, bot = a.u("top_w", 0.6, 0.75), a.u("bot_w", 0.4, 0.55), a.u("top", -0.4, -0.2), 0.85
  handle_up = a.opt("handle") == "up"
  parts = []
  if handle_up:
    parts.append(line(ellipse(0, top, tw * 0.95, a.u("handle_h", 0.5, 0.75), 24, math.pi, 2 * math.pi),
                      "metal", PART, width=4))
  parts.append(shape(poly((-tw, top), (tw, top), (bw, bot), (-bw, bot))))
  parts.append(shape(ellipse(0, top, tw, 0.1, 28), "glass" if a.opt("water") == "yes" else "dark", PART))
  for f in (0.3, 0.8):
    y = top + f * (bot - top)
    x = tw + f * (bw - tw)
    parts.append(line(poly((-x, y), (x, y)), "metal", DETAIL, width=4))
  if not handle_up:
    parts.append(line(ellipse(0, top, tw * 0.95, a.u("handle_h", 0.3, 0.45), 24, 0, math.pi), "metal", PART, width=4))
  return parts


@category("ladder", options={"rungs": {"four": "four rungs", "six": "six rungs"},
                             "feet": yes_no("rubber feet")})
def ladder(a: Attr):
  w, top = a.u("width", 0.3, 0.5), -1.0
  splay = a.u("splay", 0.0, 0.12)
  parts = [shape(poly((-w, top), (-w + 0.08, top), (-w - splay + 0.08, 1), (-w - splay, 1))),
           shape(poly((w - 0.08, top), (w, top), (w + splay, 1), (w + splay - 0.08, 1)))]
  n = 4 if a.opt("rungs") == "four" else 6
  first = a.u("first", 0.15, 0.3)
  for i in range(n):
    y = top + first + i * (1.85 - first) / n
    x = w + splay * (y - top) / 2
    parts.append(shape(rect(-x + 0.06, y, x - 0.06, y + 0.06), "accent", PART))
  if a.opt("feet") == "yes":
    for s in (-1, 1):
      x = s * (w + splay - 0.04)
      parts.append(shape(rect(x - 0.07, 0.9, x + 0.07, 1.02), "dark", PART))
  return parts


@category("candle", options={"flame": yes_no("a flame"), "holder": yes_no("a holder")})
def candle(a: Attr):
  w, top, bot = a.u("width", 0.16, 0.28), a.u("top", -0.5, -0.05), 0.72
  parts = []
  if a.opt("holder") == "yes":
    parts.append(shape(ellipse(0, 0.8, a.u("dish", 0.5, 0.7), 0.12, 28), "gold", PART))
    parts.append(shape(rect(-w - 0.08, 0.6, w + 0.08, 0.8), "gold", PART))
  parts.append(shape(rect(-w, top, w, bot)))
  parts.append(shape(path(bezier((w * 0.3, top), (w * 0.5, top + 0.25), (w * 0.7, top), n=8)), "body", DETAIL))
  parts.append(line(poly((0, top), (0, top - 0.1)), level=DETAIL))
  if a.opt("flame") == "yes":
    fh = a.u("flame_h", 0.35, 0.55)
    parts.append(shape(path(bezier((0, top - 0.08 - fh), (0.22, top - 0.25), (0.1, top - 0.08), (0, top - 0.08), n=10),
                            bezier((0, top - 0.08), (-0.1, top - 0.08), (-0.22, top - 0.25), (0, top - 0.08 - fh), n=10)),
                       "flame", PART))
  return parts


@category("light bulb", options={"rays": yes_no("rays"), "shape": {"round": "", "pear": "a pear shape"}})
def light_bulb(a: Attr):
  r, cy, nw = a.u("radius", 0.45, 0.6), -0.3, a.u("neck", 0.2, 0.26)
  neck_y = 0.3
  if a.opt("shape") == "round":
    right = path(ellipse(0, cy, r, r, 16, -math.pi / 2, math.pi / 2 - 0.35), poly((nw, neck_y)))
  else:
    right = path(ellipse(0, cy - 0.1, r, r, 14, -math.pi / 2, math.pi / 4),
                 bezier((r * 0.7, cy - 0.1 + r * 0.7), (nw * 1.1, cy + 0.45), (nw, neck_y), n=8))
  parts = [shape(lathe(right))]
  parts.append(shape(rect(-nw, neck_y, nw, 0.72), "metal", PART))
  for y in (0.42, 0.54, 0.66):
    parts.append(line(poly((-nw, y - 0.04), (nw, y + 0.04)), level=DETAIL, width=2))
  parts.append(shape(ellipse(0, 0.76, nw * 0.5, 0.06, 12), "dark", DETAIL))
  parts.append(line(poly((-0.08, neck_y), (-0.08, cy + 0.1), (0, cy), (0.08, cy + 0.1), (0.08, neck_y)),
                    level=DETAIL, width=2))
  if a.opt("rays") == "yes":
    for k in range(5):
      t = -math.pi + 0.35 + k * (math.pi - 0.7) / 4
      c, s = math.cos(t), math.sin(t)
      parts.append(line(poly((c * (r + 0.12), cy + s * (r + 0.12)), (c * (r + 0.3), cy + s * (r + 0.3))),
                        "flame", PART, width=4))
  return parts


@category("television", options={"antenna": yes_no("an antenna"), "stand": {"stand": "a stand", "legs": "legs"},
                                 "screen": {"wide": "a wide screen", "square": ""}})
def television(a: Attr):
  wide = a.opt("screen") == "wide"
  w, h = (a.u("width", 0.9, 1.0) if wide else a.u("width", 0.65, 0.8)), a.u("height", 0.5, 0.65)
  parts = [shape(rrect(-w, -h, w, h * 0.9, 0.1))]
  right = w - (0.08 if wide else 0.3)
  parts.append(shape(rrect(-w + 0.08, -h + 0.08, right, h * 0.9 - 0.08, 0.06), "dark", PART))
  if not wide:
    for y in (-0.2, 0.05):
      parts.append(shape(ellipse(w - 0.15, y, 0.06, n=10), "metal", DETAIL))
  if a.opt("antenna") == "yes":
    for s in (-1, 1):
      parts.append(line(poly((0, -h), (s * a.u("ant_x", 0.3, 0.5), -h - a.u("ant_h", 0.35, 0.5))), level=PART))
    parts.append(shape(ellipse(0, -h, 0.12, 0.07, 12), "dark", DETAIL))
  if a.opt("stand") == "stand":
    parts.append(shape(rect(-0.08, h * 0.9, 0.08, h * 0.9 + 0.2), "metal", PART))
    parts.append(shape(ellipse(0, h * 0.9 + 0.22, w * 0.45, 0.06, 20), "metal", PART))
  else:
    for s in (-1, 1):
      parts.append(line(poly((s * w * 0.6, h * 0.9), (s * w * 0.75, h * 0.9 + 0.3)), level=PART, width=5))
  return parts


@category("phone", options={"buttons": {"yes": "buttons", "no": "a big screen"}, "camera": yes_no("a camera")})
def phone(a: Attr):
  w, h, r = a.u("width", 0.38, 0.5), a.u("height", 0.8, 0.95), a.u("corner", 0.05, 0.15)
  parts = [shape(rrect(-w, -h, w, h, r))]
  keypad = a.opt("buttons") == "yes"
  screen_bottom = -0.05 if keypad else h - 0.15
  parts.append(shape(rect(-w + 0.07, -h + 0.18, w - 0.07, screen_bottom), "glass", PART))
  if keypad:
    for i in range(4):
      for j in range(3):
        parts.append(shape(ellipse((j - 1) * w * 0.55, 0.12 + i * (h - 0.22) / 4, 0.05, n=8), "dark", DETAIL))
  else:
    parts.append(shape(ellipse(0, h - 0.08, 0.04, n=8), "dark", DETAIL))
  if a.opt("camera") == "yes":
    parts.append(shape(ellipse(w * 0.5, -h + 0.09, 0.04, n=8), "dark", PART))
  parts.append(line(poly((-0.1, -h + 0.09), (0.1, -h + 0.09)), level=DETAIL, width=2))
  return parts


@category("book", options={"bookmark": yes_no("a bookmark"), "title": yes_no("a title")})
def book(a: Attr):
  w, h, d = a.u("width", 0.55, 0.75), a.u("height", 0.8, 0.95), a.u("depth", 0.08, 0.16)
  parts = [shape(poly((-w, -h), (w, -h), (w + d, -h + d), (w + d, h + d), (-w + d, h + d), (-w, h)), "light")]
  parts.append(shape(rect(-w, -h, w, h)))
  parts.append(shape(rect(-w, -h, -w + a.u("spine", 0.1, 0.18), h), "accent", PART))
  for k in range(3):
    y = -h + d * (k + 1) / 4
    parts.append(line(poly((w + d * (k + 1) / 4, y + 0.02), (w + d * (k + 1) / 4, h + d * (k + 1) / 4)), "metal",
                      DETAIL, width=1.5))
  if a.opt("title") == "yes":
    ty = a.u("title_y", -0.6, -0.3)
    parts.append(shape(rect(-w * 0.5, ty, w * 0.8, ty + 0.3), "light", PART))
    parts.append(line(poly((-w * 0.35, ty + 0.15), (w * 0.65, ty + 0.15)), level=DETAIL, width=3))
  if a.opt("bookmark") == "yes":
    x = a.u("mark_x", -0.2, w * 0.6)
    parts.append(shape(poly((x, h), (x + 0.12, h), (x + 0.12, h + 0.3), (x + 0.06, h + 0.22), (x, h + 0.3)), "red", PART))
  return parts


@category("envelope", options={"flap": {"closed": "", "open": "an open flap"}, "stamp": yes_no("a stamp")})
def envelope(a: Attr):
  w, h = a.u("width", 0.85, 1.0), a.u("height", 0.5, 0.65)
  parts = []
  if a.opt("flap") == "open":
    parts.append(shape(poly((-w, -h), (0, -h - a.u("flap_h", 0.45, 0.65)), (w, -h)), "accent", PART))
  parts.append(shape(rect(-w, -h, w, h)))
  if a.opt("flap") == "closed":
    parts.append(line(poly((-w, -h), (0, a.u("tip", -0.1, 0.15)), (w, -h)), level=PART))
  parts.append(line(poly((-w, h), (-0.15, 0.0)), level=DETAIL))
  parts.append(line(poly((w, h), (0.15, 0.0)), level=DETAIL))
  if a.opt("stamp") == "yes":
    parts.append(shape(rect(w - 0.32, -h + 0.08, w - 0.08, -h + 0.36), "red", PART))
  return parts


@category("hammer", options={"head": {"claw": "a claw", "flat": ""}, "grip": yes_no("a grip")})
def hammer(a: Attr):
  hl, hw = a.u("head_len", 0.5, 0.65), a.u("head_h", 0.15, 0.22)
  parts = [shape(rrect(-0.08, -0.6, 0.08, 1.0, 0.06))]
  parts.append(shape(rect(-hl, -0.85, hl * 0.75, -0.85 + 2 * hw), "metal"))
  parts.append(shape(rect(hl * 0.75, -0.88, hl * 0.75 + 0.18, -0.82 + 2 * hw), "metal", PART))
  if a.opt("head") == "claw":
    parts.append(shape(path(bezier((-hl, -0.85), (-hl - 0.3, -0.85), (-hl - 0.45, -0.6), n=8),
                            bezier((-hl - 0.45, -0.6), (-hl - 0.25, -0.7), (-hl, -0.85 + 2 * hw), n=8)), "metal", PART))
  if a.opt("grip") == "yes":
    parts.append(shape(rrect(-0.11, 0.3, 0.11, 1.0, 0.08), "dark", PART))
    for y in (0.45, 0.6, 0.75, 0.9):
      parts.append(line(poly((-0.11, y), (0.11, y)), "metal", DETAIL, width=2))
  return parts


@category("pencil", options={"eraser": yes_no("an eraser"), "tip": {"sharp": "a sharp tip", "blunt": "a blunt tip"}})
def pencil(a: Attr):
  w, top, cone = a.u("width", 0.13, 0.19), -1.0, a.u("cone_y", 0.45, 0.6)
  parts = []
  body_top = top
  if a.opt("eraser") == "yes":
    parts.append(shape(rrect(-w, top, w, top + 0.2, 0.05), "accent", PART))
    parts.append(shape(rect(-w - 0.01, top + 0.15, w + 0.01, top + 0.3), "metal", PART))
    body_top = top + 0.3
  parts.append(shape(rect(-w, body_top, w, cone)))
  for x in (-w / 3, w / 3):
    parts.append(line(poly((x, body_top), (x, cone)), level=DETAIL, width=1.5))
  if a.opt("tip") == "sharp":
    tip = 1.0
    parts.append(shape(poly((-w, cone), (w, cone), (0, tip)), "skin", PART))
    f = 0.35
    parts.append(shape(poly((-w * f, tip - (tip - cone) * f), (w * f, tip - (tip - cone) * f), (0, tip)), "dark", DETAIL))
  else:
    parts.append(shape(poly((-w, cone), (w, cone), (w * 0.4, 0.85), (-w * 0.4, 0.85)), "skin", PART))
    parts.append(shape(rect(-w * 0.4, 0.85, w * 0.4, 0.92), "dark", DETAIL))
  return parts


@category("bell", options={"bow": yes_no("a bow"), "handle": {"ring": "", "handle": "a handle"}})
def bell(a: Attr):
  flare, waist = a.u("flare", 0.75, 0.9), a.u("waist", 0.3, 0.45)
  right = path(bezier((0, -0.6), (waist + 0.15, -0.62), (waist, 0.1), (flare, 0.45), n=16), poly((flare, 0.55)))
  parts = [shape(lathe(right))]
  parts.append(shape(ellipse(0, 0.55, flare + 0.02, 0.1, 28), "accent", PART))
  parts.append(shape(ellipse(0, 0.72, 0.13, n=14), "dark", PART))
  if a.opt("handle") == "handle":
    parts.append(shape(rrect(-0.1, -1.0, 0.1, -0.58, 0.05), "wood", PART))
  else:
    parts.append(outline(ellipse(0, -0.74, 0.14, n=16), "metal", PART, width=6))
  if a.opt("bow") == "yes":
    for s in (-1, 1):
      parts.append(shape(ellipse(s * 0.22, -0.52, 0.2, 0.1, 14, rot=-s * 0.3), "red", PART))
    parts.append(shape(ellipse(0, -0.52, 0.07, n=8), "red", DETAIL))
  return parts


@category("key", options={"bow": {"round": "a round head", "square": "a square head"},
                          "teeth": {"two": "two teeth", "three": "three teeth"}})
def key(a: Attr):
  br, length = a.u("bow", 0.3, 0.42), 1.0
  parts = []
  if a.opt("bow") == "round":
    parts.append(shape(ellipse(-length + br, 0, br, br, 32)))
  else:
    parts.append(shape(rrect(-length, -br, -length + 2 * br, br, 0.08)))
  parts.append(shape(ellipse(-length + br, 0, br * 0.38, n=16), "light", PART))
  parts.append(shape(rect(-length + 2 * br - 0.04, -0.08, length, 0.08)))
  n = 2 if a.opt("teeth") == "two" else 3
  for i in range(n):
    x = length - 0.1 - i * 0.2
    parts.append(shape(rect(x - 0.09, 0.07, x + 0.02, 0.07 + a.u(f"tooth{i}", 0.1, 0.3)), "body", PART))
  if a.coin("notch"):
    parts.append(line(poly((-length + 2 * br + 0.05, 0), (length - 0.1, 0)), level=DETAIL, width=1.5))
  return parts
