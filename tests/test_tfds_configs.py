"""Experiment configs read a dataset's TFDS copy through `data.tfds_data_dir` exactly as they read its folder
through `data.root`: the same splits, items, samples and skips, by the code each task builds its data with."""

import numpy as np
import pytest

from experiments import (cstbir_vg, duet_shoev2, localization, localization_coco, localization_voc,
                         on_the_fly_chairv2, on_the_fly_shoev2, zs_sbir, zs_sbir_quickdraw, zs_sbir_sketchy,
                         zs_sbir_tuberlin)
from sgvu.data import configured, pipeline, tfds_builders, tfds_composed, tfds_localization
from sgvu.tasks import composed_common
from sgvu.tasks import fg_sbir
from sgvu.tasks import zs_sbir as zs_task
from sgvu.tasks import localization as localization_task
import test_tfds
import test_tfds_composed
import test_tfds_localization


def _both(config, root, out):
  """(config reading the folder, config reading the copy) of the same data."""
  by_root, by_copy = config, type(config)(config.to_dict())
  by_root.data.root = root
  by_copy.data.root, by_copy.data.tfds_data_dir = "", out
  return by_root, by_copy


# dataset -> (its real-data config, how that task opens it)
RETRIEVAL = {
    "sketchy": (zs_sbir_sketchy, lambda c: configured.source_from_config(c.data, materialize=False,
                                                                       **zs_task.source_options(c))),
    "tuberlin": (zs_sbir_tuberlin, lambda c: configured.source_from_config(c.data, materialize=False,
                                                                         **zs_task.source_options(c))),
    "quickdraw": (zs_sbir_quickdraw, lambda c: configured.source_from_config(c.data, materialize=False,
                                                                           **zs_task.source_options(c))),
    "shoev2": (on_the_fly_shoev2, lambda c: fg_sbir.make_source(c, 32)),
    "chairv2": (on_the_fly_chairv2, lambda c: fg_sbir.make_source(c, 32)),
}


@pytest.mark.parametrize("name", sorted(RETRIEVAL))
def test_retrieval_config_reads_the_copy_as_the_folder(tmp_path, name):
  bad = 0
  write, options, _ = test_tfds.CASES[name]
  root, out = str(tmp_path / "d"), str(tmp_path / "out")
  write(root)
  tfds_builders.build(name, root, out, options)
  module, open_source = RETRIEVAL[name]
  a, b = _both(module.get_config(), root, out)
  for c in (a, b):
    c.data.reader_options.update(options)
    c.data.materialize = False
  if name == "sketchy":
    b.model.clip_init = str(tmp_path)  # (validate only checks that one is named)
    zs_task.validate(b)  # a copy needs no data.root
  sources = [open_source(c) for c in (a, b)]
  for split in ("train", "test"):
    sa, sb = (s.split(split) for s in sources)
    assert sa == sb and len(sa.photos) and len(sa.sketches)
    for kind in ("photo", "sketch"):
      skips = [[], []]
      batches = [list(pipeline.eval_batches(s, split, kind, image_size=32, batch_size=64, skipped=k))
                 for s, k in zip(sources, skips)]
      for x, y in zip(*batches, strict=True):
        np.testing.assert_array_equal(x["images"], y["images"])
        np.testing.assert_array_equal(x["index"], y["index"])
      assert skips[0] == skips[1]
      bad += len(skips[0])
  assert bad  # the fixture's corrupt files are skipped and counted alike


@pytest.mark.parametrize("name", ["cstbir", "fscoco", "shoev2_duet", "chairv2_duet"])
def test_composed_config_reads_the_copy_as_the_folder(tmp_path, name):
  root, out = str(tmp_path / "d"), str(tmp_path / "out")
  test_tfds_composed.WRITERS[name](root)
  tfds_composed.build(name, root, out)
  config = (duet_shoev2 if name.endswith("_duet") else cstbir_vg).get_config()
  config.data.dataset = name
  if name == "fscoco":
    config.data.reader_options = type(config.data.reader_options)()
  a, b = _both(config, root, out)
  sources = [composed_common.make_source(c) for c in (a, b)]
  assert sources[0].split_names == sources[1].split_names
  for split in sources[0].split_names:
    sa, sb = (s.split(split) for s in sources)
    assert sa == sb
    for i in range(len(sa.images)):
      x, y = (test_tfds_composed._outcome(lambda s=s: s.load_image(split, i, 32)) for s in sources)
      test_tfds_composed._assert_same(x, y)
  assert tuple(sources[0].skipped) == tuple(sources[1].skipped) and sources[0].skipped


@pytest.mark.parametrize("name", ["coco", "voc"])
def test_localization_config_reads_the_copy_as_the_folder(tmp_path, name):
  root, out = str(tmp_path / "d"), str(tmp_path / "out")
  options = test_tfds_localization.WRITERS[name](root)
  tfds_localization.build(name, root, out, **options)
  a, b = _both((localization_coco if name == "coco" else localization_voc).get_config(), root, out)
  for c in (a, b):
    c.data.options.update(options)
  b.data.options.sketch_root = ""  # the copy holds the query sketches
  localization_task.validate(b)
  sources = [localization_task.make_source(c, 1) for c in (a, b)]
  for split in ("train", "test_seen", "test_unseen"):
    sa, sb = (s.split(split) for s in sources)
    assert sa.items == sb.items and len(sa.items)
    for i in range(len(sa.items)):
      x, y = (test_tfds_localization._outcome(lambda s=s: s[i]) for s in (sa, sb))
      test_tfds_localization._same_sample(x, y)


def test_generated_data_has_no_copy(tmp_path):
  c = zs_sbir.get_config("small")
  c.data.tfds_data_dir = str(tmp_path)
  with pytest.raises(ValueError, match="synth is generated and has no TFDS copy"):
    configured.source_from_config(c.data)
  c = localization.get_config("small")
  c.data.tfds_data_dir = str(tmp_path)
  with pytest.raises(ValueError, match="synth is generated and has no TFDS copy"):
    localization_task.validate(c)
