"""Transformer building blocks shared by the CLIP image and text towers.

Every parameter carries logical axis names (`nn.with_logical_partitioning`) and
the main activations carry logical constraints, so `sgvu.sharding` can map them
onto a ('data', 'fsdp', 'model') mesh. Outside a mesh / rules context the
constraints are no-ops.

Parameter logical names: 'embed' (model width), 'mlp' (MLP hidden), 'heads',
'kv' (head_dim), 'vocab', 'joint' (CLIP projection output).
Activation logical names: 'batch', 'length', 'embed', 'mlp', 'heads'.

Attention runs through `jax.nn.dot_product_attention` with the implementation
the tower config's `attention` setting picks (`attention_implementation`):
'auto' takes cuDNN flash attention on a CUDA GPU when the compute dtype, head
size and sequence length allow it, and XLA everywhere else; 'xla' always XLA; 'cudnn' always
cuDNN, and a ValueError naming the reason where it cannot run (a CPU or TPU
backend, float32 compute, an unsupported head size, an odd length). 'cudnn' is a request to be
sure of the kernel (benchmarks, parity checks); 'auto' is the portable value.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array
Dtype = Any

# Activations by the names transformers' configs use (`hidden_act`).
ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "quick_gelu": lambda x: x * jax.nn.sigmoid(1.702 * x),  # OpenAI CLIP
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),  # some LAION CLIPs
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
}


def get_activation(name: str) -> Callable[[Array], Array]:
  if name not in ACTIVATIONS:
    raise ValueError(
        f"Unknown activation {name!r}; valid: {sorted(ACTIVATIONS)}")
  return ACTIVATIONS[name]


# Values of the towers' `attention` setting.
ATTENTIONS = ("auto", "xla", "cudnn")
_CUDNN_DTYPES = (jnp.bfloat16, jnp.float16)


@functools.lru_cache(maxsize=None)
def _cuda_capability() -> tuple[int, int] | None:
  """(major, minor) compute capability of the default backend's GPU; None off CUDA."""
  if jax.default_backend() != "gpu":
    return None
  device = jax.devices()[0]
  if "cuda" not in str(getattr(device.client, "platform_version", "")).lower():
    return None  # ROCm: no cuDNN
  try:
    major, minor = str(device.compute_capability).split(".")[:2]
    return int(major), int(minor)
  except (AttributeError, ValueError):
    return None


def cudnn_attention_problem(dtype: Dtype, head_dim: int, lengths: tuple[int, ...] = ()) -> str | None:
  """Why cuDNN flash attention cannot run here with this compute dtype, head size and these sequence
  lengths (query, key; None: it can).

  Mirrors the checks of jax's cuDNN path (jax._src.cudnn.fused_attention_stablehlo):
  a CUDA GPU of compute capability >= 8.0, bfloat16/float16 inputs, a head size
  that is a multiple of 8 and at most 128 (256 from Hopper, 9.0, on), and even
  sequence lengths: on jax 0.11.2 (H200) training a 197-token block raised
  "Unsupported sequence length Q 197, KV 197" (docs/performance.md).
  """
  capability = _cuda_capability()
  if capability is None:
    return f"the default JAX backend is {jax.default_backend()!r}, not a CUDA GPU"
  if capability < (8, 0):
    return f"GPU compute capability {capability[0]}.{capability[1]} < 8.0"
  if jnp.dtype(dtype) not in [jnp.dtype(d) for d in _CUDNN_DTYPES]:
    return f"compute dtype {jnp.dtype(dtype).name} (cuDNN flash attention takes bfloat16 or float16)"
  limit = 256 if capability >= (9, 0) else 128
  if head_dim % 8 or head_dim > limit:
    return f"head size {head_dim} (must be a multiple of 8 and <= {limit})"
  odd = [n for n in lengths if n % 2]
  if odd:
    return f"sequence length {odd[0]} is odd (cuDNN flash attention trains only even lengths)"
  return None


def attention_implementation(setting: str, dtype: Dtype, head_dim: int, lengths: tuple[int, ...] = ()) -> str:
  """'xla' or 'cudnn': the `implementation` of jax.nn.dot_product_attention for a tower's setting
  (`lengths`: the query and key sequence lengths)."""
  if setting not in ATTENTIONS:
    raise ValueError(f"attention {setting!r}; valid: {list(ATTENTIONS)}")
  if setting == "xla":
    return "xla"
  problem = cudnn_attention_problem(dtype, head_dim, lengths)
  if setting == "cudnn" and problem:
    raise ValueError(f"attention='cudnn' cannot run here: {problem}. Use attention='auto' (cuDNN where it "
                     "can run, XLA elsewhere) or 'xla'")
  return "xla" if problem else "cudnn"


def param_with_axes(init: Callable[..., Array], names: tuple[str | None, ...]):
  """Shorthand for an initializer that boxes its value with logical names."""
  return nn.with_logical_partitioning(init, names)


def constrain(x: Array, names: tuple[str | None, ...]) -> Array:
  return nn.with_logical_constraint(x, names)


def layer_norm(eps: float, dtype: Dtype, name: str) -> nn.LayerNorm:
  # Exact two-pass variance: the fast E[x^2]-E[x]^2 form drifts from PyTorch.
  return nn.LayerNorm(
      epsilon=eps, dtype=dtype, use_fast_variance=False, name=name,
      scale_init=param_with_axes(nn.initializers.ones, ("embed",)),
      bias_init=param_with_axes(nn.initializers.zeros, ("embed",)))


class MultiHeadAttention(nn.Module):
  """Self-attention with one fused q/k/v projection.

  Params: `qkv_kernel` [D, 3, H, K], `qkv_bias` [3, H, K], `out_kernel`
  [H, K, D], `out_bias` [D]; a transformers `{q,k,v,out}_proj` maps onto them
  by transpose + reshape (see sgvu/clip_io.py).
  `attention` is one of ATTENTIONS (see `attention_implementation`).
  """
  num_heads: int
  causal: bool = False
  dtype: Dtype = jnp.float32
  attention: str = "auto"

  @nn.compact
  def __call__(self, x: Array) -> Array:
    width = x.shape[-1]
    if width % self.num_heads:
      raise ValueError(
          f"width {width} is not divisible by num_heads {self.num_heads}")
    head_dim = width // self.num_heads
    init = nn.initializers.normal(stddev=width ** -0.5)
    qkv_kernel = self.param(
        "qkv_kernel", param_with_axes(init, ("embed", None, "heads", "kv")),
        (width, 3, self.num_heads, head_dim))
    qkv_bias = self.param(
        "qkv_bias",
        param_with_axes(nn.initializers.zeros, (None, "heads", "kv")),
        (3, self.num_heads, head_dim))
    out_kernel = self.param(
        "out_kernel", param_with_axes(init, ("heads", "kv", "embed")),
        (self.num_heads, head_dim, width))
    out_bias = self.param(
        "out_bias", param_with_axes(nn.initializers.zeros, ("embed",)),
        (width,))
    x, qkv_kernel, qkv_bias, out_kernel, out_bias = nn.dtypes.promote_dtype(
        x, qkv_kernel, qkv_bias, out_kernel, out_bias, dtype=self.dtype)

    qkv = jnp.einsum("bld,dshk->sblhk", x, qkv_kernel)
    qkv = qkv + qkv_bias[:, None, None]
    q, k, v = (constrain(t, ("batch", "length", "heads", None)) for t in qkv)
    out = jax.nn.dot_product_attention(
        q, k, v, scale=head_dim ** -0.5, is_causal=self.causal,
        implementation=attention_implementation(self.attention, q.dtype, head_dim, (q.shape[1],)))
    out = jnp.einsum("blhk,hkd->bld", out, out_kernel) + out_bias
    return constrain(out, ("batch", "length", "embed"))


class MlpBlock(nn.Module):
  mlp_dim: int
  activation: str = "quick_gelu"
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    width = x.shape[-1]
    dense_init = nn.initializers.normal(stddev=width ** -0.5)
    h = nn.Dense(
        self.mlp_dim, dtype=self.dtype, name="fc1",
        kernel_init=param_with_axes(dense_init, ("embed", "mlp")),
        bias_init=param_with_axes(nn.initializers.zeros, ("mlp",)))(x)
    h = constrain(get_activation(self.activation)(h),
                  ("batch", "length", "mlp"))
    out = nn.Dense(
        width, dtype=self.dtype, name="fc2",
        kernel_init=param_with_axes(dense_init, ("mlp", "embed")),
        bias_init=param_with_axes(nn.initializers.zeros, ("embed",)))(h)
    return constrain(out, ("batch", "length", "embed"))


class ResidualBlock(nn.Module):
  """Pre-LN block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""
  num_heads: int
  mlp_dim: int
  causal: bool = False
  activation: str = "quick_gelu"
  layer_norm_eps: float = 1e-5
  dtype: Dtype = jnp.float32
  attention: str = "auto"  # one of ATTENTIONS

  @nn.compact
  def __call__(self, x: Array) -> Array:
    x = constrain(x, ("batch", "length", "embed"))
    h = layer_norm(self.layer_norm_eps, self.dtype, "ln_1")(x)
    x = x + MultiHeadAttention(
        self.num_heads, causal=self.causal, dtype=self.dtype,
        attention=self.attention, name="attn")(h)
    h = layer_norm(self.layer_norm_eps, self.dtype, "ln_2")(x)
    x = x + MlpBlock(
        self.mlp_dim, activation=self.activation, dtype=self.dtype,
        name="mlp")(h)
    return x


def block_class(remat: bool) -> type[ResidualBlock]:
  """The block class, rematerialised (activation checkpointing) on request."""
  return nn.remat(ResidualBlock) if remat else ResidualBlock
