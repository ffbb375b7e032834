"""Retrieval metrics from saved embeddings.

  python -m sgvu.tools.evaluate --embeddings E.npz --out M.json

E.npz holds `query_embeds` [Q, D] and `gallery_embeds` [G, D], and either
`query_labels` [Q] + `gallery_labels` [G] (category-level relevance) or
`query_targets` [Q] (instance-level: gallery index of each query's true item).
Writes `mAP@all`, `mAP@K`, `P@K`, `Acc@K`, `R@K` (K from --ks, default
1,5,10,100,200) and `MdR` as JSON, and prints them. Conventions:
docs/metrics.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from typing import Sequence

import numpy as np

from sgvu import compile_cache
from sgvu.metrics import retrieval

_RELEVANCE_KEYS = {"labels": ("query_labels", "gallery_labels"), "targets": ("query_targets",)}


class EvaluateError(ValueError):
  """A problem with the input file, named in the message."""


def _parse_ks(text: str) -> tuple[int, ...]:
  try:
    ks = tuple(int(k) for k in text.split(",") if k.strip())
  except ValueError:
    raise argparse.ArgumentTypeError(f"--ks must be comma-separated integers, got {text!r}") from None
  if not ks or min(ks) < 1:
    raise argparse.ArgumentTypeError(f"--ks must be positive integers, got {text!r}")
  return ks


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(prog="python -m sgvu.tools.evaluate", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--embeddings", required=True, help="input .npz (keys: see above)")
  parser.add_argument("--out", help="output .json (default: print only)")
  parser.add_argument("--ks", type=_parse_ks, default=retrieval.DEFAULT_KS,
                      help="comma-separated K for mAP@K, P@K, Acc@K, R@K (default 1,5,10,100,200)")
  parser.add_argument("--relevance", choices=("auto", "labels", "targets"), default="auto",
                      help="labels: same label is relevant; targets: query_targets; auto: labels if "
                           "query_labels is in the file, else targets")
  parser.add_argument("--block_size", type=int, default=retrieval.DEFAULT_BLOCK_SIZE,
                      help="queries per block (memory ~ (4 * block_size + 33 * 32) * G bytes on CPU; docs/metrics.md)")
  return parser


def load_embeddings(path: str, relevance: str = "auto") -> tuple[str, dict[str, np.ndarray]]:
  """Reads and checks the arrays; returns ("labels" | "targets", {key: array})."""
  if not os.path.isfile(path):
    raise EvaluateError(f"{path}: no such file")
  try:
    with np.load(path, allow_pickle=False) as data:
      arrays = {key: data[key] for key in data.files}
  except Exception as e:  # zip / format errors: name the file
    raise EvaluateError(f"{path}: cannot read as .npz ({e})") from e
  if relevance == "auto":
    relevance = "labels" if "query_labels" in arrays else "targets"
  keys = ("query_embeds", "gallery_embeds") + _RELEVANCE_KEYS[relevance]
  missing = [k for k in keys if k not in arrays]
  if missing:
    raise EvaluateError(f"{path}: missing key(s) {missing} for --relevance={relevance}; "
                        f"the file has {sorted(arrays)}")
  for key in ("query_embeds", "gallery_embeds"):
    if arrays[key].ndim != 2:
      raise EvaluateError(f"{path}: {key} must be 2-D [num, dim], got shape {arrays[key].shape}")
  lengths = {"query_labels": "query_embeds", "gallery_labels": "gallery_embeds", "query_targets": "query_embeds"}
  for key in _RELEVANCE_KEYS[relevance]:
    rows = len(arrays[lengths[key]])
    if arrays[key].shape != (rows,):
      raise EvaluateError(f"{path}: {key} must have shape ({rows},) to match {lengths[key]}, "
                          f"got {arrays[key].shape}")
  return relevance, {k: arrays[k] for k in keys}


def evaluate(path: str, ks: Sequence[int] = retrieval.DEFAULT_KS, relevance: str = "auto",
             block_size: int = retrieval.DEFAULT_BLOCK_SIZE) -> dict[str, float]:
  relevance, arrays = load_embeddings(path, relevance)
  try:
    if relevance == "labels":
      return retrieval.retrieval_metrics(arrays["query_embeds"], arrays["query_labels"],
                                         arrays["gallery_embeds"], arrays["gallery_labels"],
                                         ks=ks, block_size=block_size)
    return retrieval.instance_metrics(arrays["query_embeds"], arrays["query_targets"],
                                      arrays["gallery_embeds"], ks=ks, block_size=block_size)
  except ValueError as e:  # bad values (NaN, out-of-range targets, ...): name the file
    raise EvaluateError(f"{path}: {e}") from e


def main(argv: Sequence[str] | None = None) -> int:
  args = build_parser().parse_args(argv)
  compile_cache.enable()
  try:
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter("always", retrieval.NoRelevantWarning)
      metrics = evaluate(args.embeddings, args.ks, args.relevance, args.block_size)
  except EvaluateError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  for w in caught:
    print(f"warning: {args.embeddings}: {w.message}", file=sys.stderr)
  text = json.dumps(metrics, indent=2)
  print(text)
  if args.out:
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    with open(args.out, "w") as f:
      f.write(text + "\n")
  return 0


if __name__ == "__main__":
  sys.exit(main())
