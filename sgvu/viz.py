"""Pictures people would rather look at than read: retrieval grids, progressive top-k figures (labels in
sgvu.fonts' DejaVu Sans; curves are matplotlib, sgvu.plots)."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from sgvu import fonts

_GREEN, _RED = (40, 170, 60), (220, 40, 40)
_GREY = (150, 150, 150)  # a hit nothing says is right or wrong (no category / target given)


def _rgb(img: np.ndarray) -> Image.Image:
  img = np.asarray(img)
  if img.ndim == 2:
    img = np.repeat(img[..., None], 3, axis=-1)
  return Image.fromarray(img.astype(np.uint8))


def _frame(good: bool | None) -> tuple[int, int, int]:
  return _GREY if good is None else _GREEN if good else _RED


def retrieval_grid(queries: Sequence[np.ndarray], hits: Sequence[Sequence[np.ndarray]],
                   correct: Sequence[Sequence[bool | None]], path: str, *, title: str = "", cell: int = 72,
                   labels: Sequence[str] | None = None) -> None:
  """One row per query: the query, then its ranked hits framed green (correct), red (wrong) or grey (None).

  labels: optional text per row, written over the top-left corner of its query.
  """
  cols = 1 + max(len(h) for h in hits)
  pad, head = 4, 18 if title else 0
  width = cols * (cell + pad) + pad + 6
  if title:  # a narrow grid (few hits) still shows the whole title
    width = max(width, int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(title, font=fonts.label_font(11))) + 2 * pad)
  canvas = Image.new("RGB", (width, len(queries) * (cell + pad) + pad + head), "white")
  draw = ImageDraw.Draw(canvas)
  if title:
    draw.text((pad, 3), title, fill=(0, 0, 0), font=fonts.label_font(11))
  for r, (query, row, ok) in enumerate(zip(queries, hits, correct)):
    y = head + pad + r * (cell + pad)
    canvas.paste(_rgb(query).resize((cell, cell)), (pad, y))
    draw.rectangle([pad - 1, y - 1, pad + cell, y + cell], outline=(60, 60, 200), width=2)
    if labels is not None and labels[r]:
      draw.text((pad + 2, y + 1), labels[r], fill=(60, 60, 200), font=fonts.label_font(10))
    for c, (img, good) in enumerate(zip(row, ok)):
      x = pad + 6 + (c + 1) * (cell + pad)
      canvas.paste(_rgb(img).resize((cell, cell)), (x, y))
      draw.rectangle([x - 2, y - 2, x + cell + 1, y + cell + 1], outline=_frame(good), width=3)
  canvas.save(path)


def stroke_counts(num_strokes: int, rows: int) -> list[int]:
  """At most `rows` stroke counts in 1..num_strokes, evenly spread; the whole sketch is always the last."""
  if num_strokes < 1 or rows < 1:
    raise ValueError(f"need num_strokes >= 1 and rows >= 1, got {num_strokes}, {rows}")
  if rows == 1:
    return [num_strokes]  # (linspace would give the first stroke)
  return sorted({int(round(c)) for c in np.linspace(1, num_strokes, min(rows, num_strokes))})


def progressive_queries(strokes: Sequence[np.ndarray], image_size: int, rows: int
                        ) -> tuple[list[int], np.ndarray, np.ndarray]:
  """The sketch as its strokes arrive: (stroke counts [R], uint8 renderings [R, S, S, 3], point fractions [R]).

  The fraction of the sketch's points drawn lets a model with one head per
  completion level (on-the-fly B4) pick the matching head.
  """
  from sgvu.data import images, strokes as strokes_lib
  strokes = strokes_lib.validate_strokes(strokes)
  counts = stroke_counts(len(strokes), rows)
  partial = np.stack([images.grey_to_rgb(strokes_lib.render_strokes(strokes, image_size, num_strokes=c))
                      for c in counts])
  total = strokes_lib.num_points(strokes)
  fractions = np.asarray([strokes_lib.num_points(strokes[:c]) / total for c in counts], np.float32)
  return counts, partial, fractions

def progressive_figure(strokes: Sequence[np.ndarray], embed_sketches: Callable[[np.ndarray], np.ndarray],
                       gallery_embeds: np.ndarray, gallery_images: Callable[[int], np.ndarray], path: str, *,
                       image_size: int, target: int | None = None, rows: int = 6, k: int = 5,
                       title: str = "") -> list[list[int]]:
  """Draws how the top-k changes as the sketch's strokes arrive: one row per stroke count.

  strokes: the sketch (float [n_i, 2] arrays on the 256 canvas, drawing order);
  embed_sketches: uint8 [R, S, S, 3] -> [R, D]; gallery_images(j): uint8 photo j
  (only the shown ones are loaded); target: gallery row of the true photo
  (framed green, the others red; without it every hit is framed grey).
  Returns each row's top-k gallery rows. `python -m sgvu.tools.search
  --progressive` draws the same figure from an exported model.
  """
  from sgvu import metrics  # local: drawing without JAX start-up elsewhere
  counts, partial, _ = progressive_queries(strokes, image_size, rows)
  top, _ = metrics.topk(np.asarray(embed_sketches(partial)), gallery_embeds, k)
  hits = [[gallery_images(int(j)) for j in row] for row in top]
  correct = [[None if target is None else int(j) == target for j in row] for row in top]
  n = counts[-1]
  retrieval_grid(list(partial), hits, correct, path, labels=[f"{c}/{n}" for c in counts],
                     title=title or f"top-{k} after {', '.join(map(str, counts))} of {n} strokes")
  return [[int(j) for j in row] for row in top]
