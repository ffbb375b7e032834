"""Checks a dataset copy file by file and draws a grid of what the models will see.

  python -m sgvu.tools.show_data --dataset=sketchy --root=/data/Sketchy --out=grid.png
  python -m sgvu.tools.show_data --dataset=synth --out=synth.png
  python -m sgvu.tools.show_data --dataset=quickdraw --root=/data/qd --option max_per_class=500
  python -m sgvu.tools.show_data --dataset=sketchy --tfds_data_dir=gs://bucket/tfds   (a build_tfds copy)
  python -m sgvu.tools.show_data --dataset=cstbir --root=/data/CSTBIR   (composed / localization: show_data_more)
  python -m sgvu.tools.show_data --dataset=synth --kind=localization --option "num_scenes=(20, 5, 10)"

Decodes every photo and sketch of every split (progress with an ETA on
stderr), prints per split the number of categories, photos, sketches and
skipped files (naming each skipped file and why), and writes a PNG grid:
per column a photo, the sketch at 25 / 50 / 100 % (vector sketches) or the
raster sketch, and the caption where the dataset has one. The composed (sketch + text) and
localization datasets (registry.COMPOSED_DATASETS, LOCALIZATION_DATASETS) are checked and drawn by
sgvu.tools.show_data_more; 'synth' is the retrieval one unless --kind=localization.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import dataclasses
import functools
import sys
import textwrap
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from sgvu.data import DATASETS, BadSample, DataError, Source, get_source, pipeline
from sgvu.data.registry import get_tfds_source
from sgvu.tools.show_common import Progress, round_robin, stack

PARTIAL_LEVELS = (0.25, 0.5, 1.0)


@dataclasses.dataclass
class SplitReport:
  name: str
  categories: int
  photos: int  # decoded fine
  sketches: int
  photos_total: int
  sketches_total: int
  skipped: list[tuple[str, str]]


def _check_item(source: Source, kind: str, item) -> tuple[str, str] | None:
  """None if the item decodes, else (key, reason)."""
  try:
    if kind == "photos":
      img = np.asarray(source.load_photo(item))
      if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise BadSample(item.key, f"photo decoded to {img.dtype} {img.shape}")
    else:
      sketch = source.load_sketch(item)
      if sketch.strokes is None and sketch.raster is None:
        raise BadSample(item.key, "sketch has neither strokes nor raster")
  except BadSample as e:
    return (e.key, e.reason)
  return None


def check_split(source: Source, split: str, limit: int | None = None,
                progress: bool = True, threads: int = 4) -> SplitReport:
  """Decodes every (or the first `limit`) photo and sketch of a split (PIL decodes in threads)."""
  sp = source.split(split)
  skipped: list[tuple[str, str]] = []
  counts = {}
  with concurrent.futures.ThreadPoolExecutor(max(1, threads)) as pool:
    for kind, items in (("photos", sp.photos), ("sketches", sp.sketches)):
      items = items[:limit] if limit else items
      bar = Progress(f"{split} {kind}", len(items)) if progress else None
      ok = 0
      results = pool.map(functools.partial(_check_item, source, kind), items)
      for i, bad in enumerate(results, start=1):
        if bad is None:
          ok += 1
        else:
          skipped.append(bad)
        if bar:
          bar.update(i)
      counts[kind] = (ok, len(items))
  return SplitReport(split, len(sp.categories), counts["photos"][0], counts["sketches"][0],
                     counts["photos"][1], counts["sketches"][1], skipped)


def format_report(source: Source, reports: Sequence[SplitReport]) -> str:
  lines = [f"dataset {source.name}: {len(source.categories)} categories"]
  if source.skipped:
    lines.append(f"  skipped while indexing: {len(source.skipped)}")
    lines += [f"    {k}: {r}" for k, r in source.skipped]
  for r in reports:
    lines.append(f"  split {r.name}: categories {r.categories}, photos {r.photos}/{r.photos_total}, "
                 f"sketches {r.sketches}/{r.sketches_total}, skipped {len(r.skipped)}")
    lines += [f"    skipped {k}: {why}" for k, why in r.skipped]
  return "\n".join(lines)


# ----------------------------------------------------------------------------
# The grid.


def _font(size: int):
  try:
    return ImageFont.load_default(size=size)
  except TypeError:  # older Pillow
    return ImageFont.load_default()


def _pick_columns(source: Source, split: str, columns: int, seed: int) -> list[int]:
  """Sketch indices, one per category first (round robin), deterministic."""
  return round_robin([s.label for s in source.split(split).sketches], columns, seed)


def _tile(img: np.ndarray | None, cell: int, text: str | None = None) -> Image.Image:
  tile = Image.new("RGB", (cell, cell), (235, 235, 235))
  if img is not None:
    tile.paste(Image.fromarray(img).convert("RGB"))
  elif text:
    ImageDraw.Draw(tile).text((4, cell // 2 - 6), text, fill=(90, 90, 90), font=_font(10))
  return tile


def draw_split(source: Source, split: str, columns: int = 8, cell: int = 96,
               seed: int = 0) -> Image.Image:
  """One section of the grid: header, photo, partial sketches, caption rows."""
  sp = source.split(split)
  picks = _pick_columns(source, split, columns, seed)
  photo_of_label: dict[int, int] = {}
  for i, p in enumerate(sp.photos):
    photo_of_label.setdefault(p.label, i)
  cols = []
  vector = False
  for si in picks:
    sk_item = sp.sketches[si]
    pi = sk_item.photo if sk_item.photo is not None else photo_of_label.get(sk_item.label)
    col: dict[str, Any] = {"name": source.categories[sk_item.label], "photo": None,
                           "caption": None, "sketches": {}}
    if pi is not None:
      try:
        col["photo"] = pipeline.load_photo(source, sp.photos[pi], cell)
        col["caption"] = source.caption(sp.photos[pi])
      except BadSample:
        pass
    try:
      is_vector = source.load_sketch(sk_item).strokes is not None
      vector |= is_vector
      for level in PARTIAL_LEVELS if is_vector else (1.0,):
        col["sketches"][level] = pipeline.render_sketch(source, sk_item, cell, level)
    except BadSample:
      pass
    cols.append(col)
  levels = PARTIAL_LEVELS if vector else (1.0,)
  has_captions = any(c["caption"] for c in cols)
  font = _font(11)
  header, cap_h = 32, (7 * 12 + 6 if has_captions else 0)
  rows = 1 + len(levels)
  label_w = 70
  width = label_w + max(1, len(cols)) * (cell + 4)
  height = header + rows * (cell + 4) + cap_h
  img = Image.new("RGB", (width, height), "white")
  draw = ImageDraw.Draw(img)
  draw.text((4, 4), f"{source.name} / {split}: {len(sp.categories)} categories, "
            f"{len(sp.photos)} photos, {len(sp.sketches)} sketches", fill="black", font=_font(13))
  row_names = ["photo"] + [f"sketch {int(round(100 * lv))}%" for lv in levels]
  for r, name in enumerate(row_names):
    draw.text((4, header + r * (cell + 4) + cell // 2 - 6), name, fill="black", font=font)
  for c, col in enumerate(cols):
    x = label_w + c * (cell + 4)
    draw.text((x, header - 14), col["name"][:16], fill=(0, 0, 160), font=font)
    img.paste(_tile(col["photo"], cell, "no photo"), (x, header))
    for r, lv in enumerate(levels, start=1):
      img.paste(_tile(col["sketches"].get(lv), cell, "unreadable"), (x, header + r * (cell + 4)))
    if col["caption"]:
      wrapped = textwrap.wrap(col["caption"], width=max(8, cell // 6))[:7]
      draw.multiline_text((x, header + rows * (cell + 4) + 2), "\n".join(wrapped),
                          fill=(60, 60, 60), font=_font(10), spacing=2)
  return img


def draw_grid(source: Source, splits: Sequence[str], path: str, columns: int = 8,
              cell: int = 96, seed: int = 0) -> Image.Image:
  sections = [draw_split(source, s, columns, cell, seed) for s in splits
              if source.split(s).sketches]
  if not sections:
    raise DataError(f"{source.name}: no sketches in splits {list(splits)}; nothing to draw")
  return stack(sections, path)


# ----------------------------------------------------------------------------


def _parse_options(options: Sequence[str]) -> dict[str, Any]:
  out = {}
  for opt in options:
    if "=" not in opt:
      raise SystemExit(f"--option must be key=value, got {opt!r}")
    k, v = opt.split("=", 1)
    try:
      out[k] = ast.literal_eval(v)
    except (ValueError, SyntaxError):
      out[k] = v  # a plain string
  return out


def main(argv: Sequence[str] | None = None) -> int:
  from sgvu.tools import show_data_more  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  names = sorted(set().union(*show_data_more.TABLES.values()))
  parser.add_argument("--dataset", required=True, choices=names)
  parser.add_argument("--kind", default=None, choices=show_data_more.KINDS,
                      help="which table --dataset is from (default: the first that has it; "
                           "--dataset=synth --kind=localization for the synthetic scenes)")
  parser.add_argument("--root", default=None, help="dataset folder (not for the generated synth*)")
  parser.add_argument("--tfds_data_dir", default=None,
                      help="read the TFDS copy that sgvu.tools.build_tfds wrote here instead of --root")
  parser.add_argument("--out", default="grid.png", help="grid PNG to write")
  parser.add_argument("--split", action="append", default=None,
                      help="split(s) to check (default: all)")
  parser.add_argument("--option", action="append", default=[],
                      help="reader option key=value (e.g. max_per_class=500, extended=False)")
  parser.add_argument("--limit", type=int, default=0,
                      help="decode only the first N photos / sketches (images / queries) per split (0: all)")
  parser.add_argument("--columns", type=int, default=8,
                      help="samples per split: columns of a retrieval grid, rows of a composed / localization one")
  parser.add_argument("--cell", type=int, default=96, help="grid cell size in pixels")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--threads", type=int, default=4, help="decoding threads")
  parser.add_argument("--strict", action="store_true", help="exit 1 if any file was skipped")
  parser.add_argument("--no_progress", action="store_true")
  args = parser.parse_args(argv)
  if args.root and args.tfds_data_dir:
    parser.error("give --root or --tfds_data_dir, not both")
  kind = args.kind or show_data_more.kind_of(args.dataset)
  if args.dataset not in show_data_more.TABLES[kind]:
    parser.error(f"{args.dataset} is not a {kind} dataset; {kind} ones: {sorted(show_data_more.TABLES[kind])}")
  try:
    options = _parse_options(args.option)
    if not args.root and not args.tfds_data_dir and args.dataset not in show_data_more.GENERATED[kind]:
      raise DataError(f"{args.dataset}: give --root=DIR (the dataset folder) or --tfds_data_dir=DIR (its "
                      "sgvu.tools.build_tfds copy); see docs/datasets.md")
    if kind != "retrieval":
      return show_data_more.run(args, kind, options)
    if args.tfds_data_dir:
      source = get_tfds_source(args.dataset, args.tfds_data_dir, **options)
    else:
      source = get_source(args.dataset, args.root, **options)
    splits = args.split or list(source.split_names)
    reports = [check_split(source, s, args.limit or None, not args.no_progress, args.threads)
               for s in splits]
    print(format_report(source, reports))
    draw_grid(source, splits, args.out, args.columns, args.cell, args.seed)
  except DataError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"grid written to {args.out}")
  bad = len(source.skipped) + sum(len(r.skipped) for r in reports)
  return 1 if (args.strict and bad) else 0


if __name__ == "__main__":
  sys.exit(main())
