"""Pictures people would rather look at than read: retrieval grids, curves."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

_GREEN, _RED = (40, 170, 60), (220, 40, 40)


def _rgb(img: np.ndarray) -> Image.Image:
  img = np.asarray(img)
  if img.ndim == 2:
    img = np.repeat(img[..., None], 3, axis=-1)
  return Image.fromarray(img.astype(np.uint8))


def retrieval_grid(queries: Sequence[np.ndarray], hits: Sequence[Sequence[np.ndarray]],
                   correct: Sequence[Sequence[bool]], path: str, *, title: str = "", cell: int = 72) -> None:
  """One row per query: the query, then its ranked hits framed green (correct) or red (wrong)."""
  cols = 1 + max(len(h) for h in hits)
  pad, head = 4, 18 if title else 0
  canvas = Image.new("RGB", (cols * (cell + pad) + pad + 6, len(queries) * (cell + pad) + pad + head), "white")
  draw = ImageDraw.Draw(canvas)
  if title:
    draw.text((pad, 3), title, fill=(0, 0, 0))
  for r, (query, row, ok) in enumerate(zip(queries, hits, correct)):
    y = head + pad + r * (cell + pad)
    canvas.paste(_rgb(query).resize((cell, cell)), (pad, y))
    draw.rectangle([pad - 1, y - 1, pad + cell, y + cell], outline=(60, 60, 200), width=2)
    for c, (img, good) in enumerate(zip(row, ok)):
      x = pad + 6 + (c + 1) * (cell + pad)
      canvas.paste(_rgb(img).resize((cell, cell)), (x, y))
      draw.rectangle([x - 2, y - 2, x + cell + 1, y + cell + 1], outline=_GREEN if good else _RED, width=3)
  canvas.save(path)
