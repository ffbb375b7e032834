"""`draw_grid`: a contact sheet of photos, sketches, partial sketches and captions.

    python -m sgvu.data.synth.grid /tmp/synth_grid.png --rows 8 --protocol instance
"""

from __future__ import annotations

import argparse
import textwrap
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sgvu.data import strokes as strokes_lib
from sgvu.data.synth.world import SynthSketch


def draw_grid(world: SynthSketch, photo_indices: Sequence[int], split: str = "train", size: int = 128,
              fractions: Sequence[float] = (0.25, 0.5), caption_width: int = 300) -> Image.Image:
  """One row per photo: photo | each of its sketches | partial prefixes of sketch 0 | caption."""
  sp = world.split(split)
  by_photo: dict[int, list] = {}
  for s in sp.sketches:
    by_photo.setdefault(s.photo, []).append(s)
  n_sk = world.sketches_per_photo
  cols = 1 + n_sk + len(fractions)
  pad = 4
  width = cols * (size + pad) + caption_width
  sheet = Image.new("RGB", (width, len(photo_indices) * (size + pad)), (255, 255, 255))
  draw = ImageDraw.Draw(sheet)
  font = ImageFont.load_default()
  for r, p in enumerate(photo_indices):
    item = sp.photos[p]
    y = r * (size + pad)
    tiles = [world.load_photo(item, size)]
    sketches = [world.load_sketch(s).strokes for s in by_photo[p]]
    tiles += [_gray(strokes_lib.render_strokes(s, size)) for s in sketches]
    tiles += [_gray(strokes_lib.render_strokes(sketches[0], size, fraction=f)) for f in fractions]
    for c, t in enumerate(tiles):
      sheet.paste(Image.fromarray(t), (c * (size + pad), y))
      if c:
        draw.rectangle((c * (size + pad), y, c * (size + pad) + size - 1, y + size - 1), outline=(180, 180, 180))
    text = "\n".join(textwrap.wrap(world.caption(item), 45))
    draw.text((cols * (size + pad) + 4, y + 4), f"{item.key}\n{text}", fill=(0, 0, 0), font=font)
  return sheet


def _gray(img: np.ndarray) -> np.ndarray:
  return np.repeat(img[..., None], 3, axis=-1)


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__)
  ap.add_argument("out")
  ap.add_argument("--rows", type=int, default=8)
  ap.add_argument("--size", type=int, default=128)
  ap.add_argument("--protocol", default="zero_shot")
  ap.add_argument("--categories", default=None, help="comma-separated; default all")
  ap.add_argument("--split", default="train")
  ap.add_argument("--seed", type=int, default=0)
  ap.add_argument("--stride", type=int, default=0, help="photo index step (default: spread over the split)")
  args = ap.parse_args()
  cats = args.categories.split(",") if args.categories else None
  world = SynthSketch(seed=args.seed, protocol=args.protocol, categories=cats)
  n = len(world.split(args.split).photos)
  stride = args.stride or max(1, n // args.rows)
  draw_grid(world, [i * stride % n for i in range(args.rows)], args.split, args.size).save(args.out)
  print(f"wrote {args.out}")


if __name__ == "__main__":
  main()
