"""Zero-shot SBIR with CLIP prompts (seed 004) on Sketchy + extended photos, the paper's setting.

  python -m sgvu.main --config=experiments/zs_sbir_sketchy.py \
      --config.model.clip_init=hf:/models/clip-vit-base-patch32 --config.data.root=/data/Sketchy

Trains every method of `methods` on the 104 seen classes and evaluates on the
21 unseen ones of the standard split (docs/datasets.md); see docs/real_data.md.
`:tiny` (2 steps, 2 methods) is what tests/test_experiments_real.py runs.

`paper_config` is the seed-004 setting shared by the TU-Berlin, QuickDraw and
fine-grained configs, which load this file by path.
"""

from __future__ import annotations

import importlib.util
import os
from types import ModuleType

import ml_collections

VARIANTS = ("", "tiny")
# Seed 004's CLIP rows: B-FT, B-Lin, B-IP (shallow), B-Deep, Ours; plus frozen CLIP.
# The ablations ('ours-no-layernorm', 'ours-no-cls') are one --config.methods away.
METHODS = ("frozen", "full-ft", "linear", "shallow-prompt", "deep-prompt", "ours")


def load_experiment(name: str) -> ModuleType:
  """experiments/<name>.py as a module, found next to this file (works from any directory)."""
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path}: experiment config not found")
  spec = importlib.util.spec_from_file_location(f"sgvu_experiment_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def paper_config(dataset: str, name: str, arg: str, *, methods: tuple[str, ...],
                 grid_method: str, num_steps: int) -> ml_collections.ConfigDict:
  """experiments/zs_sbir.py's config with seed 004's setting on a real dataset.

  CLIP ViT-B/32 at 224 (given by the user: model.clip_init), 3 shallow prompt
  tokens per branch, Adam with lr 1e-4 for prompts (and heads) and 1e-6 for
  the LayerNorms, batch 192, triplet margin 0.2. `num_steps` is ours: the seed
  gives no schedule (its release runs up to 2000 epochs and keeps the best).
  """
  if arg not in VARIANTS:
    raise ValueError(f"experiments/{name}.py: unknown variant {arg!r}; valid: {VARIANTS}")
  c = load_experiment("zs_sbir").get_config()
  c.name = name
  c.methods = methods
  c.grid_method = grid_method
  c.eval_batch_size = 256

  c.model.clip_init = ""  # required: --config.model.clip_init=hf:/path/to/clip-vit-base-patch32
  c.data.dataset = dataset
  c.data.root = ""  # required: --config.data.root=/path/to/the/local/copy
  c.data.image_size = 224
  c.data.materialize = False  # tens of thousands of files: decode per batch in workers instead
  c.data.num_workers = 8

  c.method.num_prompts = 3
  c.method.margin = 0.2
  c.method.layernorm_lr = 1e-6

  c.zs_train.batch_size = 192
  c.zs_train.num_steps = num_steps
  c.zs_train.log_every = 50
  c.zs_train.checkpoint_every = 500
  c.zs_train.optim.name = "adam"
  c.zs_train.optim.lr = 1e-4  # the prompts' (and linear head's) learning rate
  c.zs_train.optim.weight_decay = 0.0

  if arg == "tiny":  # tests: a few files, a tiny CLIP, 2 steps
    c.name = name + "_tiny"
    c.methods = ("frozen", grid_method)  # one baseline without training, one trained row
    c.data.image_size = 32
    c.data.num_workers = 0
    c.eval_batch_size = 16
    c.zs_train.batch_size = 8
    c.zs_train.num_steps = 2
    c.zs_train.log_every = 1
    c.zs_train.checkpoint_every = 2
    c.grid_queries = 2
  return c


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  # 104 seen classes, ~62k sketches: ~330 steps an epoch at batch 192.
  return paper_config("sketchy", "zs_sbir_sketchy", arg, methods=METHODS, grid_method="ours",
                      num_steps=2000)
