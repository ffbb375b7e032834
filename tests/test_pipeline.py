"""grain pipelines: contents of the batches, exact resume, sharding, bad samples, eval order."""

import os

import chex
import grain
import numpy as np
import pytest
from etils import epath

import fixtures_data as fx
from sgvu.data import DataError, PhotoItem, Source, Split, get_source, pipeline

S = 24  # image size: small, still big enough for a colour test in the middle


def _stem(path):
  return os.path.splitext(os.path.basename(path))[0]


def _centre(img):
  return img[S // 2, S // 2].astype(int)


def _loader(src, **kw):
  kw.setdefault("batch_size", 4)
  kw.setdefault("image_size", S)
  kw.setdefault("process_index", 0)
  kw.setdefault("process_count", 1)
  return pipeline.pair_loader(src, **kw)


@pytest.fixture(scope="module")
def sketchy(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("sketchy"))
  fx.write_sketchy(root, extra_extended=0)
  return get_source("sketchy", root)


@pytest.fixture(scope="module")
def quickdraw(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("qd"))
  fx.write_quickdraw(root, sketches_per_class=6)
  return get_source("quickdraw", root, subset="all")


@pytest.fixture(scope="module")
def shoes(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("shoe"))
  fx.write_qmul(root, "ShoeV2", train_photos=4, sketches_per_photo=2)
  return get_source("shoev2", root)


def test_category_pairs(sketchy):
  sp = sketchy.split("train")
  it = _loader(sketchy, seed=3)
  for _ in range(3):
    b = next(it)
    chex.assert_shape([b["sketch"], b["photo"], b["neg_photo"]], (4, S, S, 3))
    chex.assert_shape([b["label"], b["neg_label"], b["photo_index"], b["sketch_index"]], (4,))
    assert b["sketch"].dtype == np.uint8 and b["label"].dtype == np.int32
    assert "fraction" not in b
    for i in range(4):
      sketch = sp.sketches[b["sketch_index"][i]]
      photo = sp.photos[b["photo_index"][i]]
      assert b["label"][i] == sketch.label == photo.label
      assert b["neg_label"][i] != b["label"][i]
      # The delivered pixels are that photo's (padded to square on white).
      np.testing.assert_allclose(_centre(b["photo"][i]), fx.photo_colour(_stem(photo.key)), atol=12)
      assert (b["photo"][i][0] == 255).all()  # 40x30 photo: white band on top
      # Greyscale sketch replicated to 3 channels, with ink.
      assert (b["sketch"][i][..., 0] == b["sketch"][i][..., 2]).all() and b["sketch"][i].min() < 128
  it.close()


def test_instance_pairs(shoes):
  sp = shoes.split("train")
  it = _loader(shoes, pairing="instance", seed=1)
  for _ in range(3):
    b = next(it)
    for i in range(4):
      sketch = sp.sketches[b["sketch_index"][i]]
      assert b["photo_index"][i] == sketch.photo
      assert b["neg_label"][i] == b["label"][i] == 0
      pos, neg = _centre(b["photo"][i]), _centre(b["neg_photo"][i])
      np.testing.assert_allclose(pos, fx.photo_colour(_stem(sp.photos[sketch.photo].key)), atol=12)
      assert np.abs(pos - neg).max() > 12  # another instance, not the positive
  it.close()


def test_restore_continues_with_the_same_batches(sketchy):
  it = _loader(sketchy, seed=5)
  for _ in range(3):
    next(it)
  state = it.get_state()
  want = [next(it) for _ in range(4)]
  it2 = _loader(sketchy, seed=5)
  it2.set_state(state)
  got = [next(it2) for _ in range(4)]
  for w, g in zip(want, got):
    chex.assert_trees_all_equal(w, g)
  other = next(_loader(sketchy, seed=6))
  assert any(not np.array_equal(other[k], want[0][k]) for k in other)


def test_restore_with_workers_and_orbax_handler(sketchy, tmp_path):
  kw = dict(seed=2, num_workers=2)
  it = _loader(sketchy, **kw)
  for _ in range(2):
    next(it)
  grain.checkpoint.CheckpointHandler().save(epath.Path(tmp_path), it)
  want = [next(it) for _ in range(3)]
  it.close()
  it2 = _loader(sketchy, **kw)
  grain.checkpoint.CheckpointHandler().restore(epath.Path(tmp_path), it2)
  got = [next(it2) for _ in range(3)]
  it2.close()
  for w, g in zip(want, got):
    chex.assert_trees_all_equal(w, g)


def test_process_shards_are_disjoint_and_cover_an_epoch(sketchy):
  n = len(sketchy.split("train").sketches)
  seen = []
  for pi in range(2):
    it = _loader(sketchy, batch_size=2, process_index=pi, process_count=2, num_epochs=1, seed=4)
    ids = [int(x) for b in it for x in b["sketch_index"]]
    assert len(ids) == n // 2
    seen.append(set(ids))
  assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == n
  with pytest.raises(ValueError, match="divisible"):
    _loader(sketchy, batch_size=3, process_count=2, process_index=0)


def test_finite_epochs_stop(sketchy):
  n = len(sketchy.split("test").sketches)
  batches = list(_loader(sketchy, split="test", batch_size=3, num_epochs=2))
  assert len(batches) == (2 * n) // 3


def test_random_fraction_renders_partial_sketches(quickdraw):
  it = _loader(quickdraw, batch_size=8, sketch_fraction="random", seed=0)
  fracs, ink = [], []
  for _ in range(6):
    b = next(it)
    assert b["fraction"].dtype == np.float32
    fracs += b["fraction"].tolist()
    ink += (255 - b["sketch"].astype(int)).sum(axis=(1, 2, 3)).tolist()
  assert set(np.round(fracs, 2)) <= set(pipeline.FRACTIONS) and len(set(fracs)) > 3
  # More of the drawing -> more ink, on average.
  assert np.corrcoef(fracs, ink)[0, 1] > 0.3


def test_partial_sketches_need_vector_sketches(sketchy):
  with pytest.raises(DataError, match="vector"):
    _loader(sketchy, sketch_fraction="random")
  with pytest.raises(ValueError, match="sketch_fraction"):
    _loader(sketchy, sketch_fraction="half")


def test_bad_samples_are_skipped_counted_or_fatal(tmp_path):
  w = fx.write_sketchy(str(tmp_path), classes=("airplane", "bat", "cow"), corrupt=True)
  src = get_source("sketchy", str(tmp_path))
  # Only 'airplane' in train: category pairing is impossible there; use test + instance.
  with pytest.raises(DataError, match="category pairing needs photos of >= 2"):
    _loader(src)
  it = _loader(src, pairing="instance", batch_size=2, num_workers=2, seed=0)
  batches = [next(it) for _ in range(12)]
  counts = it.skipped_counts()
  it.close()
  assert set(counts) == set(w["bad"]) and all(v > 0 for v in counts.values())
  bad_photo = [i for i, p in enumerate(src.split("train").photos) if p.key in w["bad"]]
  for b in batches:  # nothing from the broken files is delivered
    assert not set(b["photo_index"].tolist()) & set(bad_photo)
    assert (b["sketch"].reshape(len(b["sketch"]), -1).min(axis=1) < 128).all()
  it = _loader(src, pairing="instance", batch_size=2, strict=True, seed=0)
  with pytest.raises(DataError, match="strict=True") as e:
    for _ in range(12):
      next(it)
  assert any(path in str(e.value) for path in w["bad"])


class _Captioned(Source):
  name = "captioned"
  categories = ("a", "b")

  def __init__(self, photo_paths):
    self._split = Split("train", self.categories,
                        tuple(PhotoItem(p, i % 2) for i, p in enumerate(photo_paths)), ())

  def split(self, name):
    return self._split

  def load_photo(self, item, size=None):
    from sgvu.data import images
    return images.load_rgb(item.key)

  def load_sketch(self, item):
    raise NotImplementedError

  def caption(self, item):
    return f"a photo of {'ab'[item.label]} number {len(item.key)}"


def test_photo_caption_loader(tmp_path, sketchy):
  paths = [fx._write_photo(str(tmp_path / f"p{i}.jpg"), f"p{i}") for i in range(5)]

  def tokenize(texts):
    return np.asarray([[len(t), t.count("a")] + [0] * 6 for t in texts])

  it = pipeline.photo_caption_loader(_Captioned(paths), batch_size=2, image_size=S,
                                     tokenize=tokenize, process_index=0, process_count=1)
  b = next(it)
  chex.assert_shape(b["photo"], (2, S, S, 3))
  chex.assert_shape(b["tokens"], (2, 8))
  assert b["tokens"].dtype == np.int32 and b["label"].dtype == np.int32
  assert "caption" not in b
  with pytest.raises(DataError, match="no captions"):
    pipeline.photo_caption_loader(sketchy, batch_size=2, image_size=S, tokenize=tokenize,
                                  process_index=0, process_count=1)


def test_eval_batches_in_order_with_skips(tmp_path):
  w = fx.write_sketchy(str(tmp_path), corrupt=True, extra_extended=0)
  src = get_source("sketchy", str(tmp_path))
  sp = src.split("train")
  skipped = []
  batches = list(pipeline.eval_batches(src, "train", "photo", image_size=S, batch_size=4,
                                       skipped=skipped))
  idx = np.concatenate([b["index"] for b in batches])
  bad = [i for i, p in enumerate(sp.photos) if p.key in w["bad"]]
  assert idx.tolist() == [i for i in range(len(sp.photos)) if i not in bad]
  assert [len(b["index"]) for b in batches][:-1] == [4] * (len(batches) - 1)
  assert 0 < len(batches[-1]["index"]) <= 4
  labels = np.concatenate([b["labels"] for b in batches])
  assert labels.tolist() == [sp.photos[i].label for i in idx]
  assert [k for k, _ in skipped] == [w["bad"][0]]
  for b in batches:
    for j, i in enumerate(b["index"]):
      np.testing.assert_allclose(_centre(b["images"][j]), fx.photo_colour(_stem(sp.photos[i].key)),
                                 atol=12)
  sk = list(pipeline.eval_batches(src, "test", "sketch", image_size=S, batch_size=5))
  assert np.concatenate([b["index"] for b in sk]).tolist() == list(range(len(src.split("test").sketches)))
  with pytest.raises(DataError, match="n99999999_1"):
    list(pipeline.eval_batches(src, "train", "photo", image_size=S, batch_size=4, strict=True))


def test_synth_instance_pairs_and_captions():
  src = get_source("synth", photos_per_category=2, sketches_per_photo=1)
  sp = src.split("train")
  it = _loader(src, pairing="instance", batch_size=4, seed=0)
  b = next(it)
  it.close()
  assert [sp.sketches[i].photo for i in b["sketch_index"]] == b["photo_index"].tolist()
  assert (b["neg_label"] == b["label"]).all()
  caps = pipeline.photo_caption_loader(
      src, batch_size=4, image_size=S, process_index=0, process_count=1,
      tokenize=lambda texts: np.asarray([[len(t.split())] * 3 for t in texts]))
  c = next(caps)
  caps.close()
  chex.assert_shape(c["tokens"], (4, 3))
  assert (c["tokens"] > 3).all()  # real multi-word captions went through `tokenize`
