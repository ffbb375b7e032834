"""The towers' attention setting ('auto' / 'xla' / 'cudnn'), its config round trips, and compute dtypes.

'auto' picks cuDNN flash attention on a CUDA GPU where the compute dtype and head size allow it, XLA elsewhere;
'cudnn' raises a ValueError naming the reason where it cannot run (chosen over a silent or logged fallback: a
benchmark or parity check that asks for cuDNN must get it). On a CPU backend: 'auto' == 'xla' exactly, 'cudnn'
raises. The selection rules are tested with a faked GPU capability; the cuDNN kernel itself only where a CUDA GPU
is the default backend (benchmarks/gpu_check.sh runs this file there).
"""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sgvu.models import layers, registry
from sgvu.models.clip import CLIP, CLIPConfig, get_preset
from sgvu.models.text import TextTransformer
from sgvu.models.vit import VisionConfig, VisionTransformer

CFG = get_preset("tiny")
B = 2
ON_CUDA = layers._cuda_capability() is not None  # pylint: disable=protected-access
cpu_only = pytest.mark.skipif(jax.default_backend() != "cpu", reason="CPU-backend behaviour")
cuda_only = pytest.mark.skipif(not ON_CUDA, reason="needs a CUDA GPU as the default JAX backend")


def _inputs(cfg=CFG):
  images = jax.random.normal(jax.random.key(0), (B, cfg.vision.image_size, cfg.vision.image_size, 3))
  tokens = jnp.array([[1, 5, 6, 2, 0, 0], [1, 7, 8, 9, 10, 2]], jnp.int32)
  return images, tokens


def _loss_and_grads(cfg, params):
  images, tokens = _inputs(cfg)

  def loss(p):
    img, txt, _ = CLIP(cfg).apply({"params": p}, images, tokens)
    return (jnp.sum(img.astype(jnp.float32) ** 2) + jnp.sum(txt.astype(jnp.float32) ** 2)), (img, txt)

  (value, outs), grads = jax.value_and_grad(loss, has_aux=True)(params)
  return value, outs, grads


@pytest.fixture(scope="module")
def params():
  return nn.unbox(CLIP(CFG).init(jax.random.key(0), *_inputs()))["params"]


@cpu_only
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_auto_equals_xla_on_cpu(params, dtype):
  auto = _loss_and_grads(CFG.replace(dtype=dtype, attention="auto"), params)
  xla = _loss_and_grads(CFG.replace(dtype=dtype, attention="xla"), params)
  for a, b in zip(jax.tree.leaves(auto), jax.tree.leaves(xla)):
    np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))
  assert layers.attention_implementation("auto", jnp.bfloat16, 64) == "xla"


@cpu_only
def test_cudnn_on_cpu_is_a_clear_error(params):
  cfg = CFG.replace(dtype="bfloat16", attention="cudnn")  # the config itself is valid anywhere
  with pytest.raises(ValueError, match=r"attention='cudnn' cannot run here: the default JAX backend is 'cpu', "
                                       r"not a CUDA GPU\. Use attention='auto'"):
    CLIP(cfg).apply({"params": params}, *_inputs())


@pytest.mark.parametrize("capability, dtype, head_dim, expected", [
    ((9, 0), jnp.bfloat16, 64, "cudnn"),
    ((9, 0), jnp.float16, 128, "cudnn"),
    ((9, 0), jnp.bfloat16, 256, "cudnn"),  # Hopper: head sizes up to 256
    ((8, 0), jnp.bfloat16, 256, "xla"),  # Ampere: up to 128
    ((9, 0), jnp.float32, 64, "xla"),  # cuDNN flash attention has no float32
    ((9, 0), jnp.bfloat16, 12, "xla"),  # not a multiple of 8
    ((7, 5), jnp.bfloat16, 64, "xla"),  # pre-Ampere
    (None, jnp.bfloat16, 64, "xla"),  # CPU / TPU / ROCm
])
def test_auto_selection_rules(monkeypatch, capability, dtype, head_dim, expected):
  monkeypatch.setattr(layers, "_cuda_capability", lambda: capability)
  assert layers.attention_implementation("auto", dtype, head_dim) == expected
  assert layers.attention_implementation("xla", dtype, head_dim) == "xla"
  if expected == "cudnn":
    assert layers.attention_implementation("cudnn", dtype, head_dim) == "cudnn"
  else:
    with pytest.raises(ValueError, match="attention='cudnn' cannot run here: "):
      layers.attention_implementation("cudnn", dtype, head_dim)
  with pytest.raises(ValueError, match=r"attention 'flash'; valid: \['auto', 'xla', 'cudnn'\]"):
    layers.attention_implementation("flash", dtype, head_dim)


@pytest.mark.parametrize("lengths, expected", [((200,), "cudnn"), ((197,), "xla"), ((100, 77), "xla"),
                                               ((8, 64), "cudnn"), ((), "cudnn")])
def test_auto_takes_xla_for_odd_lengths(monkeypatch, lengths, expected):
  """jax 0.11.2's cuDNN path refused to train a 197-token block on an H200 ('Unsupported sequence length
  Q 197, KV 197'): 'auto' must not pick it for an odd query or key length, and 'cudnn' names the length."""
  monkeypatch.setattr(layers, "_cuda_capability", lambda: (9, 0))
  assert layers.attention_implementation("auto", jnp.bfloat16, 64, lengths) == expected
  if expected == "xla":
    odd = next(n for n in lengths if n % 2)
    with pytest.raises(ValueError, match=f"sequence length {odd} is odd"):
      layers.attention_implementation("cudnn", jnp.bfloat16, 64, lengths)


def test_towers_pass_the_chosen_implementation(monkeypatch, params):
  """Every block of both towers hands jax.nn.dot_product_attention what the setting resolves to
  (a GPU faked; the kernel actually run is XLA's, so this runs anywhere)."""
  monkeypatch.setattr(layers, "_cuda_capability", lambda: (9, 0))
  seen, original = [], jax.nn.dot_product_attention

  def spy(*args, implementation=None, **kwargs):
    seen.append(implementation)
    return original(*args, implementation="xla", **kwargs)

  monkeypatch.setattr(jax.nn, "dot_product_attention", spy)
  run = lambda c: jax.eval_shape(lambda p: CLIP(c).apply({"params": p}, *_inputs()), params)
  # tiny's head size is 16: a multiple of 8, so cuDNN takes bfloat16 and float16 where the length is even:
  # the text tower's 6 tokens, not the image tower's 17 (16 patches + class token).
  vision, text = CFG.vision.layers, CFG.text.layers
  for dtype, attention, expected in [("bfloat16", "auto", ["xla"] * vision + ["cudnn"] * text),
                                     ("float32", "auto", ["xla"] * (vision + text)),
                                     ("bfloat16", "xla", ["xla"] * (vision + text))]:
    seen.clear()
    run(CFG.replace(dtype=dtype, attention=attention))
    assert seen == expected, (dtype, attention)
  with pytest.raises(ValueError, match="attention='cudnn' cannot run here: sequence length 17 is odd"):
    run(CFG.replace(dtype="float16", attention="cudnn"))
  seen.clear()
  jax.eval_shape(lambda p: TextTransformer(CFG.text.replace(dtype="float16", attention="cudnn")).apply(
      {"params": p}, _inputs()[1]), params["txt"])
  assert seen == ["cudnn"] * text


def test_attention_setting_in_configs_and_json():
  cfg = CFG.replace(attention="xla")
  assert cfg.vision.attention == cfg.text.attention == "xla"  # CLIPConfig forwards it like dtype
  with pytest.raises(ValueError, match=r"Invalid CLIPConfig: attention 'flash'; valid: \['auto', 'xla', 'cudnn'\]"):
    CFG.replace(attention="flash")
  with pytest.raises(ValueError, match=r"Invalid VisionConfig: attention 'flash'"):
    CFG.vision.replace(attention="flash")
  # Written only when not the default: configs saved before the setting existed load as 'auto', and an
  # 'auto' config serialises exactly as they did.
  assert "attention" not in CFG.to_dict() and "attention" not in CFG.vision.to_dict()
  assert CLIPConfig.from_dict(json.loads(json.dumps(CFG.to_dict()))) == CFG
  saved = json.loads(json.dumps(cfg.to_dict()))
  assert saved["attention"] == "xla" and "attention" not in saved["vision"]
  assert CLIPConfig.from_dict(saved) == cfg
  assert VisionConfig.from_dict(cfg.vision.to_dict()) == cfg.vision
  old = CFG.vision.to_dict()
  assert VisionConfig.from_dict(old).attention == "auto"
  for module in (CLIP(cfg), VisionTransformer(cfg.vision), TextTransformer(cfg.text.replace(attention="cudnn"))):
    spec = json.loads(json.dumps(registry.describe(module)))
    assert registry.build(spec) == module


def _dots(jaxpr, found):
  """(primitive, operand dtypes) of every dot_general / convolution in jaxpr, sub-jaxprs included."""
  for eqn in jaxpr.eqns:
    if eqn.primitive.name in ("dot_general", "conv_general_dilated"):
      found.append((eqn.primitive.name, tuple(str(v.aval.dtype) for v in eqn.invars),
                    str(eqn.source_info.name_stack)))
    for sub in jax.extend.core.jaxprs_in_params(eqn.params):
      _dots(sub, found)
  return found


@pytest.mark.parametrize("stem", ["patch", "conv"])
def test_bfloat16_compute_float32_params(stem):
  """dtype='bfloat16': every matmul and convolution of both towers, forward and backward, takes bfloat16
  operands; params (and so their gradients and the optimizer's moments) stay float32. The one exception is
  jax's XLA attention, which forms q.k^T logits in float32 for the softmax: the backward of that product
  multiplies a float32 logit gradient with bfloat16 q/k (cuDNN attention has no such product)."""
  cfg = CFG.replace(dtype="bfloat16", attention="xla", vision=CFG.vision.replace(stem=stem))
  images, tokens = _inputs(cfg)
  variables = CLIP(cfg).init(jax.random.key(0), images, tokens)
  assert {str(x.dtype) for x in jax.tree.leaves(nn.unbox(variables))} == {"float32"}

  def loss(p):
    img, txt, _ = CLIP(cfg).apply(p, images, tokens)
    assert img.dtype == txt.dtype == jnp.bfloat16
    return jnp.sum(img.astype(jnp.float32)) + jnp.sum(txt.astype(jnp.float32))

  forward = _dots(jax.make_jaxpr(loss)(variables).jaxpr, [])
  assert forward and all(dt == ("bfloat16", "bfloat16") for _, dt, _ in forward), forward
  grads = jax.grad(loss)(variables)
  assert {str(x.dtype) for x in jax.tree.leaves(grads)} == {"float32"}
  backward = _dots(jax.make_jaxpr(jax.grad(loss))(variables).jaxpr, [])
  mixed = [d for d in backward if d[1] != ("bfloat16", "bfloat16")]
  assert all("BTNH,BSNH->BNTS" in where and "bfloat16" in dt for _, dt, where in mixed), mixed
  assert len(mixed) == 2 * (cfg.vision.layers + cfg.text.layers)


@cuda_only
@pytest.mark.parametrize("causal", [False, True])
def test_cudnn_matches_xla_on_gpu(causal):
  """ViT-B/16-sized attention block (200 tokens: 197 + 3 prompts, 12 heads of 64), bfloat16: cuDNN flash
  attention's output and gradients agree with XLA's to bfloat16 precision; 'auto' picks cuDNN."""
  assert layers.attention_implementation("auto", jnp.bfloat16, 64, (200,)) == "cudnn"
  x = jax.random.normal(jax.random.key(1), (8, 200, 768), jnp.float32)
  block = lambda impl: layers.ResidualBlock(12, 3072, causal=causal, dtype=jnp.bfloat16, attention=impl)
  variables = block("xla").init(jax.random.key(0), x)

  @jax.jit
  def run(v):
    def f(v, impl):
      return jnp.mean(block(impl).apply(v, x).astype(jnp.float32) ** 2), block(impl).apply(v, x)
    (lx, ox), gx = jax.value_and_grad(lambda v: f(v, "xla"), has_aux=True)(v)
    (lc, oc), gc = jax.value_and_grad(lambda v: f(v, "cudnn"), has_aux=True)(v)
    return (lx, ox, gx), (lc, oc, gc)

  (lx, ox, gx), (lc, oc, gc) = run(variables)
  text = jax.jit(lambda v: block("cudnn").apply(v, x)).lower(variables).as_text()
  assert "cudnn" in text.lower() or "custom_call" in text, "the cuDNN kernel was not used"
  np.testing.assert_allclose(np.float32(lc), np.float32(lx), rtol=2e-2)
  np.testing.assert_allclose(np.asarray(oc, np.float32), np.asarray(ox, np.float32), atol=6e-2, rtol=2e-2)
  for path_x, path_c in zip(jax.tree.leaves_with_path(gx), jax.tree.leaves(gc)):
    path, a = path_x
    a, b = np.asarray(a, np.float32), np.asarray(path_c, np.float32)
    scale = float(np.abs(a).max()) or 1.0
    assert float(np.abs(a - b).max()) <= 3e-2 * scale, (jax.tree_util.keystr(path), np.abs(a - b).max(), scale)
