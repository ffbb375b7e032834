"""Metrics against plain NumPy loops that implement the same definitions (docs/metrics.md)."""

import itertools
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sgvu.metrics import on_the_fly
from sgvu.metrics import retrieval

KS = (1, 5, 10, 100, 200)


# ------------------------------------------------------------ NumPy references


def ref_cosine(q, g):
  q = np.asarray(q, np.float64)
  g = np.asarray(g, np.float64)
  return (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (g / np.linalg.norm(g, axis=1, keepdims=True)).T


def ref_order(scores_row):
  """Gallery indices best first; equal scores keep index order."""
  return np.argsort(-scores_row, kind="stable")


def ref_ap(rel, top=None):
  """VOC-interpolated AP of a ranked 0/1 list, by the definition (loops)."""
  total = int(np.sum(rel))
  if top is not None:
    rel = rel[:top]
    total = min(top, total)
  if total == 0:
    return 0.0
  precision = [np.sum(rel[:i + 1]) / (i + 1) for i in range(len(rel))]
  return sum(max(precision[i:]) for i in range(len(rel)) if rel[i]) / total


def ref_ap_recall_steps(rel, top=None):
  """The same AP as an area under the interpolated precision-recall curve (SAKE's VOCap form)."""
  total = int(np.sum(rel))
  if top is not None:
    rel = rel[:min(top, len(rel))]
    total = min(top, total)
  if total == 0:
    return 0.0
  tp = np.cumsum(rel)
  recall = np.concatenate([[0.0], tp / total, [1.0]])
  precision = np.concatenate([[0.0], tp / np.arange(1, len(rel) + 1), [0.0]])
  for i in range(len(precision) - 2, -1, -1):
    precision[i] = max(precision[i], precision[i + 1])
  area = 0.0
  for i in range(1, len(recall)):
    if recall[i] != recall[i - 1]:
      area += (recall[i] - recall[i - 1]) * precision[i]
  return area


def ref_metrics(q, ql, g, gl, ks):
  scores = ref_cosine(q, g)
  per = {"ap": [], "first": []}
  for k in ks:
    per[f"ap@{k}"], per[f"p@{k}"], per[f"acc@{k}"], per[f"r@{k}"] = [], [], [], []
  for i in range(len(q)):
    rel = (gl[ref_order(scores[i])] == ql[i]).astype(np.int64)
    n = rel.sum()
    per["ap"].append(ref_ap(rel))
    per["first"].append(np.argmax(rel) + 1 if n else len(g) + 1)
    for k in ks:
      per[f"ap@{k}"].append(ref_ap(rel, k))
      per[f"p@{k}"].append(rel[:k].sum() / min(k, len(g)))
      per[f"acc@{k}"].append(float(rel[:k].sum() > 0))
      per[f"r@{k}"].append(rel[:k].sum() / n if n else 0.0)
  out = {"mAP@all": np.mean(per["ap"]), "MdR": np.median(per["first"])}
  for k in ks:
    out.update({f"mAP@{k}": np.mean(per[f"ap@{k}"]), f"P@{k}": np.mean(per[f"p@{k}"]),
                f"Acc@{k}": np.mean(per[f"acc@{k}"]), f"R@{k}": np.mean(per[f"r@{k}"])})
  return out


def ref_target_ranks(q, targets, g):
  scores = ref_cosine(q, g)
  return np.array([int(np.where(ref_order(scores[i]) == t)[0][0]) + 1 for i, t in enumerate(targets)])


# ---------------------------------------------------------------- test data


def exact_embeds(rng, num, dim=48, nonzero=16):
  """+-1 at `nonzero` places: unit vectors are exact in float32, so every cosine
  is an exact multiple of 1/16, in float32 and float64 alike (many exact ties)."""
  x = np.zeros((num, dim), np.float32)
  for row in x:
    row[rng.choice(dim, nonzero, replace=False)] = rng.choice([-1.0, 1.0], nonzero)
  return x


def assert_close_dicts(got, want, atol=1e-6):
  assert set(want) <= set(got), sorted(set(want) - set(got))
  for key in want:
    assert abs(got[key] - want[key]) <= atol, (key, got[key], want[key])


# ---------------------------------------------------------------- retrieval


def test_reference_ap_forms_agree():
  # Guards the references: sum over relevant ranks == SAKE's recall-step area.
  rng = np.random.default_rng(0)
  for _ in range(200):
    rel = (rng.random(rng.integers(1, 30)) < rng.random()).astype(np.int64)
    for top in (None, 1, 3, 10, 50):
      assert abs(ref_ap(rel, top) - ref_ap_recall_steps(rel, top)) < 1e-12


def test_hand_computed_ranking():
  # Query e1; gallery at angles 0..5 x 0.3 rad, so the ranking is 0, 1, ..., 5.
  angles = 0.3 * np.arange(6)
  gallery = np.stack([np.cos(angles), np.sin(angles)], 1)
  labels = np.array([9, 7, 9, 7, 7, 9])  # relevant (label 7) at ranks 2, 4, 5
  m = retrieval.retrieval_metrics(np.array([[1.0, 0.0]]), np.array([7]), gallery, labels, ks=(1, 2, 4, 10))
  # precision at relevant ranks 1/2, 2/4, 3/5 -> interpolated 3/5 each
  assert m["mAP@all"] == pytest.approx(0.6, abs=1e-9)
  assert m["mAP@2"] == pytest.approx(0.5 / 2, abs=1e-9)  # one hit, denominator min(2, 3)
  assert m["mAP@4"] == pytest.approx(0.5 * 2 / 3, abs=1e-9)  # hits at 2, 4: both interp. to 1/2
  assert m["P@2"] == pytest.approx(0.5) and m["P@10"] == pytest.approx(3 / 6)  # K > G: / G
  assert m["Acc@1"] == 0.0 and m["Acc@2"] == 1.0
  assert m["R@4"] == pytest.approx(2 / 3) and m["MdR"] == 2.0


@pytest.mark.parametrize("num_classes", [3, 20])  # few classes: sort path; many: direct count
def test_retrieval_metrics_match_reference_with_ties(num_classes):
  rng = np.random.default_rng(num_classes)
  q, g = exact_embeds(rng, 23), exact_embeds(rng, 57)
  g[10] = g[3]  # exact duplicates tie at every query
  g[40] = g[3]
  ql = rng.integers(0, num_classes + 1, 23)  # label num_classes is never in the gallery
  ql[0] = num_classes
  gl = rng.integers(0, num_classes, 57)
  with pytest.warns(retrieval.NoRelevantWarning, match=r"of 23 queries have no relevant"):
    got = retrieval.retrieval_metrics(q, ql, g, gl, ks=KS, block_size=4)  # 4 does not divide 23
  assert_close_dicts(got, ref_metrics(q, ql, g, gl, KS))
  assert all(0.0 <= v <= 1.0 for k, v in got.items() if k != "MdR")


def test_retrieval_metrics_match_reference_gaussian():
  rng = np.random.default_rng(1)
  for _ in range(50):  # draw until no two scores of a row are within float32 rounding
    centers = rng.standard_normal((6, 32))
    ql, gl = rng.integers(0, 6, 30), rng.integers(0, 6, 80)
    q = (centers[ql] + 1.5 * rng.standard_normal((30, 32))).astype(np.float32)
    g = (centers[gl] + 1.5 * rng.standard_normal((80, 32))).astype(np.float32)
    if np.diff(np.sort(ref_cosine(q, g), axis=1), axis=1).min() > 1e-6:
      break
  else:
    pytest.fail("no draw without near-ties")
  got = retrieval.retrieval_metrics(q, ql, g, gl, ks=KS, block_size=16)
  assert_close_dicts(got, ref_metrics(q, ql, g, gl, KS))
  assert 0.2 < got["mAP@all"] < 0.95  # non-trivial data


def test_string_labels_and_block_size_invariance():
  rng = np.random.default_rng(2)
  q, g = exact_embeds(rng, 19), exact_embeds(rng, 31)
  names = np.array(["cat", "dog", "owl"])
  ql, gl = names[rng.integers(0, 3, 19)], names[rng.integers(0, 3, 31)]
  a = retrieval.per_query_metrics(q, g, query_labels=ql, gallery_labels=gl, ks=(3,), block_size=7)
  b = retrieval.per_query_metrics(q, g, query_labels=ql, gallery_labels=gl, ks=(3,), block_size=64)
  for key in a:
    chex.assert_shape(a[key], (19,))
    np.testing.assert_array_equal(a[key], b[key])
  assert_close_dicts(retrieval.summarize(a, 31, (3,)), ref_metrics(q, ql, g, gl, (3,)))


def test_one_compilation_for_all_blocks():
  rng = np.random.default_rng(3)
  q, g = exact_embeds(rng, 29, dim=40), exact_embeds(rng, 33, dim=40)
  ql, gl = rng.integers(0, 2, 29), rng.integers(0, 2, 33)
  before = retrieval.trace_counts["block_metrics"]
  retrieval.retrieval_metrics(q, ql, g, gl, ks=(7,), block_size=6)  # 5 blocks, last one padded
  assert retrieval.trace_counts["block_metrics"] == before + 1
  retrieval.retrieval_metrics(q[::-1], ql[::-1], g, gl, ks=(7,), block_size=6)
  assert retrieval.trace_counts["block_metrics"] == before + 1


def ref_relevant_ranks(scores, relevant):
  """[B, M] ascending 1-indexed ranks of each row's relevant indices (-1: none) by a stable sort; G + 1 pads."""
  out = np.full(relevant.shape, scores.shape[1] + 1, np.int64)
  for b, row in enumerate(scores):
    rank = np.empty(len(row), np.int64)
    rank[np.argsort(-row, kind="stable")] = np.arange(1, len(row) + 1)  # -0.0 == 0.0 in the sort
    got = np.sort(rank[relevant[b][relevant[b] >= 0]])
    out[b, :len(got)] = got
  return out


@pytest.mark.parametrize("bins, rank_rows", [(4096, 32), (32, 4)])  # 32 bins hold many relevant items each
def test_bucket_ranks_match_a_stable_sort(monkeypatch, bins, rank_rows):
  # The sort-free ranking alone, on hard rows: many relevant items, ties within
  # them and with other items, -0.0 next to +0.0, rows with 0 or 1 relevant item.
  monkeypatch.setattr(retrieval, "_NUM_BINS", bins)
  monkeypatch.setattr(retrieval, "_RANK_ROWS", rank_rows)  # 4: the 24 rows go in 6 chunks (on CPU)
  rng = np.random.default_rng(11)
  scores = rng.standard_normal((24, 700)).astype(np.float32) / 4
  scores[:12] = np.round(scores[:12] * 16) / 16  # exact ties everywhere
  scores[:, ::7] = 0.0
  scores[:, 3::7] = -0.0
  scores[20, :] = 0.25  # one score for the whole row
  relevant = np.full((24, 160), -1, np.int32)
  for b in range(24):
    n = [0, 1, 3, 160][b % 4] if b < 16 else int(rng.integers(100, 161))
    relevant[b, :n] = np.sort(rng.choice(700, n, replace=False))
  with jax.enable_x64(True):
    got = jax.jit(lambda s, r: retrieval._bucket_ranks(s, r))(scores, relevant)
  np.testing.assert_array_equal(got, ref_relevant_ranks(scores, relevant))


def test_retrieval_metrics_many_relevant_items_with_ties_in_chunks():
  # End to end through the chunked CPU ranking (blocks of 64 rows: 2 chunks of 32).
  rng = np.random.default_rng(12)
  q, g = exact_embeds(rng, 70, dim=24, nonzero=4), exact_embeds(rng, 300, dim=24, nonzero=4)  # cosines: k / 4
  g[100:110] = g[5]
  ql, gl = rng.integers(0, 4, 70), rng.integers(0, 4, 300)
  got = retrieval.retrieval_metrics(q, ql, g, gl, ks=KS, block_size=64)
  assert_close_dicts(got, ref_metrics(q, ql, g, gl, KS))


def test_instance_metrics_and_ranks():
  rng = np.random.default_rng(4)
  q, g = exact_embeds(rng, 26), exact_embeds(rng, 45)
  g[5] = g[30]  # a duplicate of some targets' photo
  targets = rng.integers(0, 45, 26)
  targets[:3] = [5, 30, 44]
  want = ref_target_ranks(q, targets, g)
  got = retrieval.ranks(q, targets, g, block_size=8)
  chex.assert_shape(got, (26,))
  np.testing.assert_array_equal(got, want)
  m = retrieval.instance_metrics(q, targets, g, ks=(1, 5, 10, 100))
  for k in (1, 5, 10, 100):
    assert m[f"Acc@{k}"] == pytest.approx(np.mean(want <= k), abs=1e-12)
    assert m[f"R@{k}"] == m[f"Acc@{k}"]
  assert m["MdR"] == np.median(want)
  assert m["mAP@all"] == pytest.approx(np.mean(1.0 / want), abs=1e-6)  # one relevant: AP = 1 / rank


def test_topk_matches_stable_argsort():
  rng = np.random.default_rng(5)
  q, g = exact_embeds(rng, 13), exact_embeds(rng, 37)
  g[20] = g[2]
  indices, scores = retrieval.topk(q, g, 9, block_size=5)
  chex.assert_shape([indices, scores], (13, 9))
  ref = ref_cosine(q, g)
  for i in range(13):
    np.testing.assert_array_equal(indices[i], ref_order(ref[i])[:9])
    np.testing.assert_allclose(scores[i], ref[i][indices[i]], atol=1e-6)
  indices, _ = retrieval.topk(q, g, 100)  # K larger than the gallery: all of it
  chex.assert_shape(indices, (13, 37))


@pytest.mark.parametrize("bad, match", [
    (lambda q, ql, g, gl: (np.where(np.arange(q.size).reshape(q.shape) == 7, np.nan, q), ql, g, gl), "query_embeds has NaN"),
    (lambda q, ql, g, gl: (q, ql, np.where(np.arange(g.size).reshape(g.shape) == 3, np.inf, g), gl), "gallery_embeds has NaN or inf"),
    (lambda q, ql, g, gl: (q, ql[:-1], g, gl), "query_labels has 4 entries but query_embeds has 5"),
    (lambda q, ql, g, gl: (q, ql, g, gl[:2]), "gallery_labels has 2 entries"),
    (lambda q, ql, g, gl: (q[:, :3], ql, g, gl), "query_embeds has dim 3 but gallery_embeds has dim 4"),
    (lambda q, ql, g, gl: (q, ql, g[:0], gl[:0]), "gallery_embeds is empty"),
    (lambda q, ql, g, gl: (q, ql, np.zeros_like(g), gl), "gallery_embeds has 6 rows with zero"),
    (lambda q, ql, g, gl: (q[0], ql, g, gl), "query_embeds must be 2-D"),
])
def test_bad_inputs_raise_naming_the_argument(bad, match):
  rng = np.random.default_rng(6)
  args = (rng.standard_normal((5, 4)), np.zeros(5, int), rng.standard_normal((6, 4)), np.zeros(6, int))
  with pytest.raises(ValueError, match=match):
    retrieval.retrieval_metrics(*bad(*args))


def test_bad_targets_ks_and_block_size():
  q, g = np.eye(3, 4), np.eye(5, 4) + 0.1
  with pytest.raises(ValueError, match=r"query_targets must lie in \[0, 5\)"):
    retrieval.ranks(q, np.array([0, 1, 5]), g)
  with pytest.raises(ValueError, match="query_targets must be integer"):
    retrieval.ranks(q, np.array([0.0, 1.0, 2.0]), g)
  with pytest.raises(ValueError, match="query_targets has 2 entries"):
    retrieval.instance_metrics(q, np.array([0, 1]), g)
  with pytest.raises(ValueError, match="every K in ks"):
    retrieval.retrieval_metrics(q, np.zeros(3), g, np.zeros(5), ks=(5, 0))
  with pytest.raises(ValueError, match="block_size"):
    retrieval.retrieval_metrics(q, np.zeros(3), g, np.zeros(5), block_size=0)
  with pytest.raises(ValueError, match="not both"):
    retrieval.per_query_metrics(q, g, query_labels=np.zeros(3), gallery_labels=np.zeros(5), query_targets=np.zeros(3, int))


def test_no_warning_when_every_query_has_a_relevant_item():
  rng = np.random.default_rng(7)
  q, g = exact_embeds(rng, 6), exact_embeds(rng, 9)
  with warnings.catch_warnings():
    warnings.simplefilter("error", retrieval.NoRelevantWarning)
    retrieval.retrieval_metrics(q, np.zeros(6, int), g, np.zeros(9, int))


# ---------------------------------------------------------------- on the fly


def test_on_the_fly_hand_computed():
  ranks = np.array([[5, 3, 1],
                    [2, 2, 4]])  # gallery of 5 photos, 3 completion levels
  m = on_the_fly.on_the_fly_metrics(ranks, 5, ks=(1, 3, 5))
  # percentiles (5 - r) / 4: [0, 1/2, 1] and [3/4, 3/4, 1/4]
  assert m["m@A"] == pytest.approx((0 + 0.5 + 1 + 0.75 + 0.75 + 0.25) / 6)
  assert m["m@B"] == pytest.approx((1 / 5 + 1 / 3 + 1 + 1 / 2 + 1 / 2 + 1 / 4) / 6)
  assert (m["A@1"], m["A@3"], m["A@5"]) == (0.5, 0.5, 1.0)
  curves = on_the_fly.on_the_fly_curves(ranks, 5)
  np.testing.assert_allclose(curves["percentile"], [3 / 8, 5 / 8, 5 / 8])
  np.testing.assert_allclose(curves["reciprocal_rank"], [(1 / 5 + 1 / 2) / 2, (1 / 3 + 1 / 2) / 2, (1 + 1 / 4) / 2])


def test_on_the_fly_matches_loops_on_random_ranks():
  rng = np.random.default_rng(8)
  g = 100
  ranks = rng.integers(1, g + 1, (37, 20))
  m = on_the_fly.on_the_fly_metrics(ranks, g, ks=(5, 10))
  per_sketch_a = [np.mean([(g - r) / (g - 1) for r in row]) for row in ranks]
  per_sketch_b = [np.mean([1 / r for r in row]) for row in ranks]
  assert m["m@A"] == pytest.approx(np.mean(per_sketch_a), abs=1e-12)
  assert m["m@B"] == pytest.approx(np.mean(per_sketch_b), abs=1e-12)
  assert m["A@10"] == pytest.approx(sum(row[-1] <= 10 for row in ranks) / 37)


@pytest.mark.parametrize("ranks, size, match", [
    (np.array([[0, 1]]), 5, r"ranks must lie in \[1, gallery_size=5\]"),
    (np.array([[1, 6]]), 5, "ranks must lie in"),
    (np.array([1, 2]), 5, "2-D"),
    (np.array([[1.5, 2]]), 5, "integers"),
    (np.array([[1, 1]]), 1, "gallery_size must be an integer >= 2"),
])
def test_on_the_fly_bad_inputs(ranks, size, match):
  with pytest.raises(ValueError, match=match):
    on_the_fly.on_the_fly_metrics(ranks, size)


def brute_force_kendall(a, b):
  pairs = list(itertools.combinations(range(len(a)), 2))
  discordant = sum((a[i] - a[j]) * (b[i] - b[j]) < 0 for i, j in pairs)
  return discordant / len(pairs)


def test_kendall_tau_matches_pair_count():
  rng = np.random.default_rng(9)
  a = rng.integers(0, 6, (4, 17)).astype(np.float32)  # values with ties
  b = rng.integers(0, 6, (4, 17)).astype(np.float32)
  got = jax.jit(on_the_fly.kendall_tau_distance)(a, b)
  chex.assert_shape(got, (4,))
  for i in range(4):
    assert float(got[i]) == pytest.approx(brute_force_kendall(a[i], b[i]), abs=1e-6)
  perm = rng.permutation(12)
  assert float(on_the_fly.kendall_tau_distance(perm, perm)) == 0.0
  assert float(on_the_fly.kendall_tau_distance(perm, -perm)) == 1.0


def test_kendall_tau_of_orderings():
  rng = np.random.default_rng(10)
  first, second = rng.permutation(15), rng.permutation(15)  # best-first lists of item ids
  pos_a = {item: p for p, item in enumerate(first)}
  pos_b = {item: p for p, item in enumerate(second)}
  want = brute_force_kendall([pos_a[i] for i in range(15)], [pos_b[i] for i in range(15)])
  got = on_the_fly.kendall_tau_distance(on_the_fly.ordering_to_ranks(first), on_the_fly.ordering_to_ranks(second))
  assert float(got) == pytest.approx(want, abs=1e-6)
  with pytest.raises(ValueError, match="shape"):
    on_the_fly.kendall_tau_distance(jnp.arange(4), jnp.arange(5))
