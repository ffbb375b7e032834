"""Sketch datasets by name: DATASETS and get_source (re-exported by sgvu.data).

Left out of every code hash (sgvu.experiment.REGISTRIES): adding a dataset here
must not invalidate the tables or the shipped CLIP; a reader's own module is
hashed wherever it is imported.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from sgvu.data.base import DataError, Source


def construct(dataset: str, cls: type, *args: Any, **kwargs: Any) -> Any:
  """cls(*args, **kwargs), with a misspelt option named for the dataset."""
  try:
    inspect.signature(cls).bind(*args, **kwargs)
  except TypeError as e:
    raise DataError(f"{dataset}: bad option ({e}); see docs/datasets.md") from None
  return cls(*args, **kwargs)


def _synth(root: str | None, **kwargs: Any) -> Source:
  if root is not None:
    raise DataError(f"synth: takes no root (got {root!r}); it is generated, not read")
  from sgvu.data.synth import SynthSketch  # pylint: disable=g-import-not-at-top
  return construct("synth", SynthSketch, **kwargs)


def _sketchy(root: str | None, **kwargs: Any) -> Source:
  from sgvu.data.sketchy import Sketchy  # pylint: disable=g-import-not-at-top
  return construct("sketchy", Sketchy, root, **kwargs)


def _tuberlin(root: str | None, **kwargs: Any) -> Source:
  from sgvu.data.tuberlin import TUBerlin  # pylint: disable=g-import-not-at-top
  return construct("tuberlin", TUBerlin, root, **kwargs)


def _quickdraw(root: str | None, **kwargs: Any) -> Source:
  from sgvu.data.quickdraw import QuickDraw  # pylint: disable=g-import-not-at-top
  return construct("quickdraw", QuickDraw, root, **kwargs)


def _qmul(variant: str) -> Callable[..., Source]:
  def make(root: str | None, **kwargs: Any) -> Source:
    from sgvu.data.qmul import QMUL  # pylint: disable=g-import-not-at-top
    return construct(variant.lower(), QMUL, root, variant=variant, **kwargs)
  return make


# Readers are imported on use, so `import sgvu.data` stays cheap.
DATASETS: dict[str, Callable[..., Source]] = {
    "synth": _synth,
    "sketchy": _sketchy,
    "tuberlin": _tuberlin,
    "quickdraw": _quickdraw,
    "shoev2": _qmul("ShoeV2"),
    "chairv2": _qmul("ChairV2"),
}


def get_source(name: str, root: str | None = None, **kwargs: Any) -> Source:
  """The dataset `name` read from `root` (None for synth); kwargs are reader options."""
  if name not in DATASETS:
    raise DataError(f"unknown dataset {name!r}; valid: {sorted(DATASETS)}")
  return DATASETS[name](root, **kwargs)


# ---------------------------------------------------------------------------- localization (issue #11)
# Scenes with boxes and a sketch query (sgvu.data.localization); readers are imported on use.


def _synth_scenes(root: str | None, **options: Any) -> Any:
  if root is not None:
    raise DataError(f"synth: takes no root (got {root!r}); its scenes are generated, not read")
  from sgvu.data.synth_localization import SynthLocalization  # pylint: disable=g-import-not-at-top
  return construct("synth", SynthLocalization, **options)


def _coco(root: str | None, **options: Any) -> Any:
  from sgvu.data.coco_localization import COCOLocalization  # pylint: disable=g-import-not-at-top
  return construct("coco", COCOLocalization, root, **options)


def _voc(root: str | None, **options: Any) -> Any:
  from sgvu.data.voc_localization import VOCLocalization  # pylint: disable=g-import-not-at-top
  return construct("voc", VOCLocalization, root, **options)


LOCALIZATION_DATASETS: dict[str, Callable[..., Any]] = {"synth": _synth_scenes, "coco": _coco, "voc": _voc}


def get_localization_source(name: str, root: str | None = None, **options: Any) -> Any:
  """The localization dataset `name` read from `root` (None for synth); options are the reader's."""
  if name not in LOCALIZATION_DATASETS:
    raise DataError(f"unknown localization dataset {name!r}; valid: {sorted(LOCALIZATION_DATASETS)}")
  return LOCALIZATION_DATASETS[name](root, **options)


# ---------------------------------------------------------------------------- TFDS / ArrayRecord copies (issue #16)
# The same datasets, read from the copy sgvu.tools.build_tfds wrote (sgvu.data.tfds_source); TFDS is imported on use.

def get_tfds_source(name: str, data_dir: str, **options: Any) -> Source:
  """The TFDS copy of dataset `name` in `data_dir` (local or gs://); options are the reader's it was built with.
  Which datasets have one: sgvu.data.tfds_format.DATASETS."""
  from sgvu.data import tfds_source  # pylint: disable=g-import-not-at-top
  return tfds_source.open(name, data_dir, **options)


def get_tfds_composed_source(name: str, data_dir: str, **options: Any):
  """The TFDS copy of composed dataset `name` in `data_dir` (local or gs://), a sgvu.data.composed.ComposedSource;
  options are the reader's it was built with. Which datasets have one: sgvu.data.tfds_composed.DATASETS."""
  from sgvu.data import tfds_composed  # pylint: disable=g-import-not-at-top
  return tfds_composed.open(name, data_dir, **options)


def get_tfds_localization_source(name: str, data_dir: str, **options: Any):
  """The TFDS copy of localization dataset `name` ('coco', 'voc') in `data_dir`, read as get_localization_source
  reads the folder it was built from; options are the reader's (sgvu.data.tfds_localization)."""
  from sgvu.data import tfds_localization  # pylint: disable=g-import-not-at-top
  return tfds_localization.open(name, data_dir, **options)


def get_tfds_voc_images(data_dir: str, split: str, max_images: int | None = None):
  """The PASCAL VOC 2012 pretext photos of `split` from the copy in `data_dir` (local or gs://), read as
  sgvu.data.voc_images.VOCImages(root, split, max_images) reads the folder it was built from
  (sgvu.data.tfds_voc_images; `--dataset=voc2012_images`)."""
  from sgvu.data import tfds_voc_images  # pylint: disable=g-import-not-at-top
  return tfds_voc_images.open(data_dir, split, max_images=max_images)


# Composed (sketch + text) retrieval datasets (sgvu.data.composed): their own interface, so their own table.
def _composed_synth(cls_name: str) -> Callable[..., Any]:
  def make(root: str | None, **options: Any):
    if root is not None:
      raise DataError(f"{cls_name}: takes no root (got {root!r}); it is generated, not read")
    from sgvu.data import composed  # pylint: disable=g-import-not-at-top
    return construct(cls_name, getattr(composed, cls_name), **options)
  return make


def _composed_real(cls_name: str, **fixed: Any) -> Callable[..., Any]:
  def make(root: str | None, **options: Any):
    from sgvu.data import composed_real  # pylint: disable=g-import-not-at-top
    if set(fixed) & set(options):
      raise DataError(f"{cls_name}: option(s) {sorted(set(fixed) & set(options))} are fixed by the dataset name")
    return construct(cls_name, getattr(composed_real, cls_name), root, **fixed, **options)
  return make


COMPOSED_DATASETS: dict[str, Callable[..., Any]] = {
    "synth_scenes": _composed_synth("SynthComposedScenes"),
    "synth_instances": _composed_synth("SynthComposedInstances"),
    "cstbir": _composed_real("CSTBIR"),
    "fscoco": _composed_real("FSCOCO"),
    "shoev2_duet": _composed_real("QMULDuet", variant="ShoeV2"),
    "chairv2_duet": _composed_real("QMULDuet", variant="ChairV2"),
}


def get_composed_source(name: str, root: str | None = None, **options: Any):
  """The composed-retrieval dataset `name` (a sgvu.data.composed.ComposedSource) read from `root` (None for
  the synthetic ones)."""
  if name not in COMPOSED_DATASETS:
    raise DataError(f"unknown composed dataset {name!r}; valid: {sorted(COMPOSED_DATASETS)}")
  return COMPOSED_DATASETS[name](root, **options)
