"""Copies a local dataset into TFDS ArrayRecord shards that every host of a pod can read (no TensorFlow).

  python -m sgvu.tools.build_tfds --dataset=sketchy --manual_dir=/data/Sketchy --data_dir=/data/tfds
  python -m sgvu.tools.build_tfds --dataset=quickdraw --manual_dir=/data/QuickDraw \
      --data_dir=gs://bucket/tfds --option max_per_class=1000
  python -m sgvu.tools.build_tfds --dataset=cstbir --manual_dir=/data/CSTBIR --data_dir=/data/tfds
  python -m sgvu.tools.build_tfds --dataset=coco --manual_dir=/data/coco --option sketch_root=/data/quickdraw \
      --data_dir=/data/tfds
  python -m sgvu.tools.build_tfds --dataset=voc2012_images --manual_dir=/data/VOC2012 --data_dir=/data/tfds

--manual_dir is the folder the directory reader reads (docs/datasets.md); --option passes reader
options (they also name the copy: <data_dir>/sgvu_<name>/<config>/<version>). Every file is
decoded once; files that fail are skipped, printed and counted (metadata.json records them). A
complete copy already in --data_dir is reused (--overwrite rebuilds); an interrupted build leaves
only an `incomplete.*` folder, which never reads as a dataset. Exit status: 0 built or reused,
2 on a dataset error, 1 with --strict when anything was skipped.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from sgvu.data import DataError
from sgvu.data import tfds_format as fmt
from sgvu.tools.show_data import _parse_options

# The other families' names, here so that --help imports no TFDS (each module's DATASETS says the same; tested).
COMPOSED_DATASETS = ("cstbir", "fscoco", "shoev2_duet", "chairv2_duet")  # sgvu.data.tfds_composed
LOCALIZATION_DATASETS = ("coco", "voc")  # sgvu.data.tfds_localization
VOC_IMAGES_DATASETS = ("voc2012_images",)  # sgvu.data.tfds_voc_images (the context task's pretext photos)


def summary(meta: dict) -> str:
  """Per split: categories, readable / all photos and sketches; then every skipped file."""
  lines = [f"dataset {meta['dataset']} (config {meta['config']}): {len(meta['categories'])} categories, "
           f"sketches stored as {'/'.join(meta['sketch_formats']) or 'nothing'}"]
  for split, entry in meta["splits"].items():
    parts = []
    for kind in fmt.KINDS:
      records = entry[kind]["records"]
      parts.append(f"{kind} {sum(r >= 0 for r in records)}/{len(records)}")
    lines.append(f"  split {split}: categories {len(entry['categories'])}, {', '.join(parts)}")
  lines.append(f"skipped {meta['skipped']} file(s)")
  lines += [f"  skipped while indexing {k}: {r}" for k, r in meta["skipped_index"]]
  lines += [f"  skipped (does not decode) {k}: {r}" for k, r in meta["skipped_load"]]
  return "\n".join(lines)


def _family(dataset: str):
  """The module that builds copies of `dataset`'s family (composed / localization / VOC images; imports TFDS)."""
  # pylint: disable=g-import-not-at-top
  if dataset in COMPOSED_DATASETS:
    from sgvu.data import tfds_composed as module
  elif dataset in VOC_IMAGES_DATASETS:
    from sgvu.data import tfds_voc_images as module
  else:
    from sgvu.data import tfds_localization as module
  return module


def build_other(args) -> int:
  """Composed, localization and VOC image datasets: their own index and records (sgvu.data.tfds_composed /
  _localization / _voc_images)."""
  module = _family(args.dataset)
  try:
    options = _parse_options(args.option)
    path = module.dataset_dir(args.data_dir, args.dataset, options)
    reused = not args.overwrite and os.path.isfile(os.path.join(path, "dataset_info.json"))
    kw = dict(overwrite=args.overwrite, threads=args.threads, report=lambda s: print(s, file=sys.stderr, flush=True))
    if args.dataset in VOC_IMAGES_DATASETS:  # one copy of every split; no reader options
      path = module.build(args.manual_dir, args.data_dir, **kw)
    else:
      path = module.build(args.dataset, args.manual_dir, args.data_dir, **kw, **options)
    meta = module.metadata(path)
  except DataError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(module.summary(meta))
  print(f"{'reused' if reused else 'built'}: {path}")
  return 1 if (args.strict and meta.get("skipped")) else 0


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--dataset", required=True,
                      choices=list(fmt.DATASETS) + list(COMPOSED_DATASETS) + list(LOCALIZATION_DATASETS)
                      + list(VOC_IMAGES_DATASETS))
  parser.add_argument("--manual_dir", required=True, help="the dataset folder the directory reader reads")
  parser.add_argument("--data_dir", required=True, help="TFDS data_dir to write (local or gs://)")
  parser.add_argument("--option", action="append", default=[],
                      help="reader option key=value (e.g. max_per_class=1000, extended=False)")
  parser.add_argument("--threads", type=int, default=4, help="decoding threads")
  parser.add_argument("--overwrite", action="store_true", help="rebuild even if a complete copy exists")
  parser.add_argument("--strict", action="store_true", help="exit 1 if any file was skipped")
  args = parser.parse_args(argv)
  if args.dataset not in fmt.DATASETS:
    return build_other(args)
  from sgvu.data import tfds_builders  # pylint: disable=g-import-not-at-top  # imports TFDS
  try:
    result = tfds_builders.build(args.dataset, args.manual_dir, args.data_dir, _parse_options(args.option),
                                 overwrite=args.overwrite, threads=args.threads,
                                 report=lambda s: print(s, file=sys.stderr, flush=True))
  except DataError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(summary(result.metadata))
  print(f"{'reused' if result.reused else 'built'}: {result.path}")
  return 1 if (args.strict and result.metadata.get("skipped")) else 0


if __name__ == "__main__":
  sys.exit(main())
