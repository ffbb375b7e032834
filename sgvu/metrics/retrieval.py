"""Retrieval metrics of the (ZS-/FG-) SBIR literature: exact, jitted, blocked over queries.

Conventions (docs/metrics.md has the formulas):
- Ranking: cosine similarity (embeddings are L2-normalised here), highest first.
  Ties are broken by gallery index, lowest first (a stable sort), so every
  metric is a deterministic function of the embeddings. -0.0 and +0.0 tie.
- AP: VOC-interpolated average precision, as SAKE's `eval_AP_inner`/`VOCap`:
  with r_1 < ... < r_n the ranks of the n relevant items,
  AP = 1/n * sum_i max_{j >= i} j / r_j.
- mAP@K: the same on the top K only, divided by min(K, n).
- P@K = (relevant in the top K) / min(K, G); Acc@K = share of queries with a
  relevant item in the top K; R@K = (relevant in the top K) / n;
  MdR = median over queries of the rank of the first relevant item.
- A query with no relevant item: AP = P@K = R@K = 0, a miss for Acc@K,
  first rank G + 1; the count is reported in a `NoRelevantWarning`.

How: every metric above is a function of the sorted ranks of the relevant
items alone. Per block of queries we compute the similarity block, give each
score a unique int64 key (order of the score, then of the gallery index) and
rank the relevant items without sorting the row: their few keys, sorted, cut
it into buckets, and one histogram of the items' buckets gives every rank
(`_bucket_ranks`; a direct count when there are at most a few relevant items).
Only [block_size, G] is ever materialised; all blocks share one compiled shape.
"""

from __future__ import annotations

import collections
import functools
import warnings
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

DEFAULT_KS = (1, 5, 10, 100, 200)
DEFAULT_BLOCK_SIZE = 256  # the CPU matmul is more efficient than at 128 (benchmarks/metrics.py)
# At most this many relevant items per query: count keys above each one
# directly (O(M G)); more: bucket them (`_bucket_ranks`, O(G) per row).
_MAX_DIRECT_COUNT = 4
# Score bins of `_bucket_ranks`' lookup table (fewer for small galleries), and
# how many relevant keys per bin it compares in its first pass (more: a loop).
_NUM_BINS = 4096
_UNROLL = 3
_RANK_ROWS = 32  # rows ranked at a time on CPU (see `_bucket_ranks`)
# Incremented when a block function is traced: tests check one trace per call.
trace_counts: collections.Counter = collections.Counter()


class NoRelevantWarning(UserWarning):
  """Some queries have no relevant item in the gallery (their AP counts as 0)."""


# ---------------------------------------------------------------- validation


def _check_embeds(x, name: str) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim != 2:
    raise ValueError(f"{name} must be 2-D [num, dim], got shape {x.shape}")
  if x.shape[0] == 0 or x.shape[1] == 0:
    raise ValueError(f"{name} is empty (shape {x.shape})")
  if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
    raise ValueError(f"{name} must be real numbers, got dtype {x.dtype}")
  x = x.astype(np.float32)
  bad = ~np.isfinite(x).all(axis=1)
  if bad.any():
    raise ValueError(f"{name} has NaN or inf values in {bad.sum()} rows (first: row {np.argmax(bad)})")
  norms = np.linalg.norm(x, axis=1)
  bad = ~(np.isfinite(norms) & (norms > 0))
  if bad.any():
    raise ValueError(f"{name} has {bad.sum()} rows with zero or overflowing norm (first: row "
                     f"{np.argmax(bad)}); cosine similarity is undefined for them")
  return x


def _check_vector(x, name: str, length: int, length_of: str) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim != 1:
    raise ValueError(f"{name} must be 1-D, got shape {x.shape}")
  if len(x) != length:
    raise ValueError(f"{name} has {len(x)} entries but {length_of} has {length} rows")
  return x


def _check_positive_int(value, name: str) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
    raise ValueError(f"{name} must be a positive integer, got {value!r}")
  return int(value)


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
  return tuple(_check_positive_int(k, f"every K in ks={tuple(ks)}") for k in ks)


# ------------------------------------------------------------------ relevance


def _label_relevance(query_labels: np.ndarray, gallery_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(table [C + 1, M], row [Q]): table[row[q]] lists q's relevant gallery indices, -1 padded.

  One row per class rather than per query: Q x M could be large.
  """
  classes, gallery_class = np.unique(gallery_labels, return_inverse=True)
  try:
    slot = np.searchsorted(classes, query_labels)
  except TypeError as e:
    raise ValueError(f"query_labels ({query_labels.dtype}) and gallery_labels ({gallery_labels.dtype}) "
                     f"cannot be compared: {e}") from e
  slot = np.minimum(slot, len(classes) - 1)
  found = classes[slot] == query_labels
  counts = np.bincount(gallery_class, minlength=len(classes))
  # Table row c lists class c's gallery indices (ascending); the extra last row
  # is empty, for queries whose label is not in the gallery.
  table = np.full((len(classes) + 1, counts.max()), -1, np.int32)
  order = np.argsort(gallery_class, kind="stable")
  starts = np.cumsum(counts) - counts
  table[gallery_class[order], np.arange(len(order)) - starts[gallery_class[order]]] = order
  return table, np.where(found, slot, len(classes))


# ----------------------------------------------------------------- jitted core


def _unit(x: jax.Array) -> jax.Array:
  return x / jnp.linalg.norm(x, axis=-1, keepdims=True)


@jax.jit
def _normalise(x: jax.Array) -> jax.Array:
  return _unit(x)


def _similarities(queries: jax.Array, gallery_unit: jax.Array) -> jax.Array:
  # HIGHEST: full f32 on every backend (TPU's default would round to bf16 and
  # change the ranking). -0.0 can occur: keys and bins treat it as +0.0.
  return jnp.matmul(_unit(queries), gallery_unit.T, precision=jax.lax.Precision.HIGHEST)


def _score_keys(sims: jax.Array) -> jax.Array:
  """int32 keys; ascending key = descending score; equal scores (-0.0 and +0.0 too), equal keys."""
  bits = jax.lax.bitcast_convert_type(sims, jnp.int32)
  return jnp.where(bits < 0, bits & 0x7FFFFFFF, -bits)  # sign-magnitude -> two's complement, negated


def _ranking_keys(sims: jax.Array) -> jax.Array:
  """int64 keys, all distinct; ascending key = descending score, then ascending index."""
  index = jnp.arange(sims.shape[-1], dtype=jnp.int64)
  return (_score_keys(sims).astype(jnp.int64) << 32) | index


def _cumsum_rows(x: jax.Array, total: int, chunk: int = 32) -> jax.Array:
  """Inclusive cumsum along axis 1 of non-negative ints whose row sums are at most `total`.

  Two small float32 matmuls, exact below 2^24: XLA:CPU's cumsum (a reduce-window)
  is several times slower.
  """
  if total >= 2 ** 24:
    return jnp.cumsum(x, axis=1)
  rows, cols = x.shape
  pad = -cols % chunk
  x = jnp.pad(x, ((0, 0), (0, pad))).reshape(rows, -1, chunk).astype(jnp.float32)
  hp = jax.lax.Precision.HIGHEST  # bf16 passes would round counts above 256
  inner = jnp.matmul(x, jnp.triu(jnp.ones((chunk, chunk), jnp.float32)), precision=hp)
  chunks = inner.shape[1]
  before = jnp.matmul(inner[:, :, -1], jnp.triu(jnp.ones((chunks, chunks), jnp.float32), 1), precision=hp)
  return (inner + before[:, :, None]).reshape(rows, -1)[:, :cols].astype(jnp.int32)


def _bucket_ranks(sims: jax.Array, relevant: jax.Array) -> jax.Array:
  """Ascending ranks [B, M] of the relevant items (padding: G + 1), without sorting the row.

  The n relevant keys, sorted (cheap: n << G), cut the row into n + 1 buckets,
  and rank_i = #{gallery items in buckets 0..i}: one histogram. Each item finds
  its bucket through a lookup table over equal-width score bins (exact, since
  the bin is monotone in the score), then compares its key with the few
  relevant keys that share its bin.
  """
  (batch, num_gallery), m = sims.shape, relevant.shape[1]
  chunks = batch // _RANK_ROWS if jax.default_backend() == "cpu" and batch % _RANK_ROWS == 0 else 1
  if chunks > 1:
    # On CPU, _RANK_ROWS rows at a time (rows c, c + chunks, ...: a share of
    # every device's rows), in a loop that reuses their temporaries: XLA:CPU
    # allocates them afresh for each call, and above glibc's 32 MB mmap
    # threshold every page of them then faults.
    sims, relevant = sims.reshape(_RANK_ROWS, chunks, -1), relevant.reshape(_RANK_ROWS, chunks, -1)

    def chunk(c, ranks):
      part = _bucket_ranks(jax.lax.dynamic_index_in_dim(sims, c, 1, keepdims=False),
                           jax.lax.dynamic_index_in_dim(relevant, c, 1, keepdims=False))
      return jax.lax.dynamic_update_index_in_dim(ranks, part, c, 1)

    return jax.lax.fori_loop(0, chunks, chunk, jnp.zeros((_RANK_ROWS, chunks, m), jnp.int32)).reshape(batch, m)
  bins = int(min(_NUM_BINS, max(32, 2 ** int(np.ceil(np.log2(num_gallery))))))
  valid = relevant >= 0
  num_relevant = jnp.sum(valid, axis=1)
  rel = jnp.maximum(relevant, 0)
  rel_sims = jnp.take_along_axis(sims, rel, axis=1)
  # Bins of equal width between the best and the worst relevant score. Rounded
  # float ops are monotone, so a better score never lands in a later bin
  # (and -0.0, +0.0 share one).
  best = jnp.max(jnp.where(valid, rel_sims, -jnp.inf), axis=1, keepdims=True)
  span = best - jnp.min(jnp.where(valid, rel_sims, jnp.inf), axis=1, keepdims=True)
  scale = jnp.where(span > 0, jnp.minimum(bins / jnp.where(span > 0, span, 1.0), 3e38), 0.0)
  best = jnp.where(num_relevant[:, None] > 0, best, 0.0)
  bin_of = lambda s, best, scale: jnp.clip((best - s) * scale, 0, bins - 1).astype(jnp.int32)  # truncation = floor
  rel_bin = jnp.where(valid, bin_of(rel_sims, best, scale), bins)
  per_bin = jax.vmap(lambda r: jnp.zeros(bins, jnp.int32).at[r].add(1, mode="drop"))(rel_bin)
  # Table per bin: relevant items in earlier bins, offset by row for one flat histogram.
  width = m + 1
  first = _cumsum_rows(per_bin, m) - per_bin + width * jnp.arange(batch, dtype=jnp.int32)[:, None]
  most = jnp.max(jnp.take_along_axis(per_bin, jnp.minimum(rel_bin, bins - 1), axis=1))
  # The relevant items' full keys (score, then index), sorted, and sentinels at [m:].
  rel_keys = jnp.where(valid, (_score_keys(rel_sims).astype(jnp.int64) << 32) | rel, jnp.iinfo(jnp.int64).max)
  rel_keys = jnp.pad(jnp.sort(rel_keys, axis=1), ((0, 0), (0, _UNROLL)), constant_values=jnp.iinfo(jnp.int64).max)

  def histogram(score_key, item_bin, first, rel_keys, most):
    start = jnp.take_along_axis(first, item_bin, axis=1, mode="promise_in_bounds")
    row_start = width * jnp.arange(batch, dtype=jnp.int32)[:, None]

    def compare(j, bucket):  # bucket -> #{relevant keys < key}: later bins hold only larger keys
      key = (score_key.astype(jnp.int64) << 32) | jnp.arange(num_gallery, dtype=jnp.int64)
      position = jnp.minimum(start - row_start + j, m + _UNROLL - 1)
      return bucket + (jnp.take_along_axis(rel_keys, position, axis=1, mode="promise_in_bounds") < key)

    # The first _UNROLL compares fuse into one pass; a bin with more relevant
    # items takes a loop, behind a cond: XLA would hoist (and store) the int64
    # item keys out of the loop even when it does not run.
    bucket = start
    for j in range(_UNROLL):
      bucket = compare(j, bucket)
    bucket = jax.lax.cond(most > _UNROLL, lambda b: jax.lax.fori_loop(_UNROLL, most, compare, b), lambda b: b, bucket)
    flat = jnp.zeros(batch * width, jnp.int32).at[bucket.reshape(-1)].add(1, mode="promise_in_bounds")
    return flat.reshape(batch, width)

  # The cond (a block with no relevant item skips the work) is also a fusion
  # boundary: its operands are stored, and XLA:CPU's gathers run about 2x
  # slower with the key and bin arithmetic fused into them.
  counts = jax.lax.cond(jnp.any(num_relevant > 0), histogram, lambda *_: jnp.zeros((batch, width), jnp.int32),
                        _score_keys(sims), bin_of(sims, best, scale), first, rel_keys, most)
  # Relevant item i has i relevant keys below its own: it and all ahead of it are in buckets 0..i.
  ranks = _cumsum_rows(counts, num_gallery)[:, :m]
  return jnp.where(jnp.arange(m) < num_relevant[:, None], ranks, num_gallery + 1)


def _metrics_from_ranks(ranks: jax.Array, num_relevant: jax.Array, ks: tuple[int, ...]) -> dict:
  """Per-query metrics from the ascending ranks [B, M] of the relevant items (padding at the end)."""
  ranks = ranks.astype(jnp.float64)
  position = jnp.arange(1, ranks.shape[1] + 1, dtype=jnp.float64)
  valid = position <= num_relevant[:, None]
  precision = jnp.where(valid, position / ranks, 0.0)  # precision at each relevant rank
  n = num_relevant.astype(jnp.float64)

  def interpolated_ap(keep, denominator):
    # VOC interpolation: max precision at this or any later rank. Between
    # relevant ranks precision only falls, so a right-to-left running max over
    # the relevant ranks is that envelope.
    envelope = jax.lax.cummax(jnp.where(keep, precision, 0.0), axis=1, reverse=True)
    return jnp.sum(jnp.where(keep, envelope, 0.0), axis=1) / jnp.maximum(denominator, 1.0)

  out = {"ap": interpolated_ap(valid, n),
         "first_rank": ranks[:, 0].astype(jnp.int32),
         "num_relevant": num_relevant}
  for k in ks:
    in_top = valid & (ranks <= k)
    out[f"ap@{k}"] = interpolated_ap(in_top, jnp.minimum(n, k))
    out[f"hits@{k}"] = jnp.sum(in_top, axis=1, dtype=jnp.int32)
  return out


@functools.partial(jax.jit, static_argnames=("ks",))
def _block_metrics(queries, gallery_unit, relevant, ks):
  """Per-query metrics for one block; `relevant` [B, M] holds gallery indices, -1 = none."""
  trace_counts["block_metrics"] += 1
  sims = _similarities(queries, gallery_unit)
  valid = relevant >= 0
  if relevant.shape[1] <= _MAX_DIRECT_COUNT:
    keys = _ranking_keys(sims)
    relevant_keys = jnp.take_along_axis(keys, jnp.maximum(relevant, 0), axis=1)
    ahead = jnp.sum(keys[:, None, :] < relevant_keys[:, :, None], axis=-1, dtype=jnp.int32)
    ranks = jnp.sort(jnp.where(valid, ahead + 1, sims.shape[1] + 1), axis=1)
  else:
    ranks = _bucket_ranks(sims, relevant)
  return _metrics_from_ranks(ranks, jnp.sum(valid, axis=1, dtype=jnp.int32), ks)


@functools.partial(jax.jit, static_argnames=("k",))
def _block_topk(queries, gallery_unit, k):
  trace_counts["block_topk"] += 1
  sims = _similarities(queries, gallery_unit)
  # XLA's TopK puts the lower index first among equal values: our tie rule,
  # once -0.0 is +0.0.
  scores, indices = jax.lax.top_k(jnp.where(sims == 0, 0.0, sims), k)
  return {"indices": indices, "scores": scores}


def _blocks(num: int, block_size: int, num_devices: int):
  """(start, stop) of each block, and the padded block length shared by all
  blocks (one compiled shape), a multiple of the device count."""
  size = -(-min(block_size, num) // num_devices) * num_devices
  return [(s, min(s + size, num)) for s in range(0, num, size)], size


def _pad(x: np.ndarray, size: int, value=None) -> np.ndarray:
  missing = size - len(x)
  if missing == 0:
    return x
  pad = [(0, missing)] + [(0, 0)] * (x.ndim - 1)
  # Repeating a real row keeps padded queries finite; their results are dropped.
  return np.pad(x, pad, mode="edge") if value is None else np.pad(x, pad, constant_values=value)


def _map_blocks(block_fn, num_queries: int, block_size: int, gallery: np.ndarray) -> list:
  """Runs block_fn(start, stop, size, gallery_unit, rows_sharding) over all query blocks.

  Each block's rows are split over the local devices (the gallery is
  replicated), so several GPUs share the work under one compilation. Dispatch
  is asynchronous: the host prepares block i + 1 while block i runs.
  """
  mesh = jax.sharding.Mesh(np.array(jax.local_devices()), ("queries",))
  rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("queries"))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  blocks, size = _blocks(num_queries, block_size, mesh.size)
  gallery_unit = _normalise(jax.device_put(gallery, replicated))
  results = jax.device_get([block_fn(start, stop, size, gallery_unit, rows) for start, stop in blocks])
  return [{name: value[:stop - start] for name, value in r.items()} for r, (start, stop) in zip(results, blocks)]


# ------------------------------------------------------------------ public API


def per_query_metrics(query_embeds, gallery_embeds, *, query_labels=None, gallery_labels=None,
                      query_targets=None, ks: Sequence[int] = DEFAULT_KS,
                      block_size: int = DEFAULT_BLOCK_SIZE) -> dict[str, np.ndarray]:
  """Per-query arrays: `ap`, `ap@K`, `hits@K`, `first_rank` (1-indexed), `num_relevant`.

  Relevance is either category-level (`query_labels` and `gallery_labels`: a
  gallery item is relevant when its label equals the query's) or instance-level
  (`query_targets`: the gallery index of the one true item per query).
  """
  queries = _check_embeds(query_embeds, "query_embeds")
  gallery = _check_embeds(gallery_embeds, "gallery_embeds")
  if queries.shape[1] != gallery.shape[1]:
    raise ValueError(f"query_embeds has dim {queries.shape[1]} but gallery_embeds has dim {gallery.shape[1]}")
  num_queries, num_gallery = len(queries), len(gallery)
  ks, block_size = _check_ks(ks), _check_positive_int(block_size, "block_size")
  if query_targets is not None:
    if query_labels is not None or gallery_labels is not None:
      raise ValueError("give either query_targets or query_labels + gallery_labels, not both")
    targets = _check_vector(query_targets, "query_targets", num_queries, "query_embeds")
    if not np.issubdtype(targets.dtype, np.integer):
      raise ValueError(f"query_targets must be integer gallery indices, got dtype {targets.dtype}")
    if targets.min() < 0 or targets.max() >= num_gallery:
      raise ValueError(f"query_targets must lie in [0, {num_gallery}) (gallery size), "
                       f"got values in [{targets.min()}, {targets.max()}]")
    table, row = targets.astype(np.int32)[:, None], np.arange(num_queries)
  elif query_labels is None or gallery_labels is None:
    raise ValueError("give query_labels and gallery_labels (category-level) or query_targets (instance-level)")
  else:
    table, row = _label_relevance(_check_vector(query_labels, "query_labels", num_queries, "query_embeds"),
                                _check_vector(gallery_labels, "gallery_labels", num_gallery, "gallery_embeds"))

  with jax.enable_x64(True):  # int64 ranking keys and f64 averaging, inside this call only
    results = _map_blocks(lambda start, stop, size, gallery_unit, rows: _block_metrics(
        jax.device_put(_pad(queries[start:stop], size), rows), gallery_unit,
        jax.device_put(_pad(table[row[start:stop]], size, -1), rows), ks), num_queries, block_size, gallery)
  return {name: np.concatenate([r[name] for r in results]) for name in results[0]}


def summarize(per_query: dict[str, np.ndarray], num_gallery: int, ks: Sequence[int] = DEFAULT_KS,
              warn: bool = True) -> dict[str, float]:
  """Averages `per_query_metrics` into `mAP@all`, `mAP@K`, `P@K`, `Acc@K`, `R@K`, `MdR`."""
  num_relevant = per_query["num_relevant"]
  missing = int(np.sum(num_relevant == 0))
  if missing and warn:
    warnings.warn(f"{missing} of {len(num_relevant)} queries have no relevant item in the gallery: "
                  f"their AP, P@K and R@K count as 0 and Acc@K as a miss", NoRelevantWarning, stacklevel=3)
  first_rank = per_query["first_rank"]
  out = {"mAP@all": float(np.mean(per_query["ap"]))}
  for k in _check_ks(ks):
    hits = per_query[f"hits@{k}"].astype(np.float64)
    out[f"mAP@{k}"] = float(np.mean(per_query[f"ap@{k}"]))
    out[f"P@{k}"] = float(np.mean(hits / min(k, num_gallery)))
    out[f"Acc@{k}"] = float(np.mean(hits > 0))
    out[f"R@{k}"] = float(np.mean(hits / np.maximum(num_relevant, 1)))
  out["MdR"] = float(np.median(first_rank))
  return out


def retrieval_metrics(query_embeds, query_labels, gallery_embeds, gallery_labels, *,
                      ks: Sequence[int] = DEFAULT_KS, block_size: int = DEFAULT_BLOCK_SIZE) -> dict[str, float]:
  """Category-level metrics: `mAP@all` and `mAP@K`, `P@K`, `Acc@K`, `R@K` for K in `ks`, and `MdR`.

  Fractions in [0, 1] (MdR is a rank). Conventions: see the module docstring.
  """
  per_query = per_query_metrics(query_embeds, gallery_embeds, query_labels=query_labels,
                                gallery_labels=gallery_labels, ks=ks, block_size=block_size)
  return summarize(per_query, len(gallery_embeds), ks)


def instance_metrics(query_embeds, query_targets, gallery_embeds, *, ks: Sequence[int] = (1, 5, 10),
                     block_size: int = DEFAULT_BLOCK_SIZE) -> dict[str, float]:
  """Instance-level metrics (one true gallery item per query): `Acc@K` (= `R@K`), `MdR`, ...

  Same names as `retrieval_metrics`; with one relevant item AP = 1 / rank, so
  `mAP@all` is the mean reciprocal rank.
  """
  per_query = per_query_metrics(query_embeds, gallery_embeds, query_targets=query_targets, ks=ks,
                                block_size=block_size)
  return summarize(per_query, len(gallery_embeds), ks)


def ranks(query_embeds, query_targets, gallery_embeds, *, block_size: int = DEFAULT_BLOCK_SIZE) -> np.ndarray:
  """[Q] int: 1-indexed rank of each query's true gallery item (ties: lower index first)."""
  return per_query_metrics(query_embeds, gallery_embeds, query_targets=query_targets, ks=(),
                           block_size=block_size)["first_rank"]


def topk(query_embeds, gallery_embeds, k: int, *,
         block_size: int = DEFAULT_BLOCK_SIZE) -> tuple[np.ndarray, np.ndarray]:
  """(indices [Q, k'] int32, cosine scores [Q, k'] float32), best first, k' = min(k, G)."""
  queries = _check_embeds(query_embeds, "query_embeds")
  gallery = _check_embeds(gallery_embeds, "gallery_embeds")
  if queries.shape[1] != gallery.shape[1]:
    raise ValueError(f"query_embeds has dim {queries.shape[1]} but gallery_embeds has dim {gallery.shape[1]}")
  (k,), block_size = _check_ks([k]), _check_positive_int(block_size, "block_size")
  k = min(k, len(gallery))
  results = _map_blocks(lambda start, stop, size, gallery_unit, rows: _block_topk(
      jax.device_put(_pad(queries[start:stop], size), rows), gallery_unit, k), len(queries), block_size, gallery)
  return (np.concatenate([r["indices"] for r in results]), np.concatenate([r["scores"] for r in results]))
