"""Does the input pipeline keep up with training? pair_loader samples/s vs a step's consumption.

  python benchmarks/data.py                      # SynthSketch, 64 and 224 px, 0 and 2 workers
  python benchmarks/data.py --sizes=64 --workers=0,2,4 --seconds=10

Each row times `sgvu.data.pipeline.pair_loader` (sketch + photo + negative
photo triplets) after a warm-up; the step row times a jitted forward+backward
of the `synth-s` ViT image tower on sketch + photo + neg_photo at 64 px with
a triplet loss, measured in the same run. Target: pipeline >= 3x the step.
The two are timed one after the other, not concurrently: on a machine with
few cores they would share them.
"""

from __future__ import annotations

import argparse
import sys
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


def time_step(batch_size: int, image_size: int, steps: int) -> tuple[float, str]:
  """Triplets per second consumed by a jitted fwd+bwd of a small ViT image tower."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  # TODO(lead): point this at the default training step (task loss + optimizer update)
  # once it is settled; for now: the synth-s image tower + a triplet loss + Adam.
  from sgvu.models.clip import get_preset  # pylint: disable=g-import-not-at-top
  from sgvu.models.vit import VisionTransformer  # pylint: disable=g-import-not-at-top

  cfg = get_preset("synth-s")
  if cfg.vision.image_size != image_size:
    raise ValueError(f"synth-s image size is {cfg.vision.image_size}, asked {image_size}")
  model = VisionTransformer(cfg)
  images = jnp.zeros((3 * batch_size, image_size, image_size, 3), jnp.float32)
  params = model.init(jax.random.PRNGKey(0), images[:2])["params"]
  opt = optax.adam(1e-4)
  opt_state = opt.init(params)

  def loss_fn(p, x):
    e = model.apply({"params": p}, x)
    e = e / jnp.linalg.norm(e, axis=-1, keepdims=True)
    s, ph, neg = jnp.split(e, 3)
    d_pos = 1 - jnp.sum(s * ph, -1)
    d_neg = 1 - jnp.sum(s * neg, -1)
    return jnp.mean(jax.nn.relu(d_pos - d_neg + 0.2))

  @jax.jit
  def step(p, o, batch):
    x = jnp.concatenate([batch["sketch"], batch["photo"], batch["neg_photo"]])
    x = x.astype(jnp.float32) / 127.5 - 1.0
    loss, grads = jax.value_and_grad(loss_fn)(p, x)
    updates, o = opt.update(grads, o, p)
    return optax.apply_updates(p, updates), o, loss

  rng = np.random.default_rng(0)
  batch = {k: rng.integers(0, 256, (batch_size, image_size, image_size, 3), dtype=np.uint8)
           for k in ("sketch", "photo", "neg_photo")}
  params, opt_state, loss = step(params, opt_state, batch)  # compile
  jax.block_until_ready(loss)
  start = time.perf_counter()
  for _ in range(steps):
    params, opt_state, loss = step(params, opt_state, batch)
  jax.block_until_ready(loss)
  per_step = (time.perf_counter() - start) / steps
  n_params = sum(x.size for x in jax.tree.leaves(params))
  what = (f"synth-s ViT ({n_params / 1e6:.1f}M params) fwd+bwd+Adam, {3 * batch_size} images "
          f"at {image_size}px, {per_step:.2f} s/step on {jax.devices()[0].platform}")
  return batch_size / per_step, what


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sizes", default="64,224")
  parser.add_argument("--workers", default="0,2")
  parser.add_argument("--batch_size", type=int, default=64, help="triplets per batch / step")
  parser.add_argument("--seconds", type=float, default=6.0, help="timing window per row")
  parser.add_argument("--steps", type=int, default=3)
  args = parser.parse_args(argv)
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()  # grain workers read absl flags
  source = get_source("synth")
  rows = []
  for size in [int(s) for s in args.sizes.split(",")]:
    for workers in [int(w) for w in args.workers.split(",")]:
      rate = time_pipeline(source, size, workers, args.batch_size, args.seconds)
      rows.append((f"pair_loader synth {size}px, {workers} workers", rate))
      print(f"  {rows[-1][0]}: {rate:.1f} samples/s", file=sys.stderr, flush=True)
  consume, what = time_step(args.batch_size, 64, args.steps)
  print(f"\nstep: {what}")
  print(f"{'':44s} {'samples/s':>10s} {'x step':>8s}")
  for name, rate in rows:
    print(f"{name:44s} {rate:10.1f} {rate / consume:8.2f}")
  print(f"{'training step consumes (64 px, batch ' + str(args.batch_size) + ')':44s} "
        f"{consume:10.1f} {1.0:8.2f}")
  best64 = max((r for n, r in rows if " 64px" in n), default=None)
  if best64 is not None:
    ratio = best64 / consume
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    print(f"\nbest 64 px pipeline / step = {ratio:.2f}x: {verdict} the >= {TARGET_RATIO:.0f}x target")
  return 0


if __name__ == "__main__":
  sys.exit(main())
