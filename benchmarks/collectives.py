"""Which collectives each mesh puts into sgvu's real training step (issue 14: multi-device without the devices).

  PYTHONPATH=. .venv/bin/python benchmarks/collectives.py            # 8 simulated CPU devices
  PYTHONPATH=. .venv/bin/python benchmarks/collectives.py --dump=/tmp/hlo   # also writes each compiled HLO

The step is `sgvu.train.build`'s jitted step (forward, backward, Adam, the non-finite guard) of a CLIP image
tower (`--preset`, default 'tiny': width 64, 2 layers) under prompt-free full fine-tuning. Each mesh compiles it
with XLA's SPMD partitioner and counts the collective ops of the optimized HLO. What each mesh must show:
- data=8: every parameter replicated, the batch split: gradients are summed with all-reduce; no all-gather.
- fsdp=8: parameters split along their width ('embed'): all-gather before use, and the gradients reduced
  and split again (reduce-scatter, or all-reduce + dynamic-slice where XLA:CPU does not form one).
- data=4, model=2: MLP and heads split in two (tensor parallel; 'tiny' has 2 heads): all-reduce of activations
  inside each block besides the gradients'.
- data=2, fsdp=2, model=2: all three kinds at once.
On a real multi-device machine the same script runs on its devices (--devices=0: all of them).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import sys

COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
MESHES = {"data=8": {"data": 8}, "fsdp=8": {"fsdp": 8}, "data=4,model=2": {"data": 4, "model": 2},
          "data=2,fsdp=2,model=2": {"data": 2, "fsdp": 2, "model": 2}}


def count_collectives(hlo_text: str) -> collections.Counter:
  """Collective ops of an HLO module's text by kind (async pairs counted once, by their -start)."""
  counts = collections.Counter()
  for kind in COLLECTIVES:
    # `= f32[..] all-reduce(` or the async form `all-reduce-start(`; `-done` completes the same op.
    counts[kind] = len(re.findall(rf"\s{kind}(?:-start)?\(", hlo_text))
  return counts


def compiled_step_hlo(mesh: dict, num_devices: int, preset: str = "tiny", batch: int = 16) -> str:
  """Optimized HLO text of the real training step of a CLIP image tower on `mesh`."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from experiments import blocks  # pylint: disable=g-import-not-at-top
  from sgvu import train  # pylint: disable=g-import-not-at-top
  from sgvu.models.clip import get_preset  # pylint: disable=g-import-not-at-top
  from sgvu.models.vit import VisionTransformer  # pylint: disable=g-import-not-at-top
  from sgvu.tasks.base import Task  # pylint: disable=g-import-not-at-top

  vision = get_preset(preset).vision

  class TowerTask(Task):
    def init_params(self, rng):
      return VisionTransformer(vision).init(rng, jnp.zeros((1, vision.image_size, vision.image_size, 3)))["params"]

    def loss_fn(self, params, batch_, rng):
      emb = VisionTransformer(vision).apply({"params": params}, batch_["images"])
      return jnp.mean((emb - batch_["targets"]) ** 2), {}

    def train_iterator(self, batch_size, seed):
      raise NotImplementedError

  c = blocks.train_config()
  c.sharding.num_devices, c.sharding.mesh = num_devices, mesh
  c.optim.name, c.batch_size = "adam", batch
  setup = train.build(TowerTask(c), c)
  state = jax.eval_shape(setup.init, jnp.int32(0))
  images = jax.ShapeDtypeStruct((batch, vision.image_size, vision.image_size, 3), jnp.float32,
                                sharding=setup.batch_sharding)
  targets = jax.ShapeDtypeStruct((batch, vision.embed_dim), jnp.float32, sharding=setup.batch_sharding)
  return setup.step.lower(state, {"images": images, "targets": targets}).compile().as_text()


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--devices", type=int, default=8, help="simulated CPU devices (0: the machine's own devices)")
  p.add_argument("--preset", default="tiny")
  p.add_argument("--dump", default="", help="folder for each mesh's compiled HLO text")
  args = p.parse_args(argv)
  if args.devices:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={args.devices}").strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
  import jax  # pylint: disable=g-import-not-at-top
  n = args.devices or jax.device_count()
  print(f"{n} {jax.devices()[0].platform} devices ({jax.devices()[0].device_kind}); jax {jax.__version__}; "
        f"CLIP '{args.preset}' image tower, full fine-tuning, Adam")
  print("| mesh | " + " | ".join(COLLECTIVES) + " |")
  print("|---|" + "---|" * len(COLLECTIVES))
  for name, mesh in MESHES.items():
    if n != 8:  # a real machine: the same kinds of mesh over its n devices
      mesh = {k: (v if k == "model" else -1) for k, v in mesh.items()} if "data" in mesh else {"fsdp": n}
    hlo = compiled_step_hlo(mesh, n, args.preset)
    if args.dump:
      os.makedirs(args.dump, exist_ok=True)
      with open(os.path.join(args.dump, name.replace(",", "_").replace("=", "") + ".hlo.txt"), "w") as f:
        f.write(hlo)
    counts = count_collectives(hlo)
    print(f"| {name} | " + " | ".join(str(counts[k]) for k in COLLECTIVES) + " |", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
