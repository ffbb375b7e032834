"""show_data for the composed (sketch + text) and the localization datasets; sgvu.tools.show_data dispatches here.

  python -m sgvu.tools.show_data --dataset=cstbir --root=/data/CSTBIR --out=cstbir.png
  python -m sgvu.tools.show_data --dataset=cstbir --tfds_data_dir=/data/tfds --out=cstbir.png
  python -m sgvu.tools.show_data --dataset=coco --root=/data/coco --option sketch_root=/data/quickdraw
  python -m sgvu.tools.show_data --dataset=synth --kind=localization --option "num_scenes=(20, 5, 10)"

Composed: decodes every gallery image and query sketch of every split and prints per split the categories,
images and queries that load (a query loads when its sketch and its target image do) and each skipped file;
the grid has a row per query: its sketch, its category and text, its target image (the sketched object's box
where the dataset has one). Localization: decodes every image and the draw-0 query sketches of every query and
prints per split the categories, images, queries and boxes (all, and those of the query category), each skipped
file, then the reader's skips while indexing and its `dropped` counts; the grid has a row per query: its
sketch(es) and the image with its boxes (query category thick green, others thin blue, 'ignore' orange).
The folder and its TFDS copy print and draw the same (tests/test_show_data_more.py).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import textwrap
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from sgvu import fonts
from sgvu.data import composed as composed_lib
from sgvu.data import registry, sketch_files
from sgvu.data.base import BadSample, DataError
from sgvu.tools.show_common import Progress, round_robin, stack

KINDS = ("retrieval", "composed", "localization")
TABLES = {"retrieval": registry.DATASETS, "composed": registry.COMPOSED_DATASETS,
          "localization": registry.LOCALIZATION_DATASETS}
GENERATED = {"retrieval": {"synth"}, "composed": {"synth_scenes", "synth_instances"}, "localization": {"synth"}}
Skip = tuple[str, str]  # (key, reason)
QUERY_BOX, OTHER_BOX, IGNORE_BOX = (0, 200, 0), (80, 120, 255), (255, 140, 0)  # box outlines in the grids


def kind_of(name: str) -> str:
  """The first table (retrieval, composed, localization) with `name`; 'synth' is retrieval unless --kind says."""
  return next(k for k in KINDS if name in TABLES[k])


def open_source(kind: str, name: str, root: str | None, tfds_data_dir: str | None, options: dict[str, Any]):
  """The folder reader or the TFDS copy of a composed / localization dataset."""
  if kind == "composed":
    if tfds_data_dir:
      return registry.get_tfds_composed_source(name, tfds_data_dir, **options)
    return registry.get_composed_source(name, root, **options)
  if tfds_data_dir:
    return registry.get_tfds_localization_source(name, tfds_data_dir, **options)
  return registry.get_localization_source(name, root, **options)


def _outcome(check: Callable[..., None], *args: Any) -> Skip | None:
  """None if check(*args) passes, else the (key, reason) of its BadSample."""
  try:
    check(*args)
  except BadSample as e:
    return (e.key, e.reason)
  return None


def _decode_all(pool, fn, items, label: str, progress: bool) -> list[Skip | None]:
  """fn(item) -> None / (key, reason) for every item, in order, on the pool; progress on stderr."""
  bar = Progress(label, len(items)) if progress and items else None
  out = []
  for i, r in enumerate(pool.map(fn, items), start=1):
    out.append(r)
    if bar:
      bar.update(i)
  return out


def _unique(skips) -> list[Skip]:
  return list(dict.fromkeys(s for s in skips if s is not None))


@dataclasses.dataclass
class SplitReport:
  name: str
  categories: int
  images: int  # decoded fine
  images_total: int
  queries: int  # sketch (and image) load
  queries_total: int
  skipped: list[Skip]
  boxes: int = 0  # localization: every box of the split's images, and the query-category boxes of its queries
  query_boxes: int = 0


# ---------------------------------------------------------------------------- composed


def _check_sketch(source, query) -> None:
  sketch = source.load_sketch(query)
  if sketch.strokes is None and sketch.raster is None:
    raise BadSample(query.sketch, "sketch has neither strokes nor raster")


def _check_image(source, split: str, index: int) -> None:
  img = np.asarray(source.load_image(split, index))
  if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
    raise BadSample(source.split(split).images[index], f"image decoded to {img.dtype} {img.shape}")


def check_composed_split(source, split: str, limit: int | None, progress: bool, pool) -> SplitReport:
  """Decodes the gallery (or its first `limit` images), each query's sketch and target (or the first `limit`)."""
  sp = source.split(split)
  gallery = range(min(limit, len(sp.images)) if limit else len(sp.images))
  queries = sp.queries[:limit] if limit else sp.queries
  targets = list(dict.fromkeys(list(gallery) + [q.target for q in queries]))  # beyond the limit: decoded too
  image_bad = dict(zip(targets, _decode_all(pool, functools.partial(_outcome, _check_image, source, split),
                                            targets, f"{split} images", progress)))
  first = list({q.sketch: q for q in queries}.values())  # a sketch several queries share is decoded once
  sketch_bad = dict(zip([q.sketch for q in first], _decode_all(
      pool, functools.partial(_outcome, _check_sketch, source), first, f"{split} sketches", progress)))
  ok = [sketch_bad[q.sketch] is None and image_bad.get(q.target) is None for q in queries]
  skipped = _unique([image_bad[i] for i in targets] + [sketch_bad[q.sketch] for q in first])
  return SplitReport(split, len(sp.categories), sum(image_bad[i] is None for i in gallery), len(gallery),
                     sum(ok), len(queries), skipped)


def format_composed(source, reports: Sequence[SplitReport]) -> str:
  lines = [f"dataset {source.name} ({source.kind}): {len(source.categories)} categories"]
  if source.skipped:
    lines.append(f"  skipped while indexing: {len(source.skipped)}")
    lines += [f"    {k}: {r}" for k, r in source.skipped]
  for note, n in sorted(dict(getattr(source, "notes", None) or {}).items()):
    lines.append(f"  note: {note}: {n}")
  for r in reports:
    lines.append(f"  split {r.name}: categories {r.categories}, images {r.images}/{r.images_total}, "
                 f"queries {r.queries}/{r.queries_total}, skipped {len(r.skipped)}")
    lines += [f"    skipped {k}: {why}" for k, why in r.skipped]
  return "\n".join(lines)


# ---------------------------------------------------------------------------- localization


def _check_queries(source, sp, item) -> None:
  for key, sketch in source.query_sketches(sp, sp.images[item.image], item.label, 0):
    if sketch.strokes is None and sketch.raster is None:
      raise BadSample(key, "sketch has neither strokes nor raster")


def _check_record(source, record) -> None:
  img = np.asarray(source.load_image(record))
  if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
    raise BadSample(record.key, f"image decoded to {img.dtype} {img.shape}")


def check_localization_split(source, split: str, limit: int | None, progress: bool, pool,
                             seen: dict[str, Skip | None]) -> SplitReport:
  """Decodes the split's images (or the first `limit`; `seen`: image key -> outcome, shared by the splits) and
  the draw-0 query sketches of each query (or the first `limit`)."""
  sp = source.split(split)
  records = sp.images[:limit] if limit else sp.images
  items = sp.items[:limit] if limit else sp.items
  image_of = [sp.images[it.image] for it in items]  # beyond the limit: decoded too
  todo = list({r.key: r for r in list(records) + image_of if r.key not in seen}.values())
  seen.update(zip([r.key for r in todo], _decode_all(pool, functools.partial(_outcome, _check_record, source),
                                                      todo, f"{split} images", progress)))
  sketch_bad = _decode_all(pool, functools.partial(_outcome, _check_queries, source, sp), items,
                           f"{split} queries", progress)
  ok = [bad is None and seen[r.key] is None for r, bad in zip(image_of, sketch_bad)]
  skipped = _unique([seen[r.key] for r in records] + [seen[r.key] for r in image_of] + sketch_bad)
  boxes = sum(len(r.boxes) for r in sp.images)
  query_boxes = sum(int(((sp.images[it.image].labels == it.label) & ~sp.images[it.image].ignore).sum())
                    for it in sp.items)
  return SplitReport(split, len(sp.categories), sum(seen[r.key] is None for r in records), len(records), sum(ok),
                     len(items), skipped, boxes, query_boxes)


def format_localization(source, reports: Sequence[SplitReport]) -> str:
  lines = [f"dataset {source.name} (localization): {len(source.categories)} categories, {len(source.seen)} seen, "
           f"{len(source.unseen)} unseen"]
  for r in reports:
    lines.append(f"  split {r.name}: categories {r.categories}, images {r.images}/{r.images_total}, "
                 f"queries {r.queries}/{r.queries_total}, boxes {r.boxes} (of the queries' categories "
                 f"{r.query_boxes}), skipped {len(r.skipped)}")
    lines += [f"    skipped {k}: {why}" for k, why in r.skipped]
  skipped, dropped = tuple(source.skipped), dict(source.dropped)  # after every split was indexed
  lines.append(f"  skipped while indexing: {len(skipped)}")
  lines += [f"    {k}: {r}" for k, r in skipped]
  lines.append(f"  dropped by the protocol: {sum(dropped.values())}")
  lines += [f"    {k}: {n}" for k, n in sorted(dropped.items())]
  return "\n".join(lines)


# ---------------------------------------------------------------------------- the grid


def _fit(img: np.ndarray, cell: int) -> tuple[Image.Image, float, int, int]:
  """(img scaled to fit cell x cell and centred on grey, scale, x offset, y offset)."""
  h, w = img.shape[:2]
  s = cell / max(h, w)
  nw, nh = max(1, round(w * s)), max(1, round(h * s))
  tile = Image.new("RGB", (cell, cell), (235, 235, 235))
  dx, dy = (cell - nw) // 2, (cell - nh) // 2
  tile.paste(Image.fromarray(img).convert("RGB").resize((nw, nh), Image.BICUBIC), (dx, dy))
  return tile, s, dx, dy


def _unreadable(cell: int, why: str = "unreadable") -> Image.Image:
  tile = Image.new("RGB", (cell, cell), (235, 235, 235))
  ImageDraw.Draw(tile).text((4, cell // 2 - 6), why, fill=(90, 90, 90), font=fonts.label_font(10))
  return tile


def _section(title: str, rows: list[list[tuple[str, Any]]], cell: int, text_w: int) -> Image.Image:
  """A header line, then a row per entry: ('tile', Image) cells of cell px and ('text', str) cells of text_w px."""
  font, pad, header = fonts.label_font(11), 4, 24
  width = max([sum(cell + pad if k == "tile" else text_w + pad for k, _ in r) for r in rows] + [400]) + pad
  img = Image.new("RGB", (width, header + len(rows) * (cell + pad)), "white")
  draw = ImageDraw.Draw(img)
  draw.text((pad, 4), title, fill="black", font=fonts.label_font(13))
  per_line = max(8, int(text_w / (0.55 * 11)))
  for i, row in enumerate(rows):
    x, y = pad, header + i * (cell + pad)
    for k, v in row:
      if k == "tile":
        img.paste(v, (x, y))
        x += cell + pad
      else:
        lines = [part for para in v.split("\n") for part in textwrap.wrap(para, per_line) or [""]]
        draw.multiline_text((x, y + 2), "\n".join(lines[: max(1, cell // 14)]), fill=(40, 40, 40), font=font,
                            spacing=2)
        x += text_w + pad
  return img


def _composed_row(source, split: str, q, cell: int) -> list[tuple[str, Any]]:
  """The query's sketch, its category and text, its target image (with the sketched object's box if known)."""
  try:
    sketch = Image.fromarray(composed_lib.render_query_sketch(source, q, cell))
  except BadSample:
    sketch = _unreadable(cell)
  try:
    image = np.asarray(source.load_image(split, q.target, size=cell))
  except BadSample:
    target = _unreadable(cell)
  else:
    target, scale, dx, dy = _fit(image, cell)
    if q.box is not None:  # fractions of the target image
      h, w = image.shape[:2]
      x0, y0, x1, y1 = q.box
      ImageDraw.Draw(target).rectangle([dx + x0 * w * scale, dy + y0 * h * scale, dx + x1 * w * scale,
                                        dy + y1 * h * scale], outline=QUERY_BOX, width=2)
  return [("tile", sketch), ("text", f"[{source.categories[q.label]}]\n{q.text}"), ("tile", target)]


def _localization_row(source, sp, item, cell: int) -> list[tuple[str, Any]]:
  """The category and box count, the query's draw-0 sketch(es), the image with its boxes."""
  rec = sp.images[item.image]
  try:
    sketches = [Image.fromarray(sketch_files.render(sk, cell, key=k))
                for k, sk in source.query_sketches(sp, rec, item.label, 0)]
  except BadSample:
    sketches = [_unreadable(cell)] * source.num_query_sketches
  query = (rec.labels == item.label) & ~rec.ignore
  try:
    image = np.asarray(source.load_image(rec))
  except BadSample:
    tile = _unreadable(cell)
  else:
    tile, scale, dx, dy = _fit(image, cell)
    draw = ImageDraw.Draw(tile)
    for on_top in (False, True):  # the query's boxes over the others
      for box, is_query, ignore in zip(rec.boxes, query, rec.ignore):
        if bool(is_query) == on_top:
          colour = QUERY_BOX if is_query else IGNORE_BOX if ignore else OTHER_BOX
          draw.rectangle([dx + box[0] * scale, dy + box[1] * scale, dx + box[2] * scale, dy + box[3] * scale],
                         outline=colour, width=2 if is_query else 1)
  text = f"{source.categories[item.label]}\n{int(query.sum())} of {len(rec.boxes)} boxes"
  return [("text", text)] + [("tile", t) for t in sketches] + [("tile", tile)]


def draw_composed_split(source, split: str, rows: int, cell: int, seed: int) -> Image.Image:
  sp = source.split(split)
  picks = round_robin([q.label for q in sp.queries], rows, seed)
  title = (f"{source.name} / {split}: {len(sp.categories)} categories, {len(sp.images)} images, "
           f"{len(sp.queries)} queries")
  return _section(title, [_composed_row(source, split, sp.queries[i], cell) for i in picks], cell,
                  max(160, 2 * cell))


def draw_localization_split(source, split: str, rows: int, cell: int, seed: int) -> Image.Image:
  sp = source.split(split)
  picks = round_robin([it.label for it in sp.items], rows, seed)
  title = f"{source.name} / {split}: {len(sp.categories)} categories, {len(sp.images)} images, {len(sp)} queries"
  return _section(title, [_localization_row(source, sp, sp.items[i], cell) for i in picks], cell, 100)


def draw_grid(kind: str, source, splits: Sequence[str], path: str, rows: int, cell: int, seed: int) -> Image.Image:
  if kind == "composed":
    sections = [draw_composed_split(source, s, rows, cell, seed) for s in splits if source.split(s).queries]
  else:
    sections = [draw_localization_split(source, s, rows, cell, seed) for s in splits if len(source.split(s))]
  if not sections:
    raise DataError(f"{source.name}: no queries in splits {list(splits)}; nothing to draw")
  return stack(sections, path)


# ---------------------------------------------------------------------------- CLI (show_data.main's arguments)


def run(args, kind: str, options: dict[str, Any]) -> int:
  """show_data for a composed / localization dataset: prints the report, writes the grid; the exit code."""
  source = open_source(kind, args.dataset, args.root, args.tfds_data_dir, options)
  splits = args.split or list(source.split_names)
  unknown = [s for s in splits if s not in source.split_names]
  if unknown:
    raise DataError(f"{source.name}: unknown split(s) {unknown}; valid: {list(source.split_names)}")
  limit, progress = args.limit or None, not args.no_progress
  with concurrent.futures.ThreadPoolExecutor(max(1, args.threads)) as pool:
    if kind == "composed":
      reports = [check_composed_split(source, s, limit, progress, pool) for s in splits]
      print(format_composed(source, reports))
    else:
      seen: dict[str, Skip | None] = {}
      reports = [check_localization_split(source, s, limit, progress, pool, seen) for s in splits]
      print(format_localization(source, reports))
  draw_grid(kind, source, splits, args.out, args.columns, args.cell, args.seed)
  print(f"grid written to {args.out}")
  bad = len(source.skipped) + sum(len(r.skipped) for r in reports)
  return 1 if (args.strict and bad) else 0
