"""Tests for sgvu.data.strokes."""

import chex
import numpy as np
import pytest

from sgvu.data import strokes as S
from sgvu.data.base import BadSample


def _square_and_cross():
  return [
      np.array([[30, 30], [220, 30], [220, 220], [30, 220], [30, 30]], np.float32),
      np.array([[60, 60], [190, 190]], np.float32),
      np.array([[190, 60], [60, 190]], np.float32),
  ]


@pytest.mark.parametrize("size", [32, 64, 224])
def test_render_shape_dtype_and_ink(size):
  img = S.render_strokes(_square_and_cross(), size)
  chex.assert_shape(img, (size, size))
  assert img.dtype == np.uint8
  assert img.max() == 255  # white background
  assert img.min() < 80  # dark ink
  # Anti-aliased: intermediate grey levels exist.
  assert np.any((img > 30) & (img < 225))
  # The square outline is at ~12%..86% of the canvas; the corner stays white.
  assert img[0, 0] == 255 and img[-1, -1] == 255


def test_render_partial_is_monotone():
  strokes = _square_and_cross()
  ink = [int((255 - S.render_strokes(strokes, 64, fraction=f).astype(int)).sum())
         for f in np.linspace(0.05, 1.0, 20)]
  assert all(b >= a for a, b in zip(ink, ink[1:])), ink
  assert ink[-1] > ink[0]
  by_strokes = [int((255 - S.render_strokes(strokes, 64, num_strokes=k).astype(int)).sum())
                for k in (1, 2, 3)]
  assert by_strokes[0] < by_strokes[1] < by_strokes[2]
  np.testing.assert_array_equal(S.render_strokes(strokes, 64, num_strokes=3), S.render_strokes(strokes, 64))


def test_prefix_counts_points():
  strokes = _square_and_cross()  # 5 + 2 + 2 = 9 points
  assert S.num_points(S.prefix(strokes, fraction=6 / 9)) == 6
  assert S.num_points(S.prefix(strokes, fraction=0.01)) == 1  # never empty
  assert len(S.prefix(strokes, num_strokes=2)) == 2
  with pytest.raises(ValueError):
    S.prefix(strokes, fraction=0.0)
  with pytest.raises(ValueError):
    S.prefix(strokes, fraction=0.5, num_strokes=2)


def test_line_width_scales():
  strokes = _square_and_cross()
  thin = (255 - S.render_strokes(strokes, 128, line_width=1).astype(int)).sum()
  thick = (255 - S.render_strokes(strokes, 128, line_width=4).astype(int)).sum()
  assert thick > 2 * thin


def test_single_point_draws_a_dot():
  img = S.render_strokes([np.array([[128, 128]], np.float32)], 64)
  ink = 255 - img.astype(int)
  # A 1-px-wide dot: about a pixel's worth of ink, near (32, 32).
  assert 100 < ink.sum() < 4 * 255
  assert ink[30:35, 30:35].sum() == ink.sum()


@pytest.mark.parametrize("bad, reason", [
    ([], "no strokes"),
    ([np.zeros((0, 2))], "no strokes"),
    ([np.array([[1.0, np.nan]])], "NaN"),
    ([np.array([[1.0, np.inf]])], "NaN"),
    ([np.zeros((3, 3))], "shape"),
    ([np.array([[10.0, 5000.0]])], "outside"),
    (None, "None"),
])
def test_bad_strokes_raise_naming_key(bad, reason):
  with pytest.raises(BadSample, match=reason) as e:
    S.render_strokes(bad, 32, key="sketchy/cat/n1.svg")
  assert e.value.key == "sketchy/cat/n1.svg"
  assert "sketchy/cat/n1.svg" in str(e.value)


def test_validate_returns_float32_and_drops_empty():
  out = S.validate_strokes([[[1, 2], [3, 4]], np.zeros((0, 2)), [[5, 6]]], "k")
  assert len(out) == 2
  assert all(s.dtype == np.float32 for s in out)
  chex.assert_shape(out, [(2, 2), (1, 2)])


def test_quickdraw_round_trip():
  rng = np.random.default_rng(0)
  drawing = [[rng.integers(0, 256, n).tolist(), rng.integers(0, 256, n).tolist()] for n in (3, 7, 1)]
  strokes = S.from_quickdraw(drawing)
  chex.assert_shape(strokes, [(3, 2), (7, 2), (1, 2)])
  assert S.to_quickdraw(strokes) == drawing
  # Extra time lists (raw format) are ignored.
  with_time = [[xs, ys, list(range(len(xs)))] for xs, ys in drawing]
  np.testing.assert_array_equal(np.concatenate(S.from_quickdraw(with_time)), np.concatenate(strokes))


def test_quickdraw_mismatched_lengths_raise():
  with pytest.raises(BadSample, match="qd/1"):
    S.from_quickdraw([[[1, 2, 3], [1, 2]]], key="qd/1")


def test_pen_states_round_trip():
  strokes = [np.array([[1, 2], [3, 4], [5, 6]], np.float32), np.array([[7, 8]], np.float32),
             np.array([[9, 10], [11, 12]], np.float32)]
  pen = S.to_pen_states(strokes)
  chex.assert_shape(pen, (6, 3))
  np.testing.assert_array_equal(pen[:, 2], [0, 0, 1, 1, 0, 1])
  back = S.from_pen_states(pen)
  assert len(back) == 3
  for a, b in zip(back, strokes):
    np.testing.assert_array_equal(a, b)


def test_pen_states_trailing_stroke_kept():
  pts = np.array([[1, 1, 0], [2, 2, 1], [3, 3, 0], [4, 4, 0]], np.float32)
  back = S.from_pen_states(pts)
  chex.assert_shape(back, [(2, 2), (2, 2)])
  with pytest.raises(BadSample, match="shoe/1"):
    S.from_pen_states(np.zeros((4, 2)), key="shoe/1")


def test_normalize_to_canvas():
  strokes = [np.array([[1000, 500], [1200, 500], [1200, 600]], np.float32)]
  out = S.normalize_to_canvas(strokes, margin=10)
  allp = np.concatenate(out)
  np.testing.assert_allclose(allp[:, 0].min(), 10, atol=1e-3)
  np.testing.assert_allclose(allp[:, 0].max(), 245, atol=1e-3)
  # Aspect kept: height is half the width, centred vertically.
  np.testing.assert_allclose(np.ptp(allp[:, 1]), 117.5, atol=1e-3)
  np.testing.assert_allclose(allp[:, 1].mean() * 0 + (allp[:, 1].min() + allp[:, 1].max()) / 2, 127.5, atol=1e-3)
  S.validate_strokes(out, "k")
