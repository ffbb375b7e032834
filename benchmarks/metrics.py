"""Side-by-side timing: sgvu's retrieval_metrics vs a straightforward NumPy reference.

  python benchmarks/metrics.py                       # 10k queries x 10k gallery, dim 512, 100 classes
  python benchmarks/metrics.py --reference_queries 0  # time the reference on all queries

The reference loops over queries (vectorised within each query): similarity
row, stable argsort, VOC AP from the cumulative precision. At full size it
takes minutes, so by default it runs on a subset of queries and its time is
scaled linearly to all queries (said in the output). Both are run on the same
subset to check that they agree. The similarity matmuls alone (same blocks,
same precision) are timed too: no ranking can make sgvu faster than them.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from sgvu.metrics import retrieval

KS = (1, 5, 10, 100, 200)


def make_data(num_queries: int, num_gallery: int, dim: int, classes: int, noise: float, seed: int = 0):
  """Class centres plus Gaussian noise: a moderately hard retrieval problem."""
  rng = np.random.default_rng(seed)
  centres = rng.standard_normal((classes, dim)).astype(np.float32)
  query_labels = rng.integers(0, classes, num_queries)
  gallery_labels = rng.integers(0, classes, num_gallery)
  queries = centres[query_labels] + noise * rng.standard_normal((num_queries, dim)).astype(np.float32)
  gallery = centres[gallery_labels] + noise * rng.standard_normal((num_gallery, dim)).astype(np.float32)
  return queries, query_labels, gallery, gallery_labels


def _interpolated_ap(relevant: np.ndarray, denominator: int) -> float:
  if denominator == 0:
    return 0.0
  precision = np.cumsum(relevant) / np.arange(1, len(relevant) + 1)
  envelope = np.maximum.accumulate(precision[::-1])[::-1]
  return float(envelope[relevant].sum() / denominator)


def reference_metrics(queries, query_labels, gallery, gallery_labels, ks=KS) -> dict[str, float]:
  """Per-query NumPy loop implementing the definitions of docs/metrics.md."""
  queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
  gallery = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
  num_gallery = len(gallery)
  sums = {"mAP@all": 0.0}
  firsts = []
  for query, label in zip(queries, query_labels):
    order = np.argsort(-(gallery @ query), kind="stable")  # ties: lower gallery index first
    relevant = gallery_labels[order] == label
    num_relevant = int(relevant.sum())
    sums["mAP@all"] += _interpolated_ap(relevant, num_relevant)
    firsts.append(int(np.argmax(relevant)) + 1 if num_relevant else num_gallery + 1)
    for k in ks:
      hits = int(relevant[:k].sum())
      sums[f"mAP@{k}"] = sums.get(f"mAP@{k}", 0.0) + _interpolated_ap(relevant[:k], min(k, num_relevant))
      sums[f"P@{k}"] = sums.get(f"P@{k}", 0.0) + hits / min(k, num_gallery)
      sums[f"Acc@{k}"] = sums.get(f"Acc@{k}", 0.0) + (hits > 0)
      sums[f"R@{k}"] = sums.get(f"R@{k}", 0.0) + (hits / num_relevant if num_relevant else 0.0)
  out = {name: total / len(queries) for name, total in sums.items()}
  out["MdR"] = float(np.median(firsts))
  return out


def matmul_only(queries, gallery, block_size: int) -> None:
  """Just the similarity matmuls of retrieval_metrics (same blocks, HIGHEST precision): a floor for its time."""
  dot = jax.jit(lambda q, g: jnp.matmul(q, g.T, precision=jax.lax.Precision.HIGHEST))
  gallery = jnp.asarray(gallery / np.linalg.norm(gallery, axis=1, keepdims=True))
  queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
  queries = np.pad(queries, ((0, -len(queries) % block_size), (0, 0)))
  for start in range(0, len(queries), block_size):
    jax.block_until_ready(dot(queries[start:start + block_size], gallery))


def _timed(fn):
  start = time.perf_counter()
  result = fn()
  return result, time.perf_counter() - start


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--num_queries", type=int, default=10_000)
  parser.add_argument("--num_gallery", type=int, default=10_000)
  parser.add_argument("--dim", type=int, default=512)
  parser.add_argument("--classes", type=int, default=100)
  parser.add_argument("--noise", type=float, default=3.0)
  parser.add_argument("--block_size", type=int, default=retrieval.DEFAULT_BLOCK_SIZE)
  parser.add_argument("--reference_queries", type=int, default=500,
                      help="queries the reference runs on (0: all); its time is scaled to all queries")
  parser.add_argument("--repeats", type=int, default=3, help="timed runs of sgvu after the compiling one (best kept)")
  args = parser.parse_args()

  q, ql, g, gl = make_data(args.num_queries, args.num_gallery, args.dim, args.classes, args.noise)
  print(f"data: {args.num_queries} queries x {args.num_gallery} gallery, dim {args.dim}, {args.classes} classes; "
        f"JAX {jax.__version__} on {jax.devices()[0].platform} x{jax.local_device_count()}, "
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"load average {os.getloadavg()[0]:.1f}")

  ours, first_time = _timed(lambda: retrieval.retrieval_metrics(q, ql, g, gl, ks=KS, block_size=args.block_size))
  ours_time = min(_timed(lambda: retrieval.retrieval_metrics(q, ql, g, gl, ks=KS, block_size=args.block_size))[1]
                  for _ in range(args.repeats))

  matmul_only(q, g, args.block_size)  # compiles
  matmul_time = min(_timed(lambda: matmul_only(q, g, args.block_size))[1] for _ in range(args.repeats))

  subset = args.num_queries if args.reference_queries <= 0 else min(args.reference_queries, args.num_queries)
  reference, reference_subset_time = _timed(lambda: reference_metrics(q[:subset], ql[:subset], g, gl))
  reference_time = reference_subset_time * args.num_queries / subset
  ours_subset = retrieval.retrieval_metrics(q[:subset], ql[:subset], g, gl, ks=KS, block_size=args.block_size)
  max_diff = max(abs(ours_subset[k] - reference[k]) for k in reference)

  scaled = "" if subset == args.num_queries else (
      f" (measured on {subset} queries: {reference_subset_time:.2f} s, scaled x{args.num_queries / subset:g})")
  print(f"NumPy reference (per-query loop):   {reference_time:9.2f} s{scaled}")
  print(f"sgvu retrieval_metrics (jitted):    {ours_time:9.2f} s  (first call, with compilation: {first_time:.2f} s; "
        f"block_size {args.block_size})")
  print(f"  its similarity matmuls alone:      {matmul_time:9.2f} s  (same blocks; a floor that caps the speed-up "
        f"at {reference_time / matmul_time:.0f}x)")
  print(f"speed-up: {reference_time / ours_time:.1f}x")
  print(f"agreement on the {subset}-query subset: max |difference| over {len(reference)} metrics = {max_diff:.2e}")
  print("sgvu metrics: " + ", ".join(f"{k}={ours[k]:.4f}" for k in
                                     ("mAP@all", "mAP@100", "mAP@200", "P@100", "P@200", "Acc@1", "Acc@5", "Acc@10")))


if __name__ == "__main__":
  main()
