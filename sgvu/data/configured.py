"""The dataset a config names (config.data), optionally rendered once into memory.

Used by tasks to build their data and by tools to reopen the gallery an
exported model was evaluated on (the bundle stores the data config).
"""

from __future__ import annotations

from typing import Any, Mapping

from sgvu.data import get_source
from sgvu.data import pipeline
from sgvu.data import registry
from sgvu.data.base import Source


def _get(c: Any, key: str, default=None):
  return c.get(key, default) if isinstance(c, Mapping) or hasattr(c, "get") else getattr(c, key, default)


def source_from_config(c, *, image_size: int | None = None, kinds: tuple[str, ...] = ("photo", "sketch"),
                       materialize: bool | None = None, **kwargs) -> Source:
  """config.data (a ConfigDict or its dict) -> Source; with materialize and `image_size`, rendered into memory.

  data.holdout = 'categories' | 'instances': a validation split carved from the train split
  (sgvu.data.holdout, every data.holdout_every-th category or photo); the test split is not touched.
  data.tfds_data_dir (local or gs://): read the TFDS / ArrayRecord copy there instead of data.root.
  """
  dataset = _get(c, "dataset")
  tfds_data_dir = _get(c, "tfds_data_dir", "")
  if dataset == "synth" and tfds_data_dir:
    raise ValueError(f"config.data.tfds_data_dir={tfds_data_dir!r}: synth is generated and has no TFDS copy; "
                     "leave it ''")
  if tfds_data_dir:  # the copy sgvu.tools.build_tfds made of the same folder: the same splits, items and skips
    options = _get(c, "reader_options") or {}
    options = options.to_dict() if hasattr(options, "to_dict") else dict(options)
    source = registry.get_tfds_source(dataset, tfds_data_dir, **{**options, **kwargs})
  elif dataset == "synth":
    kwargs = dict(seed=_get(c, "synth_seed"), photos_per_category=_get(c, "photos_per_category"),
                  sketches_per_photo=_get(c, "sketches_per_photo"), **kwargs)
    source = get_source("synth", None, **kwargs)
  elif not _get(c, "root"):
    raise ValueError(f"config.data.root is required for dataset {dataset!r} (the local copy; see docs/datasets.md)")
  else:
    options = _get(c, "reader_options") or {}
    options = options.to_dict() if hasattr(options, "to_dict") else dict(options)
    source = get_source(dataset, _get(c, "root"), **{**options, **kwargs})
  if _get(c, "holdout", ""):
    from sgvu.data.holdout import Holdout  # pylint: disable=g-import-not-at-top
    source = Holdout(source, _get(c, "holdout"), every=_get(c, "holdout_every", 5))
  if materialize is None:
    materialize = bool(_get(c, "materialize", False))
  if materialize and image_size:
    pipeline.materialize(source, image_size, kinds=kinds, num_workers=2)
  return source
