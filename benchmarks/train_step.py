"""One training step of a CLIP ViT image tower: sgvu (JAX) vs an equivalent PyTorch, same run.

  PYTHONPATH=. .venv/bin/python benchmarks/train_step.py                 # CPU: both modes, 5 timed steps
  PYTHONPATH=. .venv/bin/python benchmarks/train_step.py --steps=9 --modes=full
  PYTHONPATH=. .venv/bin/python benchmarks/train_step.py --xla_flags=--xla_cpu_use_xnnpack=true
  python3 benchmarks/train_step.py --device=gpu                          # GPU protocol (auto-detected)
  PYTHONPATH=. .venv/bin/python benchmarks/train_step.py --quick         # seconds-long smoke run (tiny model)
  PYTHONPATH=. .venv/bin/python benchmarks/train_step.py --device=gpu --quick   # the GPU protocol's code on CPU

Step = forward + backward + Adam update of `PromptedImageEncoder(prompts='shallow')`, 3 prompts, in two modes:
- prompt: backbone frozen; the sketch prompts (lr 1e-4) and every LayerNorm (lr 1e-6) train (seed 004).
- full:   every parameter trains (lr 1e-5).
sgvu runs its real training step (`sgvu.train.build`: split trainable/frozen params, grads only
w.r.t. the trainable ones, optax Adam update, its non-finite-loss guard, jit with donated state).
PyTorch runs the same architecture with `requires_grad=False` on frozen weights and torch.optim.Adam.
Both start from the same weights; their losses over the first two steps (which also warm both up) are
compared before timing. Compiled XLA programs are cached in --cache_dir.

--device=cpu (the default without a GPU): ViT-B/32, batch 8, float32, torch eager with 2 threads.
Timing interleaves (matmul peak, sgvu, torch) per mode and round so that every side sees the same
machine load; medians are printed. MFU = analytic matmul FLOPs of the step / median time / peak, the
peak being the best 2048^3 float32 matmul in JAX measured in the same rounds.

--device=gpu (the default when torch sees a CUDA GPU): ViT-B/16 at 224, batch 256, bfloat16 compute
(params and Adam moments float32 on both sides). Sides: sgvu with attention='xla' and with
attention='cudnn' (what 'auto' picks there), torch eager under autocast(bfloat16), and the same model
under torch.compile; torch's Adam is fused. Each side runs --steps back-to-back steps per round with one
device sync at the end (no per-step host round trip), rounds interleave the sides; the printed time is
the mean over all timed steps. MFU is against the best bf16 8192^3 matmul of the same run, JAX's or
torch's, whichever is faster.
"""

from __future__ import annotations

import argparse
import copy
import gc
import os
import re
import sys
import time

# XLA reads its flags and memory settings when the backend starts: set them before jax is imported.
_pre = argparse.ArgumentParser(add_help=False)
_pre.add_argument("--xla_flags", default="")
_known, _ = _pre.parse_known_args()
if _known.xla_flags:
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _known.xla_flags).strip()
# On a GPU, JAX and torch share the card: JAX must not take 75% of it up front (ignored on CPU).
os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.45")

import torch  # pylint: disable=g-import-not-at-top,wrong-import-position  # before jax: harmless, and tells us about CUDA
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

import gpu_profile  # pylint: disable=wrong-import-position  # benchmarks/ is sys.path[0]
from experiments import blocks  # pylint: disable=wrong-import-position
from sgvu import train  # pylint: disable=wrong-import-position
from sgvu.models import layers  # pylint: disable=wrong-import-position
from sgvu.models.clip import get_preset  # pylint: disable=wrong-import-position
from sgvu.models.prompted import PromptedImageEncoder  # pylint: disable=wrong-import-position
from sgvu.tasks.base import Task  # pylint: disable=wrong-import-position

MODES = ("prompt", "full")
PROMPT_LR, LAYERNORM_LR, FULL_LR = 1e-4, 1e-6, 1e-5  # seed 004's prompt and LayerNorm rates
LAYERNORM_PATHS = r"img/(.*/)?ln_(pre|post|1|2)/.*"  # the LayerNorms seed 004 tunes (as sgvu.tasks.zs_sbir)
# (regex of trainable paths, ((regex, lr), ...)) per mode. photo_prompts exist in the model but the
# sketch branch never reads them: frozen here so the trainable sets of both libraries are identical.
TRAINABLE = {
    "prompt": (f"sketch_prompts|{LAYERNORM_PATHS}", (("sketch_prompts", PROMPT_LR), (LAYERNORM_PATHS, LAYERNORM_LR))),
    "full": (r"(?!photo_prompts).*", ()),
}
NUM_PROMPTS = 3


class Protocol:
  """What a device's benchmark runs: model, batch, dtype, sides, timing and targets."""

  def __init__(self, device: str, quick: bool):
    self.device, self.quick = device, quick
    gpu = device == "gpu"
    self.preset = "tiny" if quick else ("B/16" if gpu else "B/32")
    self.batch = (4 if quick else 256) if gpu else (2 if quick else 8)
    self.dtype = "bfloat16" if gpu else "float32"
    self.steps = 2 if quick else (10 if gpu else 5)
    self.rounds = 2 if gpu else None  # cpu: every step is its own interleaved round
    self.warmup = (1 if quick else 3) if gpu else 0
    self.parity_rtol = 2e-2 if gpu else 1e-4  # bfloat16 vs float32
    self.peak_n, self.peak_dtype = ((512 if quick else 8192), "bfloat16") if gpu else ((256 if quick else 2048), "float32")
    self.target_ratio, self.target_mfu = (1.0, 0.55) if gpu else (1.0, 0.5)
    self.torch_device = "cuda" if gpu and torch.cuda.is_available() else "cpu"
    if gpu:
      tokens = (197 if not quick else 17) + NUM_PROMPTS  # ViT-B/16 at 224 px: 196 patches + class token
      attentions = ["xla", "cudnn"] if layers.cudnn_attention_problem(jnp.bfloat16, 64, (tokens,)) is None else ["xla"]
      self.sides = [f"sgvu-{a}" for a in attentions] + ["torch-eager", "torch-compile"]
    else:
      self.sides = ["sgvu", "torch"]


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
    return cosine_loss(emb.astype(jnp.float32), batch["targets"], jnp), {}

  def train_iterator(self, batch_size, seed):
    raise NotImplementedError("the benchmark feeds one fixed batch")


def cosine_loss(emb, targets, xp):
  """mean(1 - cos(emb, targets)); xp is jnp or torch (same formula in both)."""
  norm = lambda v: v / (v * v).sum(-1, keepdims=True) ** 0.5
  return 1.0 - (norm(emb) * norm(targets)).sum(-1).mean()


def sgvu_step(cfg, mode: str, seed: int = 0):
  """(train.Setup with the jitted step, initial state, flat numpy params) of sgvu's real training step."""
  c = blocks.train_config()
  c.seed, c.num_steps, c.sharding.num_devices = seed, 1000, 1
  c.optim.name, c.optim.lr = "adam", FULL_LR
  c.optim.param_lrs = TRAINABLE[mode][1]
  task = StepTask(c, PromptedImageEncoder(cfg.vision, prompts="shallow", num_prompts=NUM_PROMPTS), mode)
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


def _timed(fn) -> float:
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


class MatmulPeak:
  """Best GFLOP/s seen so far of an n^3 float32 matmul, in JAX and in NumPy (the CPU protocol)."""

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

  @property
  def best(self) -> float:
    return self.jax  # the CPU protocol's reference: JAX's own matmul


class AcceleratorPeak:
  """Best GFLOP/s of a bf16 n^3 matmul (random data), in JAX and in torch; each measure() times `reps` back-to-back."""

  def __init__(self, n: int, torch_device: str):
    self.n, self.gflop, self.torch_device = n, 2 * n ** 3 / 1e9, torch_device
    ka, kb = jax.random.split(jax.random.key(0))
    self.ja = jax.random.normal(ka, (n, n), jnp.bfloat16)
    self.jb = jax.random.normal(kb, (n, n), jnp.bfloat16)
    self.matmul = jax.jit(jnp.matmul)
    self.matmul(self.ja, self.jb).block_until_ready()
    gen = torch.Generator(device=torch_device).manual_seed(0)
    self.ta, self.tb = (torch.randn(n, n, device=torch_device, dtype=torch.bfloat16, generator=gen) for _ in range(2))
    self.ta @ self.tb
    _sync(torch_device)
    self.jax = self.torch = 0.0

  def measure(self, reps: int = 10) -> None:
    def jax_reps():
      out = None
      for _ in range(reps):
        out = self.matmul(self.ja, self.jb)
      out.block_until_ready()

    def torch_reps():
      for _ in range(reps):
        self.ta @ self.tb
      _sync(self.torch_device)

    self.jax = max(self.jax, reps * self.gflop / _timed(jax_reps))
    self.torch = max(self.torch, reps * self.gflop / _timed(torch_reps))

  @property
  def best(self) -> float:
    return max(self.jax, self.torch)


def _sync(torch_device: str) -> None:
  if torch_device == "cuda":
    torch.cuda.synchronize()


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
  for _, module in model.named_modules():
    if isinstance(module, torch.nn.LayerNorm):
      norms += list(module.parameters())
  trainable = {id(p) for p in prompts + norms}
  for param in model.parameters():
    param.requires_grad_(id(param) in trainable)
  return [{"params": prompts, "lr": PROMPT_LR}, {"params": norms, "lr": LAYERNORM_LR}]


# ---------------------------------------------------------------------------------------------------
# Sides: step() queues one training step (no host round trip), sync() waits for the device, loss() runs a
# step and returns its loss (parity checks only).


class SgvuSide:

  def __init__(self, setup, state, images, targets):
    self.setup, self.state = setup, state
    self.batch = {"images": jnp.asarray(images), "targets": jnp.asarray(targets)}
    self.num_trainable = setup.num_trainable
    self.metrics = None

  def step(self) -> None:
    self.state, self.metrics = self.setup.step(self.state, self.batch)

  def sync(self) -> None:
    jax.block_until_ready(self.state)  # the whole update, not just the loss

  def loss(self) -> float:
    self.step()
    self.sync()
    return float(self.metrics["loss"])

  def state_dtypes(self) -> set[str]:
    """dtypes of every float leaf of params, frozen params and optimizer state."""
    leaves = jax.tree.leaves((self.state.params, self.state.frozen, self.state.opt_state))
    return {str(x.dtype) for x in leaves if jnp.issubdtype(x.dtype, jnp.floating)}


class TorchSide:

  def __init__(self, model: TorchViT, mode: str, images, targets, device: str, autocast: bool, compiled: bool):
    self.device, self.autocast = device, autocast
    self.model = model.to(device)
    groups = torch_param_groups(self.model, mode)
    self.num_trainable = sum(p.numel() for g in groups for p in g["params"])
    self.opt = torch.optim.Adam(groups, fused=device == "cuda")
    self.forward = torch.compile(self.model) if compiled else self.model
    self.images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().to(device)  # NCHW, its native layout
    self.targets = torch.from_numpy(targets).to(device)
    self.last = None

  def step(self) -> None:
    self.opt.zero_grad(set_to_none=True)
    with torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.autocast):
      emb = self.forward(self.images)
    self.last = cosine_loss(emb.float(), self.targets, torch)
    self.last.backward()
    self.opt.step()

  def sync(self) -> None:
    _sync(self.device)

  def loss(self) -> float:
    self.step()
    return self.last.item()


def build_sides(proto: Protocol, cfg, mode: str, seed: int = 0) -> dict:
  rng = np.random.default_rng(seed)
  size = cfg.vision.image_size
  images = rng.standard_normal((proto.batch, size, size, 3), dtype=np.float32)
  targets = rng.standard_normal((proto.batch, cfg.embed_dim), dtype=np.float32)
  sides, flat = {}, None
  for name in proto.sides:
    if name.startswith("sgvu"):
      attention = name.split("-", 1)[1] if "-" in name else cfg.attention
      setup, state, flat = sgvu_step(cfg.replace(attention=attention), mode, seed)
      sides[name] = SgvuSide(setup, state, images, targets)
  if flat is None:  # no sgvu side: its initial weights all the same
    flat = sgvu_step(cfg, mode, seed)[2]
  base = torch_from_sgvu(cfg, flat)
  for name in proto.sides:
    if name.startswith("torch"):
      sides[name] = TorchSide(copy.deepcopy(base), mode, images, targets, proto.torch_device,
                              autocast=proto.dtype == "bfloat16", compiled=name == "torch-compile")
  return sides


# ---------------------------------------------------------------------------------------------------


def check_parity(proto: Protocol, mode: str, sides: dict, start: float) -> None:
  """Same trainable-parameter counts; same losses over the first two steps (the second sees the Adam update)."""
  counts = {name: s.num_trainable for name, s in sides.items()}
  if len(set(counts.values())) != 1:
    raise SystemExit(f"{mode}: the sides train different numbers of parameters: {counts}")
  losses = {name: [] for name in sides}
  for _ in range(2):
    for name, side in sides.items():
      losses[name].append(side.loss())
  ref = losses[proto.sides[0]]
  rel = max(abs(a - b) / max(abs(b), 1e-6) for name in sides for a, b in zip(losses[name], ref))
  print(f"{mode}: {next(iter(counts.values())):,} trainable parameters; losses of the first two steps: "
        + "; ".join(f"{name} " + ", ".join(f"{x:.6f}" for x in v) for name, v in losses.items())
        + f" (max rel. diff {rel:.1e}); setup+compile {time.perf_counter() - start:.0f} s", flush=True)
  if rel > proto.parity_rtol:
    raise SystemExit(f"{mode}: losses differ by {rel:.1e} > {proto.parity_rtol}: "
                     "the implementations are not equivalent")


def run_cpu(proto: Protocol, cfg, modes, args) -> bool:
  sides_by_mode, times = {}, {}
  for mode in modes:
    start = time.perf_counter()
    sides = sides_by_mode[mode] = build_sides(proto, cfg, mode)
    check_parity(proto, mode, sides, start)
    for _ in range(proto.warmup):
      for side in sides.values():
        side.step()
        side.sync()
    times[mode] = {name: [] for name in sides}

  def blocking(side):
    return lambda: (side.step(), side.sync())

  peak = MatmulPeak(proto.peak_n)
  for _ in range(proto.steps):  # A B A B ...: every measurement sees the same load
    peak.measure()
    for mode in modes:
      for name, side in sides_by_mode[mode].items():
        times[mode][name].append(_timed(blocking(side)))

  print(f"\nmatmul peak ({proto.peak_n}^3 float32, best of {2 * proto.steps}): JAX {peak.jax:.1f} GFLOP/s, "
        f"NumPy {peak.numpy:.1f} GFLOP/s")
  print("load average at end: %.2f %.2f %.2f" % os.getloadavg())
  print(f"\n{args.model_name} image tower, batch {proto.batch}, float32, forward + backward + Adam update; "
        f"{proto.steps} interleaved steps each: median (best) seconds; MFU of the medians against "
        f"the JAX matmul peak")
  print("| mode | trainable params | GFLOP/step | sgvu s | torch s | sgvu/torch | sgvu MFU | torch MFU |")
  print("|---|---|---|---|---|---|---|---|")
  met = True
  for mode in modes:
    gflop = model_flops(cfg, proto.batch, NUM_PROMPTS, mode) / 1e9
    (s, s_best), (t, t_best) = ((float(np.median(times[mode][k])), min(times[mode][k]))
                                for k in ("sgvu", "torch"))
    mfu_s, mfu_t = gflop / s / peak.best, gflop / t / peak.best
    met &= s / t <= proto.target_ratio and mfu_s >= proto.target_mfu
    print(f"| {mode} | {sides_by_mode[mode]['sgvu'].num_trainable:,} | {gflop:.1f} | {s:.2f} ({s_best:.2f}) "
          f"| {t:.2f} ({t_best:.2f}) | {s / t:.2f} | {mfu_s:.0%} | {mfu_t:.0%} |")
  print(f"\ntargets (sgvu/torch <= {proto.target_ratio:.1f} and sgvu MFU >= {proto.target_mfu:.0%} in every mode): "
        f"{'MET' if met else 'NOT MET'} in this run")
  return met


def run_accelerator(proto: Protocol, cfg, modes, args) -> bool:
  """The GPU protocol: one mode at a time (its sides alive together), rounds of back-to-back steps."""
  peak = AcceleratorPeak(proto.peak_n, proto.torch_device)
  rows = []
  for mode in modes:
    start = time.perf_counter()
    sides = build_sides(proto, cfg, mode)
    for name, side in sides.items():
      if isinstance(side, SgvuSide) and side.state_dtypes() != {"float32"}:
        raise SystemExit(f"{mode}: {name} keeps params/optimizer state in {side.state_dtypes()}, not float32")
    check_parity(proto, mode, sides, start)
    for _ in range(proto.warmup):
      for side in sides.values():
        side.step()
      for side in sides.values():
        side.sync()
    totals = {name: 0.0 for name in sides}
    for _ in range(proto.rounds):
      peak.measure()
      for name, side in sides.items():
        side.sync()
        t0 = time.perf_counter()
        for _ in range(proto.steps):
          side.step()
        side.sync()
        totals[name] += time.perf_counter() - t0
    n = proto.rounds * proto.steps
    ms = {name: 1e3 * total / n for name, total in totals.items()}
    rows.append((mode, next(iter(sides.values())).num_trainable, model_flops(cfg, proto.batch, NUM_PROMPTS, mode),
                 ms))
    print(f"{mode}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items())
          + f" (mean of {n}); {time.perf_counter() - start:.0f} s for this mode", flush=True)
    if args.profile:  # torch's profiler keeps CUPTI (one subscriber): it profiles only in the last mode
      profile_sides(sides, mode, args.profile, with_torch=mode == modes[-1])
    del sides
    gc.collect()
    if proto.torch_device == "cuda":
      torch.cuda.empty_cache()

  best = peak.best / 1e3  # TFLOP/s
  print(f"\nmatmul peak ({proto.peak_n}^3 bfloat16, random data, best of {proto.rounds} x 10): "
        f"JAX {peak.jax / 1e3:.0f} TFLOP/s, torch {peak.torch / 1e3:.0f} TFLOP/s")
  sgvu_names = [s for s in proto.sides if s.startswith("sgvu")]
  torch_names = [s for s in proto.sides if s.startswith("torch")]
  ref = "torch-compile" if "torch-compile" in proto.sides else (torch_names[-1] if torch_names else None)
  print(f"\n{args.model_name} image tower, {cfg.vision.image_size} px, batch {proto.batch}, bfloat16 compute "
        f"(float32 params and Adam moments), forward + backward + Adam update; mean step time over "
        f"{proto.rounds} x {proto.steps} steps; MFU against the best matmul peak ({best:.0f} TFLOP/s)")
  head = ["mode", "trainable params", "TFLOP/step"] + [f"{s} ms" for s in proto.sides]
  if ref and sgvu_names:
    head.append(f"best sgvu / {ref}")
  head += [f"{s} MFU" for s in proto.sides]
  print("| " + " | ".join(head) + " |")
  print("|" + "---|" * len(head))
  met = bool(sgvu_names and ref)
  for mode, trainable, flops, ms in rows:
    cells = [mode, f"{trainable:,}", f"{flops / 1e12:.2f}"] + [f"{ms[s]:.1f}" for s in proto.sides]
    if ref and sgvu_names:
      fastest = min(ms[s] for s in sgvu_names)
      ratio = fastest / ms[ref]
      cells.append(f"{ratio:.2f}")
      met &= ratio <= proto.target_ratio and flops / (fastest / 1e3) / 1e12 / best >= proto.target_mfu
    cells += [f"{flops / (ms[s] / 1e3) / 1e12 / best:.0%}" for s in proto.sides]
    print("| " + " | ".join(cells) + " |")
  print(f"\ntargets (fastest sgvu <= {ref} and its MFU >= {proto.target_mfu:.0%} in every mode): "
        f"{'MET' if met else 'NOT MET'} in this run")
  return met


def profile_sides(sides: dict, mode: str, out_dir: str, with_torch: bool, steps: int = 3) -> None:
  """Kernel time by category for every sgvu side (JAX profiler) and torch-compile (torch profiler)."""
  for name, side in sides.items():
    def run(side=side):
      for _ in range(steps):
        side.step()
      side.sync()
    try:
      if isinstance(side, SgvuSide):
        text = gpu_profile.jax_kernel_summary(run, steps, os.path.join(out_dir, f"{mode}-{name}"), f"{mode} {name}")
      elif name == "torch-compile" and with_torch:
        text = gpu_profile.torch_kernel_table(run, steps, f"{mode} {name}")
      else:
        continue
    except Exception as e:  # pylint: disable=broad-except  # a profile is extra: never lose the table for it
      text = f"== {mode} {name}: profile failed: {e!r}"
    print(text, flush=True)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                 help="benchmark protocol; auto = gpu when torch sees a CUDA GPU")
  p.add_argument("--quick", action="store_true",
                 help="smoke run: tiny model, tiny batch, 2 steps (with --device=gpu on a CPU-only machine it "
                      "runs the GPU protocol's code on the CPU)")
  p.add_argument("--steps", type=int, default=None, help="timed steps per side and mode (per round on GPU)")
  p.add_argument("--rounds", type=int, default=None, help="GPU: interleaved rounds of --steps steps")
  p.add_argument("--warmup", type=int, default=None,
                 help="extra untimed steps (the two parity steps already run compiled and warm)")
  p.add_argument("--batch", type=int, default=None)
  p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {MODES}")
  p.add_argument("--sides", default="",
                 help="GPU: comma-separated subset of sgvu-xla,sgvu-cudnn,sgvu-auto,torch-eager,torch-compile")
  p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (CPU)")
  p.add_argument("--cache_dir", default=os.path.expanduser("~/.cache/sgvu/jax_benchmarks"),
                 help="persistent XLA compilation cache ('' = off)")
  p.add_argument("--xla_flags", default="", help="appended to XLA_FLAGS before JAX starts")
  p.add_argument("--profile", default="", help="GPU: also profile each mode's sgvu and torch-compile steps, "
                 "traces under this folder, kernel time by category printed")
  args = p.parse_args(argv)
  device = args.device
  if device == "auto":
    device = "gpu" if torch.cuda.is_available() else "cpu"
  if device == "gpu" and not args.quick and (jax.default_backend() != "gpu" or not torch.cuda.is_available()):
    raise SystemExit(f"--device=gpu needs a GPU for both libraries: JAX's backend is {jax.default_backend()!r}, "
                     f"torch.cuda.is_available() = {torch.cuda.is_available()} (--quick runs its code on CPU)")
  proto = Protocol(device, args.quick)
  for key in ("steps", "rounds", "warmup", "batch"):
    if getattr(args, key) is not None:
      setattr(proto, key, getattr(args, key))
  if args.sides:
    valid = {"sgvu-xla", "sgvu-cudnn", "sgvu-auto", "torch-eager", "torch-compile"} if device == "gpu" else {
        "sgvu", "torch"}
    proto.sides = [s for s in args.sides.split(",") if s]
    bad = [s for s in proto.sides if s not in valid]
    if bad or (device == "cpu" and proto.sides != ["sgvu", "torch"]):
      raise SystemExit(f"--sides={args.sides!r}: valid on {device}: {sorted(valid)} (cpu: both)")
  modes = [m for m in args.modes.split(",") if m]
  bad = [m for m in modes if m not in MODES]
  if bad or not modes:
    raise SystemExit(f"--modes={args.modes!r}: unknown {bad}; valid: {list(MODES)}")
  if proto.steps < 1 or proto.warmup < 0 or proto.batch < 1 or (proto.rounds or 1) < 1:
    raise SystemExit("--steps, --rounds and --batch must be >= 1, --warmup >= 0")
  if args.cache_dir:
    jax.config.update("jax_compilation_cache_dir", args.cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
  torch.set_num_threads(args.threads)
  cfg = get_preset(proto.preset, dtype=proto.dtype)
  args.model_name = "tiny ViT" if args.quick else f"ViT-{proto.preset}"
  where = torch.cuda.get_device_name() if proto.torch_device == "cuda" else f"{os.cpu_count()} CPUs"
  print(f"device: {where}; jax {jax.__version__} ({jax.default_backend()}: {jax.devices()[0].device_kind}), "
        f"torch {torch.__version__} ({proto.torch_device}, {torch.get_num_threads()} threads); protocol {device}"
        f"{' (quick)' if args.quick else ''}; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
  if device == "gpu":
    print(f"attention='auto' resolves to {layers.attention_implementation('auto', jnp.bfloat16, 64, (200,))!r} "
          f"here (bfloat16, head size 64, 200 tokens); sides: {', '.join(proto.sides)}")
  print("load average at start: %.2f %.2f %.2f" % os.getloadavg(), flush=True)
  met = (run_accelerator if device == "gpu" else run_cpu)(proto, cfg, modes, args)
  del met
  return 0


if __name__ == "__main__":
  sys.exit(main())
