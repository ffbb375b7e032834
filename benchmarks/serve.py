"""Latency of the live page's search (python -m sgvu.tools.serve): one stroke in, a ranked 10k gallery out.

  python benchmarks/serve.py                           # the main job's model (synth-s, 48 px), 10k gallery
  python benchmarks/serve.py --workdir runs/zs_sbir    # a trained row's bundle, its gallery tiled to --gallery
  python benchmarks/serve.py --gallery 100000 --queries 20

Queries are SynthSketch test sketches sent as the page sends them: after every
stroke, the whole sketch so far (QuickDraw strokes + the canvas size). Three
timings, side by side in one run:
  engine     parse + render + embed + score + top-k, in-process (what the server adds per request)
  http       the same through the real server (waitress, loopback), client-measured round trip
  http+rank  with a target photo: its rank after each stroke so far (up to 32 renders, one batched embed)
Without --workdir the model is the zs_sbir bundle's architecture (a prompted
synth-s CLIP image tower) with random weights, and the gallery random unit
vectors: neither changes the work per query. Target: http p95 < 100 ms for a
10k gallery. The machine's load average is printed; these machines are shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import threading
import time
import urllib.request

import flax.linen as nn
import jax
import numpy as np

from sgvu import compile_cache, export
from sgvu.data import configured, strokes as strokes_lib
from sgvu.models import get_preset
from sgvu.models.prompted import PromptedImageEncoder
from sgvu.tools import search, serve
from sgvu.tools.live_search import LiveSearch

TARGET_MS = 100.0
DATA = {"dataset": "synth", "synth_seed": 0, "photos_per_category": 4, "sketches_per_photo": 1, "materialize": False,
        "strict": False, "source_options": {"protocol": "zero_shot"}}


def _random_params(model, *args, method=None):
  shapes = jax.eval_shape(lambda: nn.unbox(model.init(jax.random.key(0), *args, method=method)["params"]))
  rng = np.random.default_rng(0)
  return jax.tree.map(lambda s: (rng.standard_normal(s.shape) * 0.02).astype(np.float32), shapes)


def synthetic_bundle(directory: str, gallery: int) -> export.Bundle:
  vision = get_preset("synth-s").vision
  model = PromptedImageEncoder(vision, prompts="shallow", num_prompts=3)
  x = np.zeros((1, vision.image_size, vision.image_size, 3), np.float32)
  params = _random_params(model, x, x, method=PromptedImageEncoder.encode_both)
  rng = np.random.default_rng(1)
  embeds = rng.standard_normal((gallery, vision.embed_dim)).astype(np.float32)
  source = _source()
  meta = {"experiment": "benchmark", "task": "zs_sbir", "method": "ours", "image_size": vision.image_size,
          "query": {"method": "__call__", "kwargs": {"modality": "sketch"}, "levels": 0},
          "gallery": {"method": "__call__", "kwargs": {"modality": "photo"}}, "data": DATA, "split": "test",
          "categories": list(source.categories)}
  labels = rng.integers(0, len(source.categories), gallery)
  keys = np.asarray([f"photo/{i:06d}" for i in range(gallery)])
  export.save(directory, model=model, params=params, meta=meta,
              gallery=export.Gallery(embeds, labels, np.zeros(gallery, np.int64), keys))
  return export.load(directory)


def tiled_bundle(workdir: str, method: str | None, gallery: int) -> export.Bundle:
  """A trained row's bundle with its gallery repeated (plus noise) up to `gallery` rows."""
  bundle = search.open_bundle(workdir, method)
  g = bundle.gallery
  reps = -(-gallery // len(g.embeds))
  noise = np.random.default_rng(0).standard_normal((reps * len(g.embeds), g.embeds.shape[1])) * 0.01
  bundle.gallery = export.Gallery((np.tile(g.embeds, (reps, 1)) + noise)[:gallery].astype(np.float32),
                                  np.tile(g.labels, reps)[:gallery], np.tile(g.index, reps)[:gallery],
                                  np.asarray([f"{k}#{r}" for r in range(reps) for k in g.keys])[:gallery])
  return bundle


def _source():
  data = dict(DATA)
  return configured.source_from_config(data, materialize=False, **data.pop("source_options"))


def stroke_requests(num_sketches: int) -> list[dict]:
  """The page's requests for `num_sketches` test sketches: one per stroke, the sketch so far each time."""
  source = _source()
  out = []
  for item in source.split("test").sketches[:num_sketches]:
    drawing = strokes_lib.to_quickdraw(source.load_sketch(item).strokes, as_int=False)
    out.extend({"strokes": drawing[:n], "top": 10, "canvas": [256, 256]} for n in range(1, len(drawing) + 1))
  return out


def percentiles(ms: list[float]) -> str:
  a = np.asarray(ms)
  return f"p50 {np.percentile(a, 50):6.1f}  p95 {np.percentile(a, 95):6.1f}  max {a.max():6.1f}"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", default=None, help="a trained workdir (default: a synthetic synth-s bundle)")
  parser.add_argument("--method", default=None)
  parser.add_argument("--gallery", type=int, default=10_000)
  parser.add_argument("--queries", type=int, default=12, help="test sketches; each gives one request per stroke")
  args = parser.parse_args()
  compile_cache.enable()
  tmp = tempfile.mkdtemp(prefix="sgvu-serve-bench-")
  try:
    bundle = (tiled_bundle(args.workdir, args.method, args.gallery) if args.workdir
              else synthetic_bundle(os.path.join(tmp, "bundle"), args.gallery))
    engine = LiveSearch(bundle, workdir=args.workdir or "<synthetic>")
    t = time.perf_counter()
    engine.warm_up()
    warm = time.perf_counter() - t
    requests = stroke_requests(args.queries)
    print(f"{platform.node()} ({os.cpu_count()} cpus), jax {jax.__version__}; model {bundle.meta['model']['name']} "
          f"at {bundle.image_size} px; gallery {len(engine.keys)} x {bundle.embed_dim}; {len(requests)} requests "
          f"({args.queries} sketches, one per stroke); warm-up {warm:.1f} s; load average {os.getloadavg()[0]:.1f}")
    engine_ms = []
    for body in requests:
      t = time.perf_counter()
      engine.search(engine.parse_request(body))
      engine_ms.append(1000 * (time.perf_counter() - t))

    import waitress  # pylint: disable=g-import-not-at-top
    server = waitress.create_server(serve.create_app(engine), host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)  # ends with the process
    thread.start()
    url = f"http://127.0.0.1:{server.effective_port}/api/search"

    def round_trip(body: dict) -> float:
      data = json.dumps(body).encode()
      t = time.perf_counter()
      with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=60) as response:
        json.load(response)
      return 1000 * (time.perf_counter() - t)

    http_ms = [round_trip(body) for body in requests]
    target = engine.keys[len(engine.keys) // 2]
    rank_ms = [round_trip({**body, "target": target}) for body in requests]
    print(f"{'engine':10s} {percentiles(engine_ms)}  ms")
    print(f"{'http':10s} {percentiles(http_ms)}  ms")
    print(f"{'http+rank':10s} {percentiles(rank_ms)}  ms")
    p95 = float(np.percentile(http_ms, 95))
    print(f"target: http p95 < {TARGET_MS:.0f} ms for a {len(engine.keys)} gallery: "
          f"{'met' if p95 < TARGET_MS else 'NOT met'} ({p95:.1f} ms); load average at end {os.getloadavg()[0]:.1f}")
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
  main()
