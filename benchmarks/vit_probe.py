"""How fast the SynthSketch CLIP's image tower learns categories from labels alone (a classifier probe).

  .venv/bin/python benchmarks/vit_probe.py --stem_depth=0 --lr=1e-3 --steps=400 --photos_per_category=80

Trains the synth-s image tower + a linear layer with cross-entropy over the 75 categories on
`photos_per_category` SynthSketch photos each (world seed 1000, 1/8 held out) and prints held-out
accuracy every 100 steps. It separates the image tower's sample efficiency from the text side of
CLIP pretraining; docs/clip.md has the points that chose the pretraining recipe.
"""

import argparse
import dataclasses
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from sgvu import preprocess
from sgvu.data import pipeline
from sgvu.data.synth import SynthSketch
from sgvu.models.clip import get_preset
from sgvu.models.vit import VisionTransformer

NUM_CATEGORIES = 75


def main() -> None:
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--stem_depth", type=int, default=1)
  ap.add_argument("--lr", type=float, default=1e-3)
  ap.add_argument("--steps", type=int, default=400)
  ap.add_argument("--batch_size", type=int, default=128)
  ap.add_argument("--photos_per_category", type=int, default=80)
  args = ap.parse_args()

  source = SynthSketch(seed=1000, protocol="instance", photos_per_category=args.photos_per_category,
                       sketches_per_photo=1, test_fraction=0.125)
  vision = dataclasses.replace(get_preset("synth-s").vision, stem_depth=args.stem_depth)
  size = vision.image_size
  pipeline.materialize(source, size, kinds=("photo",), num_workers=0)

  def arrays(split):
    photos = source.split(split).photos
    return np.stack([pipeline.load_photo(source, p, size) for p in photos]), np.array([p.label for p in photos])

  x_train, y_train = arrays("train")
  x_test, y_test = arrays("test")

  class Probe(nn.Module):
    @nn.compact
    def __call__(self, images):
      return nn.Dense(NUM_CATEGORIES)(VisionTransformer(vision)(preprocess.normalize_images(images)))

  model = Probe()
  params = nn.unbox(model.init(jax.random.key(0), jnp.zeros((1, size, size, 3), jnp.uint8)))
  opt = optax.adamw(optax.warmup_cosine_decay_schedule(0.0, args.lr, 50, args.steps), weight_decay=0.05)
  opt_state = opt.init(params)

  @jax.jit
  def step(params, opt_state, x, y):
    def loss_fn(p):
      return optax.softmax_cross_entropy_with_integer_labels(model.apply(p, x), y).mean()
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  predict = jax.jit(lambda p, x: jnp.argmax(model.apply(p, x), -1))
  rng, started = np.random.default_rng(0), time.perf_counter()
  for i in range(1, args.steps + 1):
    idx = rng.integers(0, len(x_train), args.batch_size)
    params, opt_state, loss = step(params, opt_state, x_train[idx], y_train[idx])
    if i % 100 == 0:
      pred = np.concatenate([np.asarray(predict(params, x_test[j:j + 250])) for j in range(0, len(x_test), 250)])
      print(f"stem_depth={args.stem_depth} lr={args.lr} step {i}: train batch loss {float(loss):.3f}, "
            f"held-out acc {np.mean(pred == y_test):.3f} ({time.perf_counter() - started:.0f}s)", flush=True)


if __name__ == "__main__":
  main()
