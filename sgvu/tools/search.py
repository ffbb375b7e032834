"""Sketch in, photos out: queries the exported model (inference bundle) of a table row.

  python -m sgvu.tools.search --workdir W --sketch my.png --top 10 --out hits.png
  python -m sgvu.tools.search --workdir W --sketch my.ndjson --progressive --out progressive.png
  python -m sgvu.tools.search --bundle W/ours/seed0/bundle --sketch my.png

W is the workdir of `python -m sgvu.main`; every trained row (and 'frozen')
left a bundle in W/<method>/seed<k>/bundle (sgvu.export): its model, how it
embeds a sketch, and the embedded gallery (the split it was evaluated on).
`--method` picks the row (default: config.json's grid_method, else 'ppo' in
an on-the-fly workdir, else the first row of results.json with a bundle),
`--seed` its training seed; `--bundle DIR` names a bundle directly. Rows of
on-the-fly whose model is a head on the stage-1 backbone (B3, B4, ppo, ...)
embed a partial sketch by the nearest completion level's head.

A sketch is a picture (PNG/JPEG: white paper, dark strokes), a QuickDraw
.ndjson file (`--line N` picks the non-empty line, default the first) or a
.json file with one QuickDraw record ({"drawing": [[xs, ys], ...]}) or just
its list of strokes. Several sketches give one row each. The grid frames a
hit green/red by --category (is it that class?) or --target (is it that
photo?), else grey.

--progressive (stroke files only: a picture has no stroke order) queries
with the sketch after 1, 2, ..., N strokes (at most --rows counts, evenly
spread) and draws one row per count: how the top-k (default 5) changes as
the strokes arrive.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

import numpy as np

from sgvu import compile_cache, experiment, export, metrics, viz
from sgvu.data import DataError, Sketch, sketch_files


class SearchError(Exception):
  """A bad workdir, method, seed, --category / --target or option; the message names it."""


# ------------------------------------------------------------------ workdir -> bundle
def _read_json(path: str, missing: str | None = None):
  try:
    with open(path) as f:
      return json.load(f)
  except (FileNotFoundError, NotADirectoryError):
    if missing is None:
      return None
    raise SearchError(f"{path} not found: {missing}") from None
  except ValueError as e:
    raise SearchError(f"{path}: invalid JSON ({e})") from None


def bundles(workdir: str, seed: int = 0) -> dict[str, str]:
  """{method: bundle directory} of the rows with an exported model for `seed`, in results.json's order."""
  config = _read_json(os.path.join(workdir, "config.json"),
                      f"is {workdir!r} the workdir of a `python -m sgvu.main` run?")
  results = _read_json(os.path.join(workdir, "results.json")) or {}
  order = [r.get("method") for r in results.get("rows", [])] + list(config.get("methods", ()))
  found = {}
  for name in sorted(os.listdir(workdir)):  # rows outside results.json too (on-the-fly's stage 1, B1)
    meta = _read_json(os.path.join(workdir, name, f"seed{seed}", export.BUNDLE_DIR, export.META_FILE))
    if isinstance(meta, dict) and experiment.slug(str(meta.get("method"))) == name:
      found[meta["method"]] = os.path.join(workdir, name, f"seed{seed}", export.BUNDLE_DIR)
  rank = {m: i for i, m in reversed(list(enumerate(order)))}
  return dict(sorted(found.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))


def default_method(workdir: str, available: Sequence[str]) -> str | None:
  config = _read_json(os.path.join(workdir, "config.json")) or {}
  if config.get("grid_method") in available:
    return config["grid_method"]
  if config.get("task") == "on_the_fly" and "ppo" in available:
    return "ppo"
  return available[0] if available else None


def open_bundle(workdir: str, method: str | None = None, seed: int = 0) -> export.Bundle:
  """The exported model of row `method` (default: see the module doc), training seed `seed`."""
  available = bundles(workdir, seed)
  name = method or default_method(workdir, list(available))
  if name is None:
    raise SearchError(f"no row of {workdir} has an exported model for seed {seed} "
                      f"(<method>/seed{seed}/{export.BUNDLE_DIR}): was it trained?")
  if name not in available:
    raise SearchError(f"--method {name!r} has no exported model (bundle) for seed {seed} in {workdir}; "
                      f"methods with one: {list(available)}")
  return load_bundle(available[name])


def load_bundle(directory: str) -> export.Bundle:
  try:
    return export.load(directory)
  except export.BundleError as e:
    raise SearchError(str(e)) from None


# ------------------------------------------------------------------ queries
def gallery_categories(bundle: export.Bundle) -> list[str]:
  return sorted({bundle.categories[int(i)] for i in np.unique(bundle.gallery.labels)})


def check_category(bundle: export.Bundle, category: str | None) -> None:
  if category is not None and category not in gallery_categories(bundle):
    raise SearchError(f"--category {category!r} is not a class of the gallery; valid: {gallery_categories(bundle)}")


def target_row(bundle: export.Bundle, key: str) -> int:
  """The gallery row of photo `key` (--target)."""
  keys = [str(k) for k in bundle.gallery.keys]
  if key not in keys:
    raise SearchError(f"--target {key!r} is not a photo of the gallery; valid: {len(keys)} keys such as {keys[:8]}")
  return keys.index(key)


def search(bundle: export.Bundle, queries: np.ndarray, top: int = 10, fractions: np.ndarray | None = None
           ) -> list[list[dict]]:
  """Ranked hits per uint8 query [N, S, S, 3]: [{'rank', 'score' (cosine), 'category', 'photo', 'gallery_row'}].

  fractions [N]: the share of each sketch drawn (models with per-level heads pick the nearest level).
  """
  if top < 1:
    raise SearchError(f"--top must be >= 1, got {top}")
  g = bundle.gallery
  idx, scores = metrics.topk(bundle.embed_queries(queries, fractions), g.embeds, top)
  return [[{"rank": r + 1, "score": float(s), "category": bundle.categories[int(g.labels[j])],
            "photo": str(g.keys[j]), "gallery_row": int(j)}
           for r, (j, s) in enumerate(zip(row, row_scores))] for row, row_scores in zip(idx, scores)]


def progressive_search(bundle: export.Bundle, sketches: Sequence[Sketch], top: int = 5, rows: int = 6
                       ) -> list[tuple[list[int], np.ndarray, list[list[dict]]]]:
  """Per stroke sketch: (stroke counts [R], partial renderings [R, S, S, 3], ranked hits per count)."""
  parts = [viz.progressive_queries(s.strokes, bundle.image_size, rows) for s in sketches]
  # One search over every partial sketch: one batch shape to compile, not one per sketch.
  results = search(bundle, np.concatenate([p[1] for p in parts]), top, np.concatenate([p[2] for p in parts]))
  out, start = [], 0
  for counts, partial, _ in parts:
    out.append((counts, partial, results[start:start + len(counts)]))
    start += len(counts)
  return out


def draw(bundle: export.Bundle, queries: Sequence[np.ndarray], results: list[list[dict]], out: str, *,
         category: str | None = None, target: str | None = None, labels: Sequence[str] | None = None,
         title: str = "") -> None:
  """The retrieval grid: hits framed green/red by `category` or by the `target` photo when given, else grey."""
  check_category(bundle, category)
  target = None if target is None else target_row(bundle, target)
  hits = [[bundle.gallery_photo(h["gallery_row"]) for h in row] for row in results]
  correct = [[h["gallery_row"] == target if target is not None else
              h["category"] == category if category is not None else None for h in row] for row in results]
  title = title or f"top-{max(len(r) for r in results)}"
  title = (f"{bundle.meta.get('experiment', '?')}: {bundle.name}, {title} of {len(bundle.gallery.embeds)} "
           f"{bundle.meta.get('split', '')} photos")
  viz.retrieval_grid(list(queries), hits, correct, out, title=title, labels=labels)


# ------------------------------------------------------------------ CLI
def _print_hits(hits: list[dict], indent: str) -> None:
  for h in hits:
    print(f"{indent}{h['rank']:3d}  {h['score']:+.4f}  {h['category']:<20s} {h['photo']}")


def add_row_arguments(parser: argparse.ArgumentParser) -> None:
  """--workdir | --bundle, --method, --seed: which exported model a tool loads (search, serve)."""
  where = parser.add_mutually_exclusive_group(required=True)
  where.add_argument("--workdir", help="workdir of a `python -m sgvu.main` run")
  where.add_argument("--bundle", help="a bundle directory (W/<method>/seed<k>/bundle) instead of --workdir")
  parser.add_argument("--method", default=None, help="the row (default: grid_method / 'ppo' / the first with a bundle)")
  parser.add_argument("--seed", type=int, default=0, help="the row's training seed (default 0)")


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="python -m sgvu.tools.search", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  add_row_arguments(parser)
  parser.add_argument("--sketch", required=True, nargs="+", help="PNG/JPEG, QuickDraw .ndjson or .json strokes")
  parser.add_argument("--top", type=int, default=None, help="hits per query (default 10; 5 with --progressive)")
  parser.add_argument("--out", default=None, help="retrieval grid PNG (optional; required with --progressive)")
  frame = parser.add_mutually_exclusive_group()
  frame.add_argument("--category", default=None, help="frame hits of this class green, the rest red")
  frame.add_argument("--target", default=None, help="frame this photo (its key) green, the rest red")
  parser.add_argument("--progressive", action="store_true",
                      help="draw how the top-k changes as the strokes arrive (stroke files only)")
  parser.add_argument("--rows", type=int, default=6, help="--progressive: at most this many stroke counts")
  parser.add_argument("--line", type=int, default=0, help="which non-empty line of an .ndjson file (0-based)")
  return parser


def _run(args: argparse.Namespace) -> None:
  top = args.top if args.top is not None else 5 if args.progressive else 10
  if top < 1:
    raise SearchError(f"--top must be >= 1, got {top}")
  if args.progressive and not args.out:
    raise SearchError("--progressive draws a figure: give --out FILE.png")
  if args.rows < 1:
    raise SearchError(f"--rows must be >= 1, got {args.rows}")
  if args.bundle and args.method:
    raise SearchError("--method picks a row of --workdir; --bundle names the model itself")
  sketches = [sketch_files.read_sketch(p, args.line) for p in args.sketch]  # bad files fail before any loading
  if args.progressive:
    for path, s in zip(args.sketch, sketches):
      if s.strokes is None:
        raise SearchError(f"{path}: a picture has no stroke order; --progressive needs a stroke file "
                          f"({' or '.join(sketch_files.STROKE_SUFFIXES)}, QuickDraw format)")
  bundle = load_bundle(args.bundle) if args.bundle else open_bundle(args.workdir, args.method, args.seed)
  check_category(bundle, args.category)
  if args.target is not None:
    target_row(bundle, args.target)
  draw_kw = dict(category=args.category, target=args.target)
  if args.progressive:
    found = progressive_search(bundle, sketches, top, args.rows)
    several = len(found) > 1
    labels = [f"{'#%d ' % (i + 1) if several else ''}{c}/{counts[-1]}"
              for i, (counts, _, _) in enumerate(found) for c in counts]
    draw(bundle, np.concatenate([partial for _, partial, _ in found]), [h for _, _, rows in found for h in rows],
         args.out, labels=labels, title=f"top-{top} as the strokes arrive", **draw_kw)
    for path, (counts, _, rows) in zip(args.sketch, found):
      print(f"{path} ({counts[-1]} strokes):")
      for c, hits in zip(counts, rows):
        print(f"  after {c}/{counts[-1]} strokes:")
        _print_hits(hits, "    ")
  else:
    queries = np.stack([sketch_files.render(s, bundle.image_size, key=p) for p, s in zip(args.sketch, sketches)])
    results = search(bundle, queries, top)
    if args.out:
      draw(bundle, queries, results, args.out, **draw_kw)
    for path, hits in zip(args.sketch, results):
      print(f"{path}:")
      _print_hits(hits, "  ")
  if args.out:
    print(f"wrote {args.out}")


def main(argv: Sequence[str] | None = None) -> int:
  args = _parser().parse_args(argv)
  compile_cache.enable()
  try:
    _run(args)
  except (SearchError, DataError, OSError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
