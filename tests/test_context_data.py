"""Data of cross-domain context prediction: Canny edge maps, relative-position pairs, VOC images."""

import os
import re

import numpy as np
import pytest
from PIL import Image

from sgvu.data import context_pretext as cp
from sgvu.data.edges import canny_edges, edge_maps
from sgvu.data.voc_images import VOCImages

GEO = cp.Geometry(patch=8, gap=3, jitter=2)


def _square_image(size=64, lo=16, hi=48):
  img = np.zeros((size, size, 3), np.uint8)
  img[lo:hi, lo:hi] = 255
  return img


def _near_border(size=64, lo=16, hi=48, tol=2):
  """Pixels within `tol` of the square's outline (its boundary lies between lo-1|lo and hi-1|hi)."""
  yy, xx = np.mgrid[:size, :size]
  inside = lambda a, b: (yy >= a) & (yy < b) & (xx >= a) & (xx < b)
  return inside(lo - tol, hi + tol) & ~inside(lo + tol, hi - tol)


# ----------------------------------------------------------------------------
# Edges.


def test_canny_edges_are_aligned_with_the_photo():
  edges = canny_edges(_square_image())
  assert edges.dtype == np.uint8 and edges.shape == (64, 64, 3)
  assert set(np.unique(edges)) == {0, 255}
  assert (edges == edges[:, :, :1]).all()
  ink = edges[:, :, 0] == 0
  band = _near_border()
  assert not ink[~band].any(), "edge pixels away from the square's outline"
  # All four sides are drawn, along most of their length.
  for side in (ink[14:19, 20:44], ink[45:50, 20:44], ink[20:44, 14:19].T, ink[20:44, 45:50].T):
    assert side.any(axis=0).mean() > 0.9


def test_canny_edges_grey_input_and_blank_image():
  grey = _square_image()[:, :, 0]
  np.testing.assert_array_equal(canny_edges(grey), canny_edges(_square_image()))
  blank = canny_edges(np.full((20, 30, 3), 77, np.uint8))
  assert blank.shape == (20, 30, 3) and (blank == 255).all()


def test_canny_edges_errors():
  with pytest.raises(ValueError, match="float32"):
    canny_edges(np.zeros((8, 8, 3), np.float32))
  with pytest.raises(ValueError, match=r"\(8, 8, 4\)"):
    canny_edges(np.zeros((8, 8, 4), np.uint8))
  with pytest.raises(ValueError, match=r"\(8,\)"):
    canny_edges(np.zeros((8,), np.uint8))
  with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
    edge_maps(np.zeros((8, 8, 3), np.uint8))


def test_edge_maps_stack():
  stack = np.stack([_square_image(), np.zeros((64, 64, 3), np.uint8)])
  out = edge_maps(stack)
  assert out.shape == stack.shape and out.dtype == np.uint8
  np.testing.assert_array_equal(out[0], canny_edges(stack[0]))
  assert (out[1] == 255).all()


# ----------------------------------------------------------------------------
# Relative-position pairs.


def _coord_image(size=60):
  """photo[y, x] = (y, x, 0): every pixel says where it is."""
  yy, xx = np.mgrid[:size, :size]
  return np.stack([yy, xx, np.zeros_like(yy)], axis=-1).astype(np.uint8)


def test_geometry():
  assert GEO.span == 3 * 8 + 2 * 3 + 2 * 2
  assert GEO.pitch == 11
  assert cp.Geometry(patch=1, gap=0, jitter=0).span == 3
  for bad in (dict(patch=0, gap=1, jitter=1), dict(patch=4, gap=-1, jitter=0),
              dict(patch=4, gap=0, jitter=-1), dict(patch=4.0, gap=0, jitter=0)):
    with pytest.raises(ValueError, match="Geometry"):
      cp.Geometry(**bad)


def test_offsets_order():
  assert cp.OFFSETS == ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def test_neighbour_sits_at_its_label_offset():
  photo = _coord_image()
  rng = np.random.default_rng(0)
  labels = []
  for _ in range(400):
    s = cp.sample_pair(photo, photo.copy(), rng, GEO, "photo")
    assert s["a"].shape == s["b"].shape == (8, 8, 3) and s["a"].dtype == np.uint8
    assert s["label"].dtype == np.int32 and s["label"].shape == ()
    label = int(s["label"])
    labels.append(label)
    dy, dx = cp.OFFSETS[label]
    delta = s["b"][0, 0, :2].astype(int) - s["a"][0, 0, :2].astype(int)
    want = np.array([dy, dx]) * GEO.pitch
    assert (np.abs(delta - want) <= 2 * GEO.jitter).all(), (label, delta, want)
    # The whole grid stays inside the image: 'a' starts at least one pitch from the top-left.
    assert (s["a"][0, 0, :2] >= GEO.pitch).all()
  assert set(labels) == set(range(8))


def test_jitter_makes_spacing_uneven():
  photo = _coord_image()
  rng = np.random.default_rng(1)
  deltas = set()
  for _ in range(200):
    s = cp.sample_pair(photo, photo, rng, GEO, "photo")
    if int(s["label"]) == 4:  # (0, +1)
      deltas.add(int(s["b"][0, 0, 1]) - int(s["a"][0, 0, 1]))
  assert len(deltas) > 1 and min(deltas) >= GEO.pitch - 4 and max(deltas) <= GEO.pitch + 4


def test_modes_pick_domains():
  photo = np.full((40, 40, 3), 10, np.uint8)
  edge = np.full((40, 40, 3), 200, np.uint8)
  rng = np.random.default_rng(2)
  for mode, want in (("photo", (10, 10)), ("edge", (200, 200))):
    s = cp.sample_pair(photo, edge, rng, GEO, mode)
    assert (s["a"] == want[0]).all() and (s["b"] == want[1]).all()
  orders = set()
  for _ in range(50):
    s = cp.sample_pair(photo, edge, rng, GEO, "cross")
    a, b = int(s["a"][0, 0, 0]), int(s["b"][0, 0, 0])
    assert {a, b} == {10, 200} and (s["a"] == a).all() and (s["b"] == b).all()
    orders.add((a, b))
  assert orders == {(10, 200), (200, 10)}


def test_sample_pair_errors():
  rng = np.random.default_rng(0)
  img = np.zeros((40, 40, 3), np.uint8)
  with pytest.raises(ValueError, match=r"'sideways'.*'photo', 'edge', 'cross'"):
    cp.sample_pair(img, img, rng, GEO, "sideways")
  small = np.zeros((33, 40, 3), np.uint8)
  with pytest.raises(ValueError, match=r"33x40.*34x34"):
    cp.sample_pair(small, small, rng, GEO, "photo")
  with pytest.raises(ValueError, match="same shape"):
    cp.sample_pair(img, np.zeros((41, 40, 3), np.uint8), rng, GEO, "cross")
  with pytest.raises(ValueError, match="uint8"):
    cp.sample_pair(img.astype(np.float32), img, rng, GEO, "photo")


def _stack(n=5, size=40, seed=0):
  rng = np.random.default_rng(seed)
  photos = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
  return photos, 255 - photos


def test_pair_dataset_is_a_function_of_seed_and_index():
  photos, edges = _stack()
  ds = cp.pair_dataset(photos, edges, geometry=GEO, mode="cross", seed=3)
  again = cp.pair_dataset(photos, edges, geometry=GEO, mode="cross", seed=3)
  other = cp.pair_dataset(photos, edges, geometry=GEO, mode="cross", seed=4)
  for i in (0, 7, 10**6):
    for k in ("a", "b", "label"):
      np.testing.assert_array_equal(ds[i][k], again[i][k])
  assert any(not np.array_equal(ds[i]["a"], other[i]["a"]) for i in range(5))
  with pytest.raises(ValueError, match="seed"):
    cp.pair_dataset(photos, edges, geometry=GEO, mode="cross", seed=-1)
  with pytest.raises(ValueError, match="same shape"):
    cp.pair_dataset(photos, edges[:3], geometry=GEO, mode="cross", seed=0)


def _take(it, n):
  return [next(it) for _ in range(n)]


def test_pair_loader_batches_and_resumes():
  photos, edges = _stack()
  kw = dict(geometry=GEO, mode="cross", batch_size=6, seed=11)
  it = cp.pair_loader(photos, edges, **kw)
  first = next(it)
  assert first["a"].shape == first["b"].shape == (6, 8, 8, 3) and first["a"].dtype == np.uint8
  assert first["label"].shape == (6,) and first["label"].dtype == np.int32
  state = it.get_state()
  rest = _take(it, 2)

  same = _take(cp.pair_loader(photos, edges, **kw), 3)
  for x, y in zip([first] + rest, same):
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])

  resumed = cp.pair_loader(photos, edges, **kw)
  resumed.set_state(state)
  for x, y in zip(rest, _take(resumed, 2)):
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])
  with pytest.raises(ValueError, match="batch_size"):
    cp.pair_loader(photos, edges, **{**kw, "batch_size": 0})


# ----------------------------------------------------------------------------
# VOC images.


def _voc(root, ids, corrupt=(), missing=(), split="train"):
  os.makedirs(root / "JPEGImages", exist_ok=True)
  os.makedirs(root / "ImageSets" / "Main", exist_ok=True)
  rng = np.random.default_rng(0)
  for k, i in enumerate(ids):
    path = root / "JPEGImages" / f"{i}.jpg"
    if i in missing:
      continue
    if i in corrupt:
      path.write_bytes(b"\xff\xd8 this is not a jpeg")
      continue
    h, w = (30, 50) if k % 2 else (50, 30)  # non-square both ways
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
  (root / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(ids) + "\n\n")


def test_voc_images_load(tmp_path):
  ids = ["2008_000001", "2008_000002", "2008_000003"]
  _voc(tmp_path, ids)
  voc = VOCImages(str(tmp_path), "train")
  assert voc.ids == ids and len(voc) == 3
  img = voc.load(1, 16)
  assert img.shape == (16, 16, 3) and img.dtype == np.uint8
  assert len(VOCImages(str(tmp_path), "train", max_images=2)) == 2
  with pytest.raises(ValueError, match="max_images"):
    VOCImages(str(tmp_path), "train", max_images=0)


def test_voc_images_centre_crop(tmp_path):
  os.makedirs(tmp_path / "JPEGImages")
  os.makedirs(tmp_path / "ImageSets" / "Main")
  img = np.zeros((20, 60, 3), np.uint8)
  img[:, 20:40] = 255  # the centre square is white; the sides (cropped away) black
  Image.fromarray(img).save(tmp_path / "JPEGImages" / "a.jpg", quality=95)
  (tmp_path / "ImageSets" / "Main" / "val.txt").write_text("a\n")
  out = VOCImages(str(tmp_path), "val").load(0, 10)
  assert out.min() > 200


def test_voc_images_skips_corrupt_and_missing(tmp_path):
  ids = ["a", "b", "c", "d"]
  _voc(tmp_path, ids, corrupt=("b",), missing=("d",))
  arr, skipped = VOCImages(str(tmp_path)).load_all(12)
  assert arr.shape == (2, 12, 12, 3) and arr.dtype == np.uint8 and skipped == 2


def test_voc_images_all_bad(tmp_path):
  _voc(tmp_path, ["a", "b"], corrupt=("a", "b"))
  with pytest.raises(ValueError, match=r"'train'.*" + re.escape(str(tmp_path))):
    VOCImages(str(tmp_path)).load_all(8)


def test_voc_images_missing_paths(tmp_path):
  with pytest.raises(FileNotFoundError, match="nowhere"):
    VOCImages(str(tmp_path / "nowhere"))
  os.makedirs(tmp_path / "ImageSets" / "Main")
  with pytest.raises(FileNotFoundError, match="JPEGImages"):
    VOCImages(str(tmp_path))
  _voc(tmp_path, ["a"])
  want = os.path.join(str(tmp_path), "ImageSets", "Main", "val.txt")
  with pytest.raises(FileNotFoundError) as e:
    VOCImages(str(tmp_path), "val")
  assert want in str(e.value)
