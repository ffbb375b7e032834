"""Tests for validation splits carved out of a source's train split (sgvu.data.holdout)."""

from __future__ import annotations

import chex
import numpy as np
import pytest

from experiments import blocks
from sgvu.data import configured, pipeline
from sgvu.data.holdout import Holdout
from sgvu.data.synth import SEEN_CATEGORIES, UNSEEN_CATEGORIES, SynthSketch


@pytest.fixture(scope="module")
def zs():
  return SynthSketch(seed=0, protocol="zero_shot", photos_per_category=4, sketches_per_photo=2)


@pytest.fixture(scope="module")
def inst():
  return SynthSketch(seed=0, protocol="instance", categories=("shoe", "cup"), sketches_per_photo=2)


def _check_pairing(source, split):
  """Every sketch points at a photo of its own split whose key prefixes the sketch's, with its label."""
  keys = [p.key for p in split.photos] + [s.key for s in split.sketches]
  assert len(set(keys)) == len(keys)
  for s in split.sketches:
    assert s.photo is not None and 0 <= s.photo < len(split.photos)
    photo = split.photos[s.photo]
    assert s.key.startswith(photo.key + "/"), (s.key, photo.key)
    assert s.label == photo.label
  for p in split.photos:
    assert source.categories[p.label] in split.categories
  assert {source.categories[p.label] for p in split.photos} == set(split.categories)


def test_categories_holdout(zs):
  h = Holdout(zs, "categories", every=5)
  train, val = h.split("train"), h.split("test")
  seen = zs.split("train").categories
  assert set(seen) == set(SEEN_CATEGORIES)
  assert val.categories == seen[4::5]
  assert len(val.categories) == len(seen) // 5
  assert train.categories == tuple(c for c in seen if c not in val.categories)
  assert not set(train.categories) & set(val.categories)
  for sp in (train, val):
    assert not set(sp.categories) & set(UNSEEN_CATEGORIES)
    assert not {zs.categories[p.label] for p in sp.photos} & set(UNSEEN_CATEGORIES)
    _check_pairing(h, sp)
  assert not {p.label for p in train.photos} & {p.label for p in val.photos}
  # Nothing lost, nothing added: the two splits partition the original train split.
  orig = zs.split("train")
  assert sorted(p.key for p in train.photos + val.photos) == sorted(p.key for p in orig.photos)
  assert sorted(s.key for s in train.sketches + val.sketches) == sorted(s.key for s in orig.sketches)
  chex.assert_equal(len(val.photos), 4 * len(val.categories))
  chex.assert_equal(len(val.sketches), 2 * len(val.photos))
  assert h.categories == zs.categories and h.name == "synthsketch-val"
  with pytest.raises(KeyError, match="test"):
    h.split("val")


def test_instances_holdout(inst):
  h = Holdout(inst, "instances", every=5)
  orig = inst.split("train")
  train, val = h.split("train"), h.split("test")
  assert [p.key for p in val.photos] == [p.key for p in orig.photos[4::5]]
  assert [p.key for p in train.photos] == [p.key for i, p in enumerate(orig.photos) if i % 5 != 4]
  assert not {p.key for p in train.photos} & {p.key for p in val.photos}
  assert set(train.categories) == set(val.categories) == {"shoe", "cup"}
  for sp in (train, val):
    _check_pairing(h, sp)
    chex.assert_equal(len(sp.sketches), 2 * len(sp.photos))
  # The original test split is not part of either.
  test_keys = {p.key for p in inst.split("test").photos}
  assert not test_keys & {p.key for p in train.photos + val.photos}


def test_holdout_passes_through_pixels_captions_and_attributes(inst):
  h = Holdout(inst, "instances", every=4)
  item = h.split("test").photos[1]
  np.testing.assert_array_equal(h.load_photo(item, 32), inst.load_photo(item, 32))
  sketch = h.split("test").sketches[0]
  got, want = h.load_sketch(sketch).strokes, inst.load_sketch(sketch).strokes
  assert len(got) == len(want) and all(np.array_equal(a, b) for a, b in zip(got, want))
  assert h.caption(item) == inst.caption(item)
  assert (h.caption(item, rng=np.random.default_rng(2), keep=0.5)
          == inst.caption(item, rng=np.random.default_rng(2), keep=0.5))
  assert h.attributes(item) == inst.attributes(item)
  assert h.attribute_prompts("shoe") == inst.attribute_prompts("shoe")
  # Its splits feed the pipelines like any source's.
  batches = list(pipeline.eval_batches(h, "test", "photo", image_size=32, batch_size=8))
  idx = np.concatenate([b["index"] for b in batches])
  assert idx.tolist() == list(range(len(h.split("test").photos)))
  it = pipeline.photo_caption_loader(h, batch_size=4, image_size=32, seed=0, process_index=0, process_count=1,
                                     tokenize=lambda texts: np.asarray([[len(t.split())] * 2 for t in texts]),
                                     caption_keep=0.5)
  try:
    b = next(it)
  finally:
    it.close()
  chex.assert_shape(b["photo"], (4, 32, 32, 3))


def test_bad_holdouts_raise(zs, inst):
  with pytest.raises(ValueError, match="bogus"):
    Holdout(zs, "bogus")
  for every in (1, 0, -3):
    with pytest.raises(ValueError, match="every"):
      Holdout(zs, "categories", every=every)
  tiny = SynthSketch(seed=0, protocol="instance", categories=("shoe",), photos_per_category=5,
                     sketches_per_photo=1)  # 4 training photos: every 5th leaves no validation photo
  with pytest.raises(ValueError, match="no train or no validation"):
    Holdout(tiny, "instances", every=5)
  with pytest.raises(ValueError, match="no train or no validation"):
    Holdout(inst, "categories", every=3)  # 2 categories: the 3rd does not exist


def test_source_from_config_holdout():
  c = blocks.data_config(holdout="categories", holdout_every=5, materialize=False, photos_per_category=4,
                         sketches_per_photo=2)
  for cfg in (c, c.to_dict()):
    src = configured.source_from_config(cfg, image_size=32)
    assert isinstance(src, Holdout)
    assert src.mode == "categories" and src.every == 5
    seen = src.inner.split("train").categories
    assert src.split("test").categories == seen[4::5]
    assert not set(src.split("train").categories) & set(src.split("test").categories)
  c.holdout_every = 3
  assert configured.source_from_config(c, image_size=32).split("test").categories == seen[2::3]
  c.holdout = ""
  assert not isinstance(configured.source_from_config(c, image_size=32), Holdout)
  c.holdout = "instances"
  src = configured.source_from_config(c, image_size=32, protocol="instance", categories=("shoe", "cup"))
  assert isinstance(src, Holdout) and set(src.split("test").categories) == {"shoe", "cup"}


class _Unpaired(SynthSketch):
  """Sketches without a photo (as TU-Berlin, QuickDraw)."""

  def split(self, name):
    sp = super().split(name)
    return sp.__class__(sp.name, sp.categories, sp.photos,
                        tuple(s.__class__(s.key, s.label, None) for s in sp.sketches))


def test_holdout_needs_paired_sketches():
  src = _Unpaired(seed=0, protocol="instance", categories=("shoe", "cup"), photos_per_category=10,
                  sketches_per_photo=1)
  with pytest.raises(ValueError, match="paired"):
    Holdout(src, "categories", every=2)
