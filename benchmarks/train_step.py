"""One training step of the ViT-B/32 image tower: sgvu (JAX) vs an equivalent PyTorch, same run.

  PYTHONPATH=. .venv/bin/python benchmarks/train_step.py                 # both modes, 5 timed steps
  PYTHONPATH=. .venv/bin/python benchmarks/train_step.py --steps=9 --modes=full
  PYTHONPATH=. .venv/bin/python benchmarks/train_step.py --xla_flags=--xla_cpu_use_xnnpack=true

Step = forward + backward + Adam update, batch 8 x 224 px, float32, 50 tokens + 3 shallow prompts:
- prompt: backbone frozen; the sketch prompts (lr 1e-4) and every LayerNorm (lr 1e-6) train (seed 004).
- full:   every parameter trains (lr 1e-5).
sgvu runs its real training step (`sgvu.train.build`: split trainable/frozen params, grads only
w.r.t. the trainable ones, optax Adam update, its non-finite-loss guard, jit with donated state) on
`PromptedImageEncoder(prompts='shallow')`. PyTorch runs the same architecture eagerly with
`requires_grad=False` on frozen weights and torch.optim.Adam, 2 threads. Both start from the same
weights; their losses over the first two steps (which also warm both up) are compared before timing.
Compiled XLA programs are cached in --cache_dir, so a second run skips most of the compile time.

Timing interleaves (matmul peak, sgvu, torch) per mode and round so that every side sees the same
machine load; medians are printed. MFU = analytic matmul FLOPs of the step / median time / peak, the
peak being the best 2048^3 float32 matmul in JAX measured in the same rounds.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

# XLA reads its flags when the backend starts: set them before jax is imported.
_pre = argparse.ArgumentParser(add_help=False)
_pre.add_argument("--xla_flags", default="")
_known, _ = _pre.parse_known_args()
if _known.xla_flags:
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _known.xla_flags).strip()

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
import torch  # pylint: disable=wrong-import-position

from sgvu import configs, train  # pylint: disable=wrong-import-position
from sgvu.models.clip import get_preset  # pylint: disable=wrong-import-position
from sgvu.models.prompted import PromptedImageEncoder  # pylint: disable=wrong-import-position
from sgvu.tasks.base import Task  # pylint: disable=wrong-import-position
from sgvu.tasks.zs_sbir import LAYERNORM_PATHS  # pylint: disable=wrong-import-position

MODES = ("prompt", "full")
PROMPT_LR, LAYERNORM_LR, FULL_LR = 1e-4, 1e-6, 1e-5  # seed 004's prompt and LayerNorm rates
# (regex of trainable paths, ((regex, lr), ...)) per mode. photo_prompts exist in the model but the
# sketch branch never reads them: frozen here so the trainable sets of both libraries are identical.
TRAINABLE = {
    "prompt": (f"sketch_prompts|{LAYERNORM_PATHS}", (("sketch_prompts", PROMPT_LR), (LAYERNORM_PATHS, LAYERNORM_LR))),
    "full": (r"(?!photo_prompts).*", ()),
}
TARGET_RATIO, TARGET_MFU = 1.0, 0.5
PARITY_RTOL = 1e-4


class StepTask(Task):
  """Sketch-branch cosine loss against fixed target embeddings: the cheapest loss that trains everything."""

  def __init__(self, config, model, mode):
    super().__init__(config)
    self.model, self.pattern = model, re.compile(TRAINABLE[mode][0])

  def init_params(self, rng):
    size = self.model.vision.image_size
    x = jnp.zeros((1, size, size, 3))
    return self.model.init(rng, x, x, method=PromptedImageEncoder.encode_both)["params"]

  def is_trainable(self, path):
    return self.pattern.fullmatch(path) is not None

  def loss_fn(self, params, batch, rng):
    emb = self.model.apply({"params": params}, batch["images"], "sketch")
    return cosine_loss(emb, batch["targets"], jnp), {}

  def train_iterator(self, batch_size, seed):
    raise NotImplementedError("the benchmark feeds one fixed batch")


def cosine_loss(emb, targets, xp):
  """mean(1 - cos(emb, targets)); xp is jnp or torch (same formula in both)."""
  norm = lambda v: v / (v * v).sum(-1, keepdims=True) ** 0.5
  return 1.0 - (norm(emb) * norm(targets)).sum(-1).mean()


def sgvu_step(cfg, mode: str, seed: int = 0):
  """(train.Setup with the jitted step, initial state, flat numpy params) of sgvu's real training step."""
  c = configs.train_config()
  c.seed, c.num_steps, c.sharding.num_devices = seed, 1000, 1
  c.optim.name, c.optim.lr = "adam", FULL_LR
  c.optim.param_lrs = TRAINABLE[mode][1]
  task = StepTask(c, PromptedImageEncoder(cfg.vision, prompts="shallow", num_prompts=3), mode)
  setup = train.build(task, c)
  state = train.initial_state(task, setup, seed)
  flat = {k: np.asarray(v) for k, v in train.flatten(train.merge_params(state.params, state.frozen)).items()}
  return setup, state, flat


def model_flops(cfg, batch: int, num_prompts: int, mode: str) -> float:
  """Matmul FLOPs of one step, counted per matmul (2 * m * k * n each).

  Backward: +1x forward for the gradient of an input that needs one (not the images), +1x for the
  weight gradient only where that weight trains; attention's q.k and p.v have two activation inputs (+2x).
  LayerNorms, softmax, activations and the Adam update are not counted (element-wise).
  """
  v = cfg.vision
  b, t, d, m = batch, 1 + v.num_patches + num_prompts, v.width, v.mlp_dim
  train_w = mode == "full"
  # (forward FLOPs, input needs grad, weight trains; None = no weight)
  mms = [(2 * b * v.num_patches * 3 * v.patch_size ** 2 * d, False, train_w),
         (2 * b * d * cfg.embed_dim, True, train_w)]
  per_layer = [(2 * b * t * d * 3 * d, True, train_w), (2 * b * t * t * d, True, None),
               (2 * b * t * t * d, True, None), (2 * b * t * d * d, True, train_w),
               (2 * b * t * d * m, True, train_w), (2 * b * t * m * d, True, train_w)]
  mms += per_layer * v.layers
  total = 0.0
  for fwd, input_grad, weight_trains in mms:
    if weight_trains is None:  # activation x activation: a gradient for each operand
      total += 3 * fwd
    else:
      total += fwd * (1 + input_grad + weight_trains)
  return total


class MatmulPeak:
  """Best GFLOP/s seen so far of an n^3 float32 matmul, in JAX and in NumPy."""

  def __init__(self, n: int = 2048):
    rng = np.random.default_rng(0)
    self.a, self.b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    self.ja, self.jb = jnp.asarray(self.a), jnp.asarray(self.b)
    self.matmul = jax.jit(jnp.matmul)
    self.matmul(self.ja, self.jb).block_until_ready()
    self.gflop = 2 * n ** 3 / 1e9
    self.jax = self.numpy = 0.0

  def measure(self, reps: int = 2) -> None:
    for _ in range(reps):
      self.jax = max(self.jax, self.gflop / _timed(lambda: self.matmul(self.ja, self.jb).block_until_ready()))
      self.numpy = max(self.numpy, self.gflop / _timed(lambda: self.a @ self.b))


def _timed(fn) -> float:
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


# ---------------------------------------------------------------------------------------------------
# The PyTorch equivalent: pre-LN CLIP ViT, quick-GELU, fused q/k/v, SDPA attention, prompts before ln_pre.


class TorchBlock(torch.nn.Module):

  def __init__(self, width: int, heads: int, mlp_dim: int, eps: float):
    super().__init__()
    self.heads = heads
    self.ln_1, self.ln_2 = torch.nn.LayerNorm(width, eps=eps), torch.nn.LayerNorm(width, eps=eps)
    self.qkv, self.out = torch.nn.Linear(width, 3 * width), torch.nn.Linear(width, width)
    self.fc1, self.fc2 = torch.nn.Linear(width, mlp_dim), torch.nn.Linear(mlp_dim, width)

  def forward(self, x):
    b, t, d = x.shape
    qkv = self.qkv(self.ln_1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
    attn = torch.nn.functional.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
    x = x + self.out(attn.transpose(1, 2).reshape(b, t, d))
    h = self.fc1(self.ln_2(x))
    return x + self.fc2(h * torch.sigmoid(1.702 * h))


class TorchViT(torch.nn.Module):
  """[B, 3, H, W] -> [B, E], with `prompts` [P, D] appended after the positions."""

  def __init__(self, cfg, num_prompts: int):
    super().__init__()
    v, eps = cfg.vision, cfg.layer_norm_eps
    self.patch_embed = torch.nn.Conv2d(3, v.width, v.patch_size, stride=v.patch_size, bias=False)
    self.class_embedding = torch.nn.Parameter(torch.zeros(v.width))
    self.pos_embedding = torch.nn.Parameter(torch.zeros(v.num_patches + 1, v.width))
    self.prompts = torch.nn.Parameter(torch.zeros(num_prompts, v.width))
    self.ln_pre, self.ln_post = torch.nn.LayerNorm(v.width, eps=eps), torch.nn.LayerNorm(v.width, eps=eps)
    self.blocks = torch.nn.ModuleList(TorchBlock(v.width, v.heads, v.mlp_dim, eps) for _ in range(v.layers))
    self.proj = torch.nn.Parameter(torch.zeros(v.width, cfg.embed_dim))

  def forward(self, images):
    x = self.patch_embed(images).flatten(2).transpose(1, 2)  # [B, N, D], row-major patches
    b = x.shape[0]
    x = torch.cat([self.class_embedding.expand(b, 1, -1), x], 1) + self.pos_embedding
    x = self.ln_pre(torch.cat([x, self.prompts.expand(b, -1, -1)], 1))
    for block in self.blocks:
      x = block(x)
    return self.ln_post(x[:, 0]) @ self.proj


def torch_from_sgvu(cfg, flat: dict[str, np.ndarray]) -> TorchViT:
  """TorchViT holding sgvu's weights (flat '/'-joined paths of PromptedImageEncoder)."""
  d = cfg.vision.width
  t = lambda a: torch.from_numpy(np.array(a))  # a writable copy
  state = {"patch_embed.weight": t(flat["img/patch_embed/kernel"].transpose(3, 2, 0, 1)),
           "class_embedding": t(flat["img/class_embedding"]), "pos_embedding": t(flat["img/pos_embedding"]),
           "prompts": t(flat["sketch_prompts"]), "proj": t(flat["img/proj"])}
  for ln in ("ln_pre", "ln_post"):
    state[f"{ln}.weight"], state[f"{ln}.bias"] = t(flat[f"img/{ln}/scale"]), t(flat[f"img/{ln}/bias"])
  for i in range(cfg.vision.layers):
    src, dst = f"img/block_{i}", f"blocks.{i}"
    for ln in ("ln_1", "ln_2"):
      state[f"{dst}.{ln}.weight"], state[f"{dst}.{ln}.bias"] = (t(flat[f"{src}/{ln}/scale"]),
                                                                t(flat[f"{src}/{ln}/bias"]))
    state[f"{dst}.qkv.weight"] = t(flat[f"{src}/attn/qkv_kernel"].reshape(d, 3 * d).T)
    state[f"{dst}.qkv.bias"] = t(flat[f"{src}/attn/qkv_bias"].reshape(3 * d))
    state[f"{dst}.out.weight"] = t(flat[f"{src}/attn/out_kernel"].reshape(d, d).T)
    state[f"{dst}.out.bias"] = t(flat[f"{src}/attn/out_bias"])
    for fc in ("fc1", "fc2"):
      state[f"{dst}.{fc}.weight"] = t(flat[f"{src}/mlp/{fc}/kernel"].T)
      state[f"{dst}.{fc}.bias"] = t(flat[f"{src}/mlp/{fc}/bias"])
  model = TorchViT(cfg, num_prompts=flat["sketch_prompts"].shape[0])
  model.load_state_dict(state, strict=True)
  return model


def torch_param_groups(model: TorchViT, mode: str) -> list[dict]:
  """Adam groups mirroring TRAINABLE[mode]; every other weight gets requires_grad=False."""
  if mode == "full":
    return [{"params": list(model.parameters()), "lr": FULL_LR}]
  prompts, norms = [model.prompts], []
  for name, module in model.named_modules():
    if isinstance(module, torch.nn.LayerNorm):
      norms += list(module.parameters())
  trainable = {id(p) for p in prompts + norms}
  for param in model.parameters():
    param.requires_grad_(id(param) in trainable)
  return [{"params": prompts, "lr": PROMPT_LR}, {"params": norms, "lr": LAYERNORM_LR}]


class Runner:
  """Both libraries' steps for one mode, from the same weights and batch."""

  def __init__(self, cfg, mode: str, batch: int, seed: int = 0):
    self.mode = mode
    rng = np.random.default_rng(seed)
    size = cfg.vision.image_size
    images = rng.standard_normal((batch, size, size, 3), dtype=np.float32)
    targets = rng.standard_normal((batch, cfg.embed_dim), dtype=np.float32)
    self.setup, self.state, flat = sgvu_step(cfg, mode, seed)
    self.batch = {"images": jnp.asarray(images), "targets": jnp.asarray(targets)}
    self.num_trainable = self.setup.num_trainable
    self.torch_model = torch_from_sgvu(cfg, flat)
    groups = torch_param_groups(self.torch_model, mode)
    self.torch_trainable = sum(p.numel() for g in groups for p in g["params"])
    self.opt = torch.optim.Adam(groups)
    self.t_images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()  # NCHW, its native layout
    self.t_targets = torch.from_numpy(targets)

  def sgvu(self) -> float:
    self.state, metrics = self.setup.step(self.state, self.batch)
    jax.block_until_ready(self.state)  # the whole update, not just the loss
    return float(metrics["loss"])

  def torch(self) -> float:
    self.opt.zero_grad(set_to_none=True)
    loss = cosine_loss(self.torch_model(self.t_images), self.t_targets, torch)
    loss.backward()
    self.opt.step()
    return loss.item()


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--steps", type=int, default=5, help="timed steps per library and mode")
  p.add_argument("--warmup", type=int, default=0,
                 help="extra untimed steps (the two parity steps already run compiled and warm)")
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {MODES}")
  p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
  p.add_argument("--cache_dir", default=os.path.expanduser("~/.cache/sgvu/jax_benchmarks"),
                 help="persistent XLA compilation cache ('' = off)")
  p.add_argument("--xla_flags", default="", help="appended to XLA_FLAGS before JAX starts")
  args = p.parse_args(argv)
  modes = [m for m in args.modes.split(",") if m]
  bad = [m for m in modes if m not in MODES]
  if bad or not modes:
    raise SystemExit(f"--modes={args.modes!r}: unknown {bad}; valid: {list(MODES)}")
  if args.steps < 1 or args.warmup < 0 or args.batch < 1:
    raise SystemExit("--steps and --batch must be >= 1, --warmup >= 0")
  if args.cache_dir:
    jax.config.update("jax_compilation_cache_dir", args.cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
  torch.set_num_threads(args.threads)
  cfg = get_preset("B/32")
  print(f"jax {jax.__version__} ({jax.default_backend()}), torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), {os.cpu_count()} CPUs, "
        f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
  print("load average at start: %.2f %.2f %.2f" % os.getloadavg())

  runners, times = {}, {}
  for mode in modes:
    start = time.perf_counter()
    r = runners[mode] = Runner(cfg, mode, args.batch)
    if r.num_trainable != r.torch_trainable:
      raise SystemExit(f"{mode}: sgvu trains {r.num_trainable} parameters, torch {r.torch_trainable}")
    # Parity: same losses on the first two steps (the second one sees the Adam update).
    pairs = [(r.sgvu(), r.torch()) for _ in range(2)]
    rel = max(abs(a - b) / max(abs(b), 1e-6) for a, b in pairs)
    print(f"{mode}: {r.num_trainable:,} trainable parameters; losses sgvu/torch "
          + ", ".join(f"{a:.6f}/{b:.6f}" for a, b in pairs)
          + f" (max rel. diff {rel:.1e}); setup+compile {time.perf_counter() - start:.0f} s", flush=True)
    if rel > PARITY_RTOL:
      raise SystemExit(f"{mode}: sgvu and torch losses differ by {rel:.1e} > {PARITY_RTOL}: "
                       "the two implementations are not equivalent")
    for _ in range(args.warmup):
      r.sgvu(), r.torch()
    times[mode] = {"sgvu": [], "torch": []}

  peak = MatmulPeak()
  for _ in range(args.steps):  # A B A B ...: every measurement sees the same load
    peak.measure()
    for mode in modes:
      times[mode]["sgvu"].append(_timed(runners[mode].sgvu))
      times[mode]["torch"].append(_timed(runners[mode].torch))

  print(f"\nmatmul peak (2048^3 float32, best of {2 * args.steps}): JAX {peak.jax:.1f} GFLOP/s, "
        f"NumPy {peak.numpy:.1f} GFLOP/s")
  print("load average at end: %.2f %.2f %.2f" % os.getloadavg())
  print(f"\nViT-B/32 image tower, batch {args.batch}, float32, forward + backward + Adam update; "
        f"{args.steps} interleaved steps each: median (best) seconds; MFU of the medians against "
        f"the JAX matmul peak")
  print("| mode | trainable params | GFLOP/step | sgvu s | torch s | sgvu/torch | sgvu MFU | torch MFU |")
  print("|---|---|---|---|---|---|---|---|")
  met = True
  for mode in modes:
    gflop = model_flops(cfg, args.batch, 3, mode) / 1e9
    (s, s_best), (t, t_best) = ((float(np.median(times[mode][k])), min(times[mode][k]))
                                for k in ("sgvu", "torch"))
    mfu_s, mfu_t = gflop / s / peak.jax, gflop / t / peak.jax
    met &= s / t <= TARGET_RATIO and mfu_s >= TARGET_MFU
    print(f"| {mode} | {runners[mode].num_trainable:,} | {gflop:.1f} | {s:.2f} ({s_best:.2f}) "
          f"| {t:.2f} ({t_best:.2f}) | {s / t:.2f} | {mfu_s:.0%} | {mfu_t:.0%} |")
  print(f"\ntargets (sgvu/torch <= {TARGET_RATIO:.1f} and sgvu MFU >= {TARGET_MFU:.0%} in every mode): "
        f"{'MET' if met else 'NOT MET'} in this run")
  return 0


if __name__ == "__main__":
  sys.exit(main())
