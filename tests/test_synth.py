"""Tests for the SynthSketch world (sgvu.data.synth)."""

import pickle

import chex
import numpy as np
import pytest

from sgvu.data import base
from sgvu.data import strokes as S
from sgvu.data.synth import ALL_CATEGORIES, SEEN_CATEGORIES, UNSEEN_CATEGORIES, SynthSketch, catalog
from sgvu.data.synth.caption import vocabulary


@pytest.fixture(scope="module")
def zs():
  return SynthSketch(seed=0, photos_per_category=3, sketches_per_photo=2)


@pytest.fixture(scope="module")
def shoes():
  return SynthSketch(seed=0, protocol="instance", categories=("shoe",), photos_per_category=40,
                     sketches_per_photo=3, test_fraction=0.25)


def test_categories_and_zero_shot_split():
  assert len(ALL_CATEGORIES) >= 50
  assert len(set(ALL_CATEGORIES)) == len(ALL_CATEGORIES)
  assert not set(SEEN_CATEGORIES) & set(UNSEEN_CATEGORIES)
  assert set(SEEN_CATEGORIES) | set(UNSEEN_CATEGORIES) == set(ALL_CATEGORIES)
  assert 0.15 <= len(UNSEEN_CATEGORIES) / len(ALL_CATEGORIES) <= 0.25
  for name in ("house", "tree", "fish", "cup", "chair", "shoe", "umbrella", "car", "bird", "key"):
    assert name in ALL_CATEGORIES


def _check_split(world, split):
  chex.assert_equal(len(split.sketches), len(split.photos) * world.sketches_per_photo)
  keys = [p.key for p in split.photos] + [s.key for s in split.sketches]
  assert len(set(keys)) == len(keys)
  for s in split.sketches:
    assert 0 <= s.photo < len(split.photos)
    photo = split.photos[s.photo]
    assert s.label == photo.label
    assert s.key.startswith(photo.key + "/sketch")
  for p in split.photos:
    assert world.categories[p.label] in split.categories


def test_zero_shot_protocol(zs):
  train, test = zs.split("train"), zs.split("test")
  assert set(train.categories) == set(SEEN_CATEGORIES)
  assert set(test.categories) == set(UNSEEN_CATEGORIES)
  assert zs.categories == ALL_CATEGORIES
  _check_split(zs, train)
  _check_split(zs, test)
  assert not {p.label for p in train.photos} & {p.label for p in test.photos}
  with pytest.raises(KeyError, match="train"):
    zs.split("val")


def test_instance_protocol(shoes):
  train, test = shoes.split("train"), shoes.split("test")
  assert train.categories == test.categories == ("shoe",)
  assert (len(train.photos), len(test.photos)) == (30, 10)
  assert not {p.key for p in train.photos} & {p.key for p in test.photos}
  _check_split(shoes, train)
  _check_split(shoes, test)


def test_bad_configuration_raises():
  with pytest.raises(KeyError, match="valid: .*airplane"):
    SynthSketch(categories=("shoe", "unicorn"))
  with pytest.raises(ValueError, match="protocol"):
    SynthSketch(protocol="fine")
  with pytest.raises(ValueError, match="unseen"):
    SynthSketch(categories=("shoe", "cup"))  # zero-shot without unseen categories
  with pytest.raises(ValueError, match="test_fraction"):
    SynthSketch(protocol="instance", categories=("shoe",), photos_per_category=2, test_fraction=0.1)


def test_same_seed_same_pixels_and_strokes(shoes):
  other = SynthSketch(seed=0, protocol="instance", categories=("shoe",), photos_per_category=40,
                      sketches_per_photo=3, test_fraction=0.25)
  different = SynthSketch(seed=1, protocol="instance", categories=("shoe",), photos_per_category=40,
                          sketches_per_photo=3, test_fraction=0.25)
  p, s = shoes.split("test").photos[2], shoes.split("test").sketches[5]
  np.testing.assert_array_equal(shoes.load_photo(p, 48), other.load_photo(p, 48))
  for a, b in zip(shoes.load_sketch(s).strokes, other.load_sketch(s).strokes, strict=True):
    np.testing.assert_array_equal(a, b)
  assert shoes.caption(p) == other.caption(p)
  assert not np.array_equal(shoes.load_photo(p, 48), different.load_photo(p, 48))
  assert S.render_strokes(shoes.load_sketch(s).strokes, 64).tolist() != \
      S.render_strokes(different.load_sketch(s).strokes, 64).tolist()


def test_instances_do_not_depend_on_the_chosen_categories(zs):
  alone = SynthSketch(seed=0, protocol="instance", categories=("cup",), photos_per_category=3, test_fraction=0.34)
  p_alone = alone.split("train").photos[1]
  p_all = next(p for p in zs.split("train").photos if p.key == p_alone.key)
  np.testing.assert_array_equal(alone.load_photo(p_alone, 32), zs.load_photo(p_all, 32))


def test_pickle_round_trip_keeps_outputs(shoes):
  clone = pickle.loads(pickle.dumps(shoes))
  p, s = shoes.split("train").photos[0], shoes.split("train").sketches[0]
  np.testing.assert_array_equal(clone.load_photo(p, 32), shoes.load_photo(p, 32))
  np.testing.assert_array_equal(np.concatenate(clone.load_sketch(s).strokes), np.concatenate(shoes.load_sketch(s).strokes))


@pytest.mark.parametrize("size", [16, 64, 160])
def test_photo_shape_dtype_and_content(shoes, size):
  img = shoes.load_photo(shoes.split("train").photos[3], size)
  chex.assert_shape(img, (size, size, 3))
  assert img.dtype == np.uint8
  assert img.std() > 10  # an object on a cluttered background, not a flat image
  assert len(np.unique(img.reshape(-1, 3), axis=0)) > size  # textured, noisy, anti-aliased


def test_every_category_renders_a_photo_and_a_valid_sketch(zs):
  done = set()
  for split in ("train", "test"):
    sp = zs.split(split)
    for s in sp.sketches[::zs.sketches_per_photo * zs.photos_per_category]:
      photo = zs.load_photo(sp.photos[s.photo], 24)
      chex.assert_shape(photo, (24, 24, 3))
      strokes = zs.load_sketch(s).strokes
      checked = S.validate_strokes(strokes, s.key)
      assert all(c.dtype == np.float32 and c.shape[1] == 2 for c in checked)
      allp = np.concatenate(checked)
      assert allp.min() >= 0 and allp.max() <= 255
      np.testing.assert_array_equal(allp, np.round(allp))  # QuickDraw-style integer coordinates
      assert S.from_quickdraw(S.to_quickdraw(strokes))[0].tolist() == strokes[0].tolist()
      done.add(zs.categories[s.label])
  assert done == set(ALL_CATEGORIES)


def test_sketches_of_one_photo_differ(shoes):
  sp = shoes.split("train")
  a, b = [shoes.load_sketch(s).strokes for s in sp.sketches[:2]]
  assert sp.sketches[0].photo == sp.sketches[1].photo
  assert not np.array_equal(S.render_strokes(a, 64), S.render_strokes(b, 64))


def test_partial_sketch_ink_is_monotone(shoes):
  strokes = shoes.load_sketch(shoes.split("train").sketches[7]).strokes
  ink = [int((255 - S.render_strokes(strokes, 64, fraction=f).astype(int)).sum()) for f in np.linspace(0.05, 1, 20)]
  assert all(b >= a for a, b in zip(ink, ink[1:]))
  assert ink[-1] > 2 * ink[0]


def test_sketches_are_drawn_coarse_to_fine(zs):
  """Early strokes are the big outline; late ones are small details."""
  first, last = [], []
  for s in zs.split("train").sketches[::2]:
    strokes = zs.load_sketch(s).strokes
    if len(strokes) < 4:
      continue
    extent = [float(np.ptp(st, axis=0).max()) for st in strokes]
    first.append(np.mean(extent[:2]))
    last.append(np.mean(extent[-2:]))
  assert len(first) > 50
  assert np.mean(first) > 1.5 * np.mean(last)


def test_sketch_shape_follows_its_photo_instance(shoes):
  """Sketch bounding-box aspect matches the instance geometry (it is traced from it)."""
  errors = []
  for s in shoes.split("train").sketches[::3]:
    inst = shoes.instance(s)
    geometry = np.concatenate([p.pts for p in inst.parts])
    want = np.ptp(geometry[:, 0]) / np.ptp(geometry[:, 1])
    got = np.concatenate(shoes.load_sketch(s).strokes)
    errors.append(abs(np.log(np.ptp(got[:, 0]) / np.ptp(got[:, 1]) / want)))
  assert np.median(errors) < 0.12


def test_instances_have_varied_fine_grained_attributes(shoes):
  insts = [shoes.instance(p) for p in shoes.split("train").photos]
  for option, values in catalog.get("shoe").options.items():
    assert {i.options[option] for i in insts} == set(values), option
  assert len({i.values["heel_h"] for i in insts}) == len(insts)  # continuous proportions
  assert len({i.colour for i in insts}) > 4 and len({i.texture for i in insts}) == 4
  assert len({shoes.caption(p) for p in shoes.split("train").photos}) > 20


def test_captions_use_only_the_vocabulary(zs):
  vocab = vocabulary()
  assert vocab == sorted(set(vocab))
  assert vocab == zs.vocabulary()
  words = set()
  for sp in (zs.split("train"), zs.split("test")):
    for p in sp.photos:
      cap = zs.caption(p)
      inst = zs.instance(p)
      assert inst.colour in cap.split() and inst.category in cap
      words.update(cap.split())
  for i in range(4):
    words.update(zs.scene(i, 32)["caption"].split())
  assert words <= set(vocab), words - set(vocab)
  assert len(words) > 0.5 * len(vocab)  # the vocabulary is not padded with unused words


def test_bad_keys_raise_bad_sample(zs):
  with pytest.raises(base.BadSample, match="synth/unicorn/00001") as e:
    zs.load_photo(base.PhotoItem("synth/unicorn/00001", 0), 32)
  assert e.value.key == "synth/unicorn/00001"
  with pytest.raises(base.BadSample, match="not a sketch key"):
    zs.load_sketch(base.SketchItem("synth/cup/00001", 0, 0))
  with pytest.raises(base.BadSample, match="not a SynthSketch key"):
    zs.load_photo(base.PhotoItem("sketchy/cup/1.jpg", 0))


def test_scene(zs):
  scene = zs.scene(3, 96)
  again = zs.scene(3, 96)
  chex.assert_shape(scene["image"], (96, 96, 3))
  assert scene["image"].dtype == np.uint8
  k = len(scene["labels"])
  assert 2 <= k <= 5
  chex.assert_shape(scene["boxes"], (k, 4))
  assert scene["boxes"].dtype == np.float32 and scene["labels"].dtype == np.int32
  b = scene["boxes"]
  assert np.all(b[:, 0] < b[:, 2]) and np.all(b[:, 1] < b[:, 3])
  assert b.min() >= 0 and b.max() <= 96
  assert len(scene["attributes"]) == k
  for label, attrs in zip(scene["labels"], scene["attributes"]):
    assert zs.categories[label] == attrs["category"]
    assert attrs["category"] in scene["caption"]
  np.testing.assert_array_equal(scene["image"], again["image"])
  assert not np.array_equal(scene["image"], zs.scene(4, 96)["image"])
  # Inside a box the image differs from the background: the object is really there.
  x0, y0, x1, y1 = b[0].astype(int)
  assert scene["image"][y0:y1, x0:x1].std() > 5
