"""Does the input pipeline keep up with training? pair_loader samples/s vs a step's consumption.

  python benchmarks/data.py                      # SynthSketch, default size and 224 px, 0 and 2 workers
  python benchmarks/data.py --sizes=64 --workers=0,2,4 --seconds=10
  python benchmarks/data.py --tfds               # fixture Sketchy: directory vs its TFDS/ArrayRecord copy

Each row times `sgvu.data.pipeline.pair_loader` (sketch + photo + negative
photo triplets) after a warm-up; the step row times the main job's default
training step (ZS-SBIR "ours" on the synth-s CLIP, built by sgvu.train.build),
measured in the same run. Target: pipeline >= 3x the step.
The two are timed one after the other, not concurrently: on a machine with
few cores they would share them.

--tfds times the same pair_loader on a fixture-sized Sketchy copy (tests/fixtures_data.py, written
to a temp dir) read from the directory and from its TFDS copy (sgvu.tools.build_tfds), each pair of
rows back to back, with the 1-minute load average before each row (a shared machine skews both).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
from absl import flags

from sgvu.data import get_source, pipeline

TARGET_RATIO = 3.0


def time_pipeline(source, image_size: int, num_workers: int, batch_size: int,
                  seconds: float) -> float:
  """Samples (triplets) per second of pair_loader, after its first two batches."""
  it = pipeline.pair_loader(source, "train", batch_size=batch_size, image_size=image_size,
                            num_workers=num_workers, seed=0, process_index=0, process_count=1)
  try:
    for _ in range(2):  # worker start-up, caches
      next(it)
    n, start = 0, time.perf_counter()
    while True:
      next(it)
      n += batch_size
      elapsed = time.perf_counter() - start
      if elapsed >= seconds and n >= 2 * batch_size:
        return n / elapsed
  finally:
    it.close()


def time_step(steps: int) -> tuple[float, int, int, str]:
  """Triplets/s consumed by the main job's default step: ZS-SBIR "ours" (prompts + LayerNorms)
  on the synth-s CLIP, exactly as `sgvu.main --config=experiments/zs_sbir.py` builds it."""
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from experiments import zs_sbir as experiment  # pylint: disable=g-import-not-at-top
  from sgvu import sharding, train  # pylint: disable=g-import-not-at-top
  from sgvu.data.synth import SynthSketch  # pylint: disable=g-import-not-at-top
  from sgvu.models.clip import CLIP, get_preset  # pylint: disable=g-import-not-at-top
  from sgvu.tasks import zs_sbir  # pylint: disable=g-import-not-at-top

  config = experiment.get_config()
  cfg = get_preset(config.clip_train.model)  # random weights: same speed as the pretrained ones
  size, batch_size = cfg.vision.image_size, config.zs_train.batch_size
  x = np.zeros((1, size, size, 3), np.float32)
  clip_params = CLIP(cfg).init(jax.random.key(0), x, np.zeros((1, cfg.text.context_length), np.int32))["params"]
  source = SynthSketch(photos_per_category=1, sketches_per_photo=1)
  n_seen = len(source.split("train").categories)
  method = zs_sbir.METHODS["category"]["ours"]
  task = zs_sbir.ZSSBIRTask(config, method, cfg, jax.tree.map(np.asarray, nn.unbox(clip_params)), source,
                            np.random.default_rng(0).normal(size=(n_seen, cfg.embed_dim)), 14.0)
  setup = train.build(task, zs_sbir.method_train_config(config, method))
  state = train.initial_state(task, setup, seed=0)
  rng = np.random.default_rng(0)
  batch = {k: rng.integers(0, 256, (batch_size, size, size, 3), dtype=np.uint8)
           for k in ("sketch", "photo", "neg_photo")}
  batch.update(label=np.zeros(batch_size, np.int32), neg_label=np.ones(batch_size, np.int32))
  batch = sharding.to_global(batch, setup.batch_sharding)
  with jax.set_mesh(setup.mesh):
    state, metrics = setup.step(state, batch)  # compile
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(steps):
      state, metrics = setup.step(state, batch)
    jax.block_until_ready(metrics)
  per_step = (time.perf_counter() - start) / steps
  what = (f"ZS-SBIR 'ours' step of the main job: synth-s CLIP image tower, {setup.num_trainable:,} trainable "
          f"params, batch {batch_size} triplets at {size}px, {per_step:.3f} s/step")
  return batch_size / per_step, size, batch_size, what


def compare_tfds(sizes: list[int], workers: list[int], batch_size: int, seconds: float,
                 photos_per_class: int, sketches_per_photo: int) -> None:
  """pair_loader samples/s from a fixture Sketchy folder vs its TFDS copy, side by side."""
  sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
  import fixtures_data as fx  # pylint: disable=g-import-not-at-top
  from sgvu.data import tfds_builders, tfds_source  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory(prefix="sgvu-bench-") as tmp:
    root, out = os.path.join(tmp, "sketchy"), os.path.join(tmp, "tfds")
    fx.write_sketchy(root, photos_per_class=photos_per_class, sketches_per_photo=sketches_per_photo,
                     extra_extended=2)
    start = time.perf_counter()
    tfds_builders.build("sketchy", root, out, report=lambda s: None)
    built = time.perf_counter() - start
    sources = {"directory": get_source("sketchy", root), "tfds": tfds_source.open("sketchy", out)}
    train = sources["directory"].split("train")
    print(f"fixture sketchy train: {len(train.photos)} photos (JPEG 40x30 / 30x44), {len(train.sketches)} "
          f"sketches (PNG 256x256); TFDS copy built in {built:.1f}s", flush=True)
    rows = []
    for size in sizes:
      for w in workers:
        row = {"size": size, "workers": w}
        for name, source in sources.items():
          row[f"load_{name}"] = os.getloadavg()[0]
          row[name] = time_pipeline(source, size, w, batch_size, seconds)
          print(f"  {name} {size}px {w} workers: {row[name]:.1f} samples/s (load {row[f'load_' + name]:.2f})",
                file=sys.stderr, flush=True)
        rows.append(row)
  print(f"\npair_loader samples/s, batch {batch_size}, {seconds:.0f}s per row; load = 1-min load average "
        f"before the row ({os.cpu_count()} CPUs)")
  print(f"{'size':>5s} {'workers':>7s} {'directory':>10s} {'load':>6s} {'tfds':>10s} {'load':>6s} {'tfds/dir':>9s}")
  for r in rows:
    print(f"{r['size']:5d} {r['workers']:7d} {r['directory']:10.1f} {r['load_directory']:6.2f} "
          f"{r['tfds']:10.1f} {r['load_tfds']:6.2f} {r['tfds'] / r['directory']:9.2f}")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sizes", default="", help="comma-separated; default: the main job's size and 224")
  parser.add_argument("--workers", default="0,2")
  parser.add_argument("--batch_size", type=int, default=64, help="triplets per pipeline batch")
  parser.add_argument("--seconds", type=float, default=6.0, help="timing window per row")
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--tfds", action="store_true",
                      help="instead: directory vs TFDS copy of a fixture Sketchy (no step timing)")
  parser.add_argument("--photos_per_class", type=int, default=6, help="--tfds fixture size")
  parser.add_argument("--sketches_per_photo", type=int, default=3, help="--tfds fixture size")
  args = parser.parse_args(argv)
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()  # grain workers read absl flags
  if args.tfds:
    from experiments import zs_sbir as experiment  # pylint: disable=g-import-not-at-top
    from sgvu.models.clip import get_preset  # pylint: disable=g-import-not-at-top
    default_size = get_preset(experiment.get_config().clip_train.model).vision.image_size
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else [default_size, 224]
    compare_tfds(sizes, [int(w) for w in args.workers.split(",")], args.batch_size, args.seconds,
                 args.photos_per_class, args.sketches_per_photo)
    return 0
  consume, default_size, step_batch, what = time_step(args.steps)
  sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else [default_size, 224]
  rows = []
  for size in sizes:
    for workers in [int(w) for w in args.workers.split(",")]:
      source = get_source("synth")
      rate = time_pipeline(source, size, workers, args.batch_size, args.seconds)
      rows.append((f"pair_loader synth {size}px, {workers} workers, on the fly", rate))
      print(f"  {rows[-1][0]}: {rate:.1f} samples/s", file=sys.stderr, flush=True)
    # What the main job does: render the finite synthetic splits once, then index.
    source = pipeline.materialize(get_source("synth"), size, splits=("train",), kinds=("photo", "sketch"))
    rate = time_pipeline(source, size, 0, args.batch_size, args.seconds)
    rows.append((f"pair_loader synth {size}px, 0 workers, materialised", rate))
    print(f"  {rows[-1][0]}: {rate:.1f} samples/s", file=sys.stderr, flush=True)
  print(f"\nstep: {what}")
  print(f"{'':56s} {'samples/s':>10s} {'x step':>8s}")
  for name, rate in rows:
    print(f"{name:56s} {rate:10.1f} {rate / consume:8.2f}")
  print(f"{'default training step consumes (' + str(default_size) + ' px, batch ' + str(step_batch) + ')':56s} "
        f"{consume:10.1f} {1.0:8.2f}")
  for tag in ("on the fly", "materialised"):
    best = max((r for n, r in rows if f" {default_size}px" in n and tag in n), default=None)
    if best is not None:
      ratio = best / consume
      verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
      print(f"best {default_size} px pipeline ({tag}) / step = {ratio:.2f}x: {verdict} the >= "
            f"{TARGET_RATIO:.0f}x target")
  return 0


if __name__ == "__main__":
  sys.exit(main())
