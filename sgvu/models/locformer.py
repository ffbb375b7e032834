"""LocFormer: sketch-guided object localization with a vision transformer (WACV 2024; seed 000).

The follow-up of the Faster R-CNN localizer (REFERENCES.md, "ViT follow-up"): the image backbone
is a transformer whose patch tokens cross-attend to the query sketch's tokens before each stage
(query-guided attention), and a DETR-style set-prediction head finds every object of the sketched
category with no anchors, proposals or NMS.

What the release does, and what this module keeps:
- backbone: Swin-tiny with ViDT's [DET] tokens; before each of its 4 stages the patch tokens
  attend (8 heads) to the 7x7 = 49 tokens of a ResNet-50 sketch encoder, projected to the stage
  width, with sine positions on queries and keys. Here: a plain (single-width) ViT split into
  `stage_depths` stages, the same cross-attention block before each, and the sketch tokens of a
  small ViT (`sgvu.models.vit.VisionTransformer`, CLS + patches).
- head: a deformable-DETR decoder, 100 learned queries, boxes as sigmoid(MLP(h) + logit(reference
  point)), class logits from a linear layer on [global sketch feature ; object feature], focal
  loss with Hungarian matching (sgvu.detection.set_losses). Here: a DETR decoder with plain
  (dense) cross-attention over the final image tokens (one scale, a few hundred tokens: deformable
  sampling buys nothing), `num_queries` learned queries, the same box parametrisation and a
  single "is the sketched category" logit from an MLP on the concatenation (an MLP, so that the
  head can compare object and sketch; a linear layer only adds a per-image sketch offset).
- multi-sketch queries (k sketches of one category): the image attends over the tokens of all k
  sketches (concatenated); the global sketch feature is their mean.

Shapes: images [B, H, W, 3] and sketches [B, k, S, S, 3], both CLIP-normalised floats.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sgvu.detection import boxes as box_ops
from sgvu.models import layers
from sgvu.models.configs import DTYPES, from_dict
from sgvu.models.layers import constrain, param_with_axes
from sgvu.models.vit import PatchEmbed, VisionConfig, VisionTransformer

# Settings of the whole model that the sketch encoder takes from it (one dtype for everything).
FORWARDED = ("dtype", "attention", "remat")
PRIOR_PROB = 0.01  # initial foreground probability of every query (focal-loss init, RetinaNet/DETR)


def _default_sketch() -> VisionConfig:
  return VisionConfig(image_size=64, patch_size=8, width=192, layers=4, heads=3, mlp_dim=768,
                      embed_dim=256, activation="gelu")


@dataclasses.dataclass(frozen=True)
class LocFormerConfig:
  """Everything `LocFormer` needs. `sketch` is the sketch encoder's ViT; after construction its
  dtype, attention and remat equal this config's (FORWARDED)."""
  image_size: int = 224
  patch_size: int = 16
  width: int = 384
  stage_depths: tuple[int, ...] = (2, 2, 2)  # ViT blocks per stage; a sketch cross-attention before each
  heads: int = 6
  mlp_dim: int = 1536
  cross_heads: int = 8  # query-guided cross-attention (the release: 8)
  sketch: VisionConfig = dataclasses.field(default_factory=_default_sketch)
  num_sketches: int = 1  # k sketches per query (1 or 3 in the paper)
  num_queries: int = 20  # object queries of the decoder (the release: 100 on COCO)
  decoder_layers: int = 3
  decoder_heads: int = 8
  decoder_mlp_dim: int = 1536
  layer_norm_eps: float = 1e-5
  activation: str = "gelu"  # a key of layers.ACTIVATIONS
  remat: bool = False
  dtype: str = "float32"  # compute dtype of activations; params stay float32
  attention: str = "auto"  # layers.ATTENTIONS

  def __post_init__(self):
    object.__setattr__(self, "stage_depths", tuple(int(d) for d in self.stage_depths))
    problems = self.problems()
    if problems:
      raise ValueError("Invalid LocFormerConfig: " + "; ".join(problems))
    shared = {k: getattr(self, k) for k in FORWARDED}
    if any(getattr(self.sketch, k) != v for k, v in shared.items()):
      object.__setattr__(self, "sketch", self.sketch.replace(**shared))

  def problems(self) -> list[str]:
    p = []
    if not isinstance(self.sketch, VisionConfig):
      p.append(f"sketch must be a VisionConfig, got {type(self.sketch).__name__}")
    if self.image_size % self.patch_size:
      p.append(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
    if self.width % 4:
      p.append(f"width {self.width} must be a multiple of 4 (2-D sine positions)")
    for name in ("heads", "cross_heads", "decoder_heads"):
      if getattr(self, name) < 1 or self.width % getattr(self, name):
        p.append(f"width {self.width} is not divisible by {name} {getattr(self, name)}")
    if not self.stage_depths or min(self.stage_depths) < 1:
      p.append(f"stage_depths {self.stage_depths} must be non-empty, each >= 1")
    for name in ("num_sketches", "num_queries", "decoder_layers", "mlp_dim", "decoder_mlp_dim"):
      if getattr(self, name) < 1:
        p.append(f"{name} must be >= 1, got {getattr(self, name)}")
    if self.dtype not in DTYPES:
      p.append(f"dtype {self.dtype!r}; valid: {sorted(DTYPES)}")
    if self.activation not in layers.ACTIVATIONS:
      p.append(f"activation {self.activation!r}; valid: {sorted(layers.ACTIVATIONS)}")
    if self.attention not in layers.ATTENTIONS:
      p.append(f"attention {self.attention!r}; valid: {list(layers.ATTENTIONS)}")
    return p

  @property
  def compute_dtype(self):
    return DTYPES[self.dtype]

  @property
  def grid(self) -> int:
    return self.image_size // self.patch_size

  def replace(self, **changes) -> LocFormerConfig:
    return dataclasses.replace(self, **changes)

  def to_dict(self) -> dict[str, Any]:
    d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
    d["stage_depths"] = list(self.stage_depths)
    d["sketch"] = self.sketch.to_dict()
    return d

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> LocFormerConfig:
    d = dict(d)
    if isinstance(d.get("sketch"), Mapping):
      d["sketch"] = from_dict(VisionConfig, d["sketch"], "LocFormerConfig.sketch")
    if "stage_depths" in d:
      d["stage_depths"] = tuple(d["stage_depths"])
    return from_dict(cls, d, "LocFormerConfig")


def sine_positions(grid: int, dim: int, temperature: float = 10000.0) -> np.ndarray:
  """DETR's normalised 2-D sine positions of a grid x grid map, row-major: [grid * grid, dim].

  The first dim/2 channels encode y, the rest x; each half is [sin(f_i p) ; cos(f_i p)] with
  p in (0, 2 pi] and f_i = temperature^(-2i/(dim/2)), i < dim/4.
  """
  quarter = dim // 4
  freqs = temperature ** (-np.arange(quarter, dtype=np.float64) / quarter)
  p = (np.arange(grid, dtype=np.float64) + 1) / grid * 2 * math.pi
  enc = np.concatenate([np.sin(p[:, None] * freqs), np.cos(p[:, None] * freqs)], axis=1)  # [grid, dim/2]
  y = np.repeat(enc, grid, axis=0)
  x = np.tile(enc, (grid, 1))
  return np.concatenate([y, x], axis=1).astype(np.float32)


class CrossAttention(nn.Module):
  """Multi-head attention of x [B, N, D] over context [B, M, D] -> [B, N, D].

  Positions (broadcastable to x / context) are added to queries and keys, not to values (DETR).
  Separate q / k / v kernels [D, H, K] and `out_kernel` [H, K, D]; also the decoder's
  self-attention (x = context).
  """
  num_heads: int
  dtype: Any = jnp.float32
  attention: str = "auto"

  @nn.compact
  def __call__(self, x: jax.Array, context: jax.Array, x_pos: jax.Array | None = None,
               context_pos: jax.Array | None = None) -> jax.Array:
    width = x.shape[-1]
    head_dim = width // self.num_heads
    init = nn.initializers.normal(stddev=width ** -0.5)

    def proj(name: str, inp: jax.Array) -> jax.Array:
      kernel = self.param(f"{name}_kernel", param_with_axes(init, ("embed", "heads", "kv")),
                          (width, self.num_heads, head_dim))
      bias = self.param(f"{name}_bias", param_with_axes(nn.initializers.zeros, ("heads", "kv")),
                        (self.num_heads, head_dim))
      inp, kernel, bias = nn.dtypes.promote_dtype(inp, kernel, bias, dtype=self.dtype)
      return jnp.einsum("bld,dhk->blhk", inp, kernel) + bias

    q = proj("q", x if x_pos is None else x + x_pos)
    k = proj("k", context if context_pos is None else context + context_pos)
    v = proj("v", context)
    out = jax.nn.dot_product_attention(
        q, k, v, scale=head_dim ** -0.5,
        implementation=layers.attention_implementation(self.attention, q.dtype, head_dim, (q.shape[1], k.shape[1])))
    out_kernel = self.param("out_kernel", param_with_axes(init, ("heads", "kv", "embed")),
                            (self.num_heads, head_dim, width))
    out_bias = self.param("out_bias", param_with_axes(nn.initializers.zeros, ("embed",)), (width,))
    out, out_kernel, out_bias = nn.dtypes.promote_dtype(out, out_kernel, out_bias, dtype=self.dtype)
    out = jnp.einsum("blhk,hkd->bld", out, out_kernel) + out_bias
    return constrain(out, ("batch", "length", "embed"))


class _AttentionBlock(nn.Module):
  """The settings both pre-LN attention + MLP blocks below share."""
  num_heads: int
  mlp_dim: int
  activation: str = "gelu"
  layer_norm_eps: float = 1e-5
  dtype: Any = jnp.float32
  attention: str = "auto"


class QueryGuidedBlock(_AttentionBlock):
  """Image tokens attend to sketch tokens (before each backbone stage), pre-LN residual:

  s = LN(Dense(sketch)) (the release: 1x1 conv + GroupNorm to the stage width);
  x = x + CA(LN(x) + pos_x, s + pos_s, s); x = x + MLP(LN(x)).
  With all its parameters zero the block is the identity: the image path ignores the sketch.
  """

  @nn.compact
  def __call__(self, x: jax.Array, sketch: jax.Array, x_pos: jax.Array,
               sketch_pos: jax.Array) -> jax.Array:
    """x [B, N, D], sketch [B, M, Ds], positions [N, D] / [M, D] -> [B, N, D]."""
    eps, dt = self.layer_norm_eps, self.dtype
    s = nn.Dense(x.shape[-1], dtype=dt, name="sketch_proj")(sketch)
    s = layers.layer_norm(eps, dt, "ln_sketch")(s)
    h = layers.layer_norm(eps, dt, "ln_1")(x)
    x = x + CrossAttention(self.num_heads, dt, self.attention, name="attn")(
        h, s, x_pos.astype(h.dtype), sketch_pos.astype(s.dtype))
    h = layers.layer_norm(eps, dt, "ln_2")(x)
    return x + layers.MlpBlock(self.mlp_dim, self.activation, dt, name="mlp")(h)


class DecoderLayer(_AttentionBlock):
  """Pre-LN DETR decoder layer: query self-attention, cross-attention to the image, MLP."""

  @nn.compact
  def __call__(self, q: jax.Array, q_pos: jax.Array, memory: jax.Array,
               memory_pos: jax.Array) -> jax.Array:
    """q [B, Q, D], q_pos [Q, D], memory [B, N, D], memory_pos [N, D] -> [B, Q, D]."""
    eps, dt = self.layer_norm_eps, self.dtype
    h = layers.layer_norm(eps, dt, "ln_1")(q)
    q = q + CrossAttention(self.num_heads, dt, self.attention, name="self_attn")(h, h, q_pos, q_pos)
    h = layers.layer_norm(eps, dt, "ln_2")(q)
    q = q + CrossAttention(self.num_heads, dt, self.attention, name="cross_attn")(
        h, memory, q_pos, memory_pos)
    h = layers.layer_norm(eps, dt, "ln_3")(q)
    return q + layers.MlpBlock(self.mlp_dim, self.activation, dt, name="mlp")(h)


class LocFormer(nn.Module):
  """Sketch-guided ViT localizer. Sub-modules: `sketch` (VisionTransformer), `patch_embed`,
  `cross_{i}` (QueryGuidedBlock before stage i), `stage{i}_block{j}`, `decoder_{l}`,
  `box_{0,1,2}` (box MLP), `cls_hidden` / `cls_out` (class MLP)."""
  config: LocFormerConfig

  def _encode_sketches(self, sketches: jax.Array) -> tuple[jax.Array, jax.Array]:
    """[B, k, S, S, 3] -> (tokens [B, k * (1 + P), Ds] after a LayerNorm, global feature [B, E])."""
    c = self.config
    b, k = sketches.shape[:2]
    emb, tokens = VisionTransformer(c.sketch, name="sketch")(
        sketches.reshape(b * k, *sketches.shape[2:]), return_tokens=True)
    tokens = layers.layer_norm(c.layer_norm_eps, c.compute_dtype, "ln_sketch_tokens")(tokens)
    tokens = tokens.reshape(b, k * tokens.shape[1], tokens.shape[2])
    # The global feature of k sketches: the mean of their projected CLS embeddings (normalised,
    # as the release's GroupNorm before its spatial max-pool).
    glob = layers.layer_norm(c.layer_norm_eps, c.compute_dtype, "ln_sketch_global")(
        emb.reshape(b, k, -1).mean(axis=1))
    return tokens, glob

  @nn.compact
  def __call__(self, images: jax.Array, sketches: jax.Array) -> dict[str, jax.Array]:
    """images [B, H, W, 3], sketches [B, k, S, S, 3] ->
    {"logits": [B, Q] (the queried category vs not), "boxes": [B, Q, 4] normalised (cx, cy, w, h)},
    plus "aux_logits" [L - 1, B, Q] and "aux_boxes" [L - 1, B, Q, 4], the earlier decoder layers'
    predictions (DETR's auxiliary losses), when decoder_layers L > 1."""
    c = self.config
    dt, eps = c.compute_dtype, c.layer_norm_eps
    b = images.shape[0]
    if images.ndim != 4 or images.shape[1:] != (c.image_size, c.image_size, 3):
      raise ValueError(f"images must be [B, {c.image_size}, {c.image_size}, 3]; got {images.shape}")
    s = c.sketch.image_size
    if sketches.shape != (b, c.num_sketches, s, s, 3):
      raise ValueError(f"sketches must be [B={b}, k={c.num_sketches}, {s}, {s}, 3]; got {sketches.shape}")

    sketch_tokens, sketch_global = self._encode_sketches(sketches)
    # Sine positions: image patches; sketch patches (CLS: none), the same for each of the k sketches.
    img_pos = jnp.asarray(sine_positions(c.grid, c.width))
    sk_grid = c.sketch.image_size // c.sketch.patch_size
    sk_pos = np.concatenate([np.zeros((1, c.width), np.float32), sine_positions(sk_grid, c.width)])
    sk_pos = jnp.asarray(np.tile(sk_pos, (c.num_sketches, 1)))

    x = PatchEmbed(c.width, c.patch_size, dtype=dt, name="patch_embed")(images).reshape(b, -1, c.width)
    pos = self.param("pos_embedding", param_with_axes(nn.initializers.normal(stddev=c.width ** -0.5),
                                                      (None, "embed")), (c.grid ** 2, c.width))
    x = x + pos.astype(x.dtype)
    block = layers.block_class(c.remat)
    for i, depth in enumerate(c.stage_depths):
      x = QueryGuidedBlock(c.cross_heads, c.mlp_dim, c.activation, eps, dt, c.attention,
                           name=f"cross_{i}")(x, sketch_tokens, img_pos, sk_pos)
      for j in range(depth):
        x = block(c.heads, c.mlp_dim, activation=c.activation, layer_norm_eps=eps, dtype=dt,
                  attention=c.attention, name=f"stage{i}_block{j}")(x)
    memory = layers.layer_norm(eps, dt, "ln_post")(x)

    # DETR decoder over the final image tokens.
    init = nn.initializers.normal(stddev=1.0)
    query = self.param("query_embed", init, (c.num_queries, c.width)).astype(memory.dtype)
    query_pos = self.param("query_pos", init, (c.num_queries, c.width)).astype(memory.dtype)
    # Reference points (Deformable DETR): per-query box centres, the box head predicts offsets.
    ref_logits = nn.Dense(2, dtype=dt, kernel_init=nn.initializers.xavier_uniform(),
                          name="reference")(query_pos)  # [Q, 2]
    h = jnp.broadcast_to(query[None], (b,) + query.shape)
    ln_dec = layers.layer_norm(eps, dt, "ln_dec")  # shared by every layer's output (DETR)
    hs = []
    for l in range(c.decoder_layers):
      h = DecoderLayer(c.decoder_heads, c.decoder_mlp_dim, c.activation, eps, dt, c.attention,
                       name=f"decoder_{l}")(h, query_pos, memory, img_pos.astype(memory.dtype))
      hs.append(ln_dec(h))
    hs = jnp.stack(hs)  # [L, B, Q, D]

    # Box MLP (3 layers, ReLU); the last starts at zero with w, h bias -2 (the release's init), so
    # every box starts as a 0.12 x 0.12 square at its query's reference point.
    t = nn.relu(nn.Dense(c.width, dtype=dt, name="box_0")(hs))
    t = nn.relu(nn.Dense(c.width, dtype=dt, name="box_1")(t))
    t = nn.Dense(4, dtype=dt, kernel_init=nn.initializers.zeros,
                 bias_init=lambda *_: jnp.array([0.0, 0.0, -2.0, -2.0]), name="box_2")(t)
    offset = jnp.concatenate([ref_logits, jnp.zeros_like(ref_logits)], axis=-1)  # [Q, 4]
    boxes = jax.nn.sigmoid((t + offset).astype(jnp.float32))

    # Class MLP on [object feature ; global sketch feature] -> 1 logit.
    g = jnp.broadcast_to(sketch_global.astype(hs.dtype)[None, :, None],
                         hs.shape[:3] + sketch_global.shape[-1:])
    z = nn.Dense(c.width, dtype=dt, name="cls_hidden")(jnp.concatenate([hs, g], axis=-1))
    z = layers.get_activation(c.activation)(z)
    bias = -math.log((1 - PRIOR_PROB) / PRIOR_PROB)
    logits = nn.Dense(1, dtype=dt, bias_init=nn.initializers.constant(bias), name="cls_out")(z)
    logits = logits[..., 0].astype(jnp.float32)

    out = {"logits": logits[-1], "boxes": boxes[-1]}
    if c.decoder_layers > 1:
      out.update(aux_logits=logits[:-1], aux_boxes=boxes[:-1])
    return out


def detect(outputs: Mapping[str, jax.Array], image_hw: tuple[int, int],
           top_d: int) -> dict[str, jax.Array]:
  """The top_d predictions per image: LocFormer outputs -> {"boxes": [B, D, 4] (x1, y1, x2, y2)
  pixels clipped to the image, "scores": [B, D] sigmoid probabilities, best first, "indices":
  [B, D] query indices}. No NMS: the set loss trains one query per object (DETR, the release).
  image_hw is the (height, width) the boxes are normalised to."""
  logits, boxes = outputs["logits"], outputs["boxes"]
  if not 1 <= top_d <= logits.shape[-1]:
    raise ValueError(f"top_d {top_d} must be in [1, num_queries={logits.shape[-1]}]")
  scores, idx = jax.lax.top_k(jax.nn.sigmoid(logits), top_d)
  picked = jnp.take_along_axis(boxes, idx[..., None], axis=-2)
  h, w = image_hw
  xyxy = box_ops.cxcywh_to_xyxy(picked) * jnp.asarray([w, h, w, h], picked.dtype)
  return {"boxes": box_ops.clip_boxes(xyxy, (h, w)), "scores": scores, "indices": idx}
