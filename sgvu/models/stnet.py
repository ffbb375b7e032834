"""STNet of CSTBIR (composed sketch + text -> scene image retrieval) and the TIRG baseline.

The query is a sketch of one object plus a text whose words for that object are replaced by a
placeholder; the target is a scene image. STNet embeds the text with the CLIP text tower (h_T),
the sketch with a frozen ViT sketch classifier projected to the joint dim E (h_S), and re-weights
the CLIP image tower's projected patch tokens H_I [T, E] by the sketch:
alpha = softmax_t(scale * H_I h_S), h_I = sum_t alpha_t H_I[t]; score = cos(h_T, h_I).
Auxiliary heads (all in `STNetHeads`): object classification from h_T and from h_I, a YOLO-style
grid detector of the sketched object on the re-weighted tokens, and a conv decoder that
reconstructs the sketch's ink mask from h_I.

The modules own no CLIP tower: a task composes the CLIP params, the `SketchClassifier` params
and the `STNetHeads` params itself. Because h_I depends on the query sketch, a gallery is
scored by re-weighting its cached tokens per query (`blocked_scores`, in query blocks).
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from sgvu.detection.boxes import cxcywh_to_xyxy
from sgvu.losses import l2_normalize
from sgvu.models.layers import param_with_axes
from sgvu.models.vit import VisionConfig, VisionTransformer


class SketchClassifier(nn.Module):
  """A ViT `img` pretrained to classify sketches (then frozen) + a Dense `head`.

  images [B, H, W, 3] (CLIP-normalised) -> (embedding [B, vision.embed_dim], logits [B, C]).
  """
  vision: VisionConfig
  num_classes: int

  @nn.compact
  def __call__(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    embedding = VisionTransformer(self.vision, name="img")(images)
    return embedding, nn.Dense(self.num_classes, name="head")(embedding)


class STNetHeads(nn.Module):
  """Every trainable part of STNet besides the towers.

  Params: token_ln {scale, bias} [D_vision] and token_proj {kernel} [D_vision, E] (same names and
  shapes as the CLIP image tower's ln_post / proj, to be initialised from them); sketch_proj;
  reweight_scale (the LOG of the re-weighting scale, init log(E^-1/2) as in scaled dot-product
  attention); cls_text, cls_image; box_hidden, box_out; dec_ln, dec_in, dec_conv_{i}, dec_norm_{i},
  dec_out.
  """
  embed_dim: int
  sketch_dim: int
  num_classes: int
  grid: int  # patch tokens form a grid x grid raster (row-major)
  decoder_size: int
  decoder_width: int = 32
  layer_norm_eps: float = 1e-5  # token_ln's, as CLIP's ln_post

  def setup(self):
    e = self.embed_dim
    self.token_ln = nn.LayerNorm(
        epsilon=self.layer_norm_eps, use_fast_variance=False,
        scale_init=param_with_axes(nn.initializers.ones, ("embed",)),
        bias_init=param_with_axes(nn.initializers.zeros, ("embed",)))
    self.token_proj = nn.Dense(e, use_bias=False, kernel_init=param_with_axes(
        nn.initializers.lecun_normal(), ("embed", "joint")))
    self.sketch_proj = nn.Dense(e)
    self.reweight_scale = self.param("reweight_scale", nn.initializers.constant(math.log(e ** -0.5)), ())
    self.cls_text = nn.Dense(self.num_classes)
    self.cls_image = nn.Dense(self.num_classes)
    self.box_hidden = nn.Dense(e)
    self.box_out = nn.Dense(5)
    # Decoder: Dense to a start x start map, then (nearest 2x upsample, 3x3 conv, GroupNorm, ReLU)
    # blocks while the size halves evenly to >= 4, then a 3x3 conv to one logit channel.
    steps, size = 0, self.decoder_size
    while size % 2 == 0 and size // 2 >= 4:
      steps, size = steps + 1, size // 2
    self._dec_steps, self._dec_start = steps, size
    w = self.decoder_width
    self.dec_ln = nn.LayerNorm()
    self.dec_in = nn.Dense(size * size * w)
    self.dec_conv = [nn.Conv(w, (3, 3), padding="SAME") for _ in range(steps)]
    self.dec_norm = [nn.GroupNorm(num_groups=min(8, w)) for _ in range(steps)]
    self.dec_out = nn.Conv(1, (3, 3), padding="SAME")

  def scale(self) -> jax.Array:
    """The multiplicative re-weighting scale exp(reweight_scale)."""
    return jnp.exp(self.reweight_scale)

  def project_tokens(self, tokens: jax.Array) -> jax.Array:
    """Vision-tower patch tokens [B, T, D_vision] -> joint space [B, T, E] (ln_post + proj)."""
    return self.token_proj(self.token_ln(tokens))

  def project_sketch(self, s: jax.Array) -> jax.Array:
    """Sketch-classifier embedding [B, sketch_dim] -> h_S [B, E]."""
    return self.sketch_proj(s)

  def classify_text(self, h: jax.Array) -> jax.Array:
    return self.cls_text(h)

  def classify_image(self, h: jax.Array) -> jax.Array:
    return self.cls_image(h)

  def boxes(self, weighted_tokens: jax.Array) -> jax.Array:
    """[B, T, E] -> [B, T, 5]: (objectness logit, cx, cy, w, h), boxes in [0, 1] image fractions.

    Cell t = row * grid + col predicts its centre as ((col + sigmoid(dx)) / grid,
    (row + sigmoid(dy)) / grid) and its size as sigmoid(w), sigmoid(h).
    """
    b, t, _ = weighted_tokens.shape
    if t != self.grid * self.grid:
      raise ValueError(f"boxes: {t} tokens is not a {self.grid} x {self.grid} grid")
    raw = self.box_out(nn.relu(self.box_hidden(weighted_tokens))).astype(jnp.float32)
    rows, cols = jnp.divmod(jnp.arange(t), self.grid)
    cx = (cols + jax.nn.sigmoid(raw[..., 1])) / self.grid
    cy = (rows + jax.nn.sigmoid(raw[..., 2])) / self.grid
    wh = jax.nn.sigmoid(raw[..., 3:5])
    return jnp.concatenate([raw[..., :1], cx[..., None], cy[..., None], wh], axis=-1)

  def decode_sketch(self, h: jax.Array) -> jax.Array:
    """[B, E] -> ink-mask logits [B, decoder_size, decoder_size]."""
    s, w = self._dec_start, self.decoder_width
    x = nn.relu(self.dec_in(self.dec_ln(h))).reshape(h.shape[0], s, s, w)
    for conv, norm in zip(self.dec_conv, self.dec_norm):
      x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
      x = nn.relu(norm(conv(x)))
    return self.dec_out(x)[..., 0]

  def __call__(self, tokens: jax.Array, sketch: jax.Array, text: jax.Array | None = None) -> dict[str, jax.Array]:
    """The paired training forward (each image with its own query); touches every param.

    tokens [B, T, D_vision] patch tokens, sketch [B, sketch_dim], text h_T [B, E] (None: text_logits
    classify the image embedding instead, enough for init). The detector sees T * alpha_t * H_I[t]
    (re-weighted tokens, scaled so that a uniform alpha leaves them as they are).
    """
    h_tokens = self.project_tokens(tokens)
    h_sketch = self.project_sketch(sketch)
    h_image, alpha = reweight_paired(h_tokens, h_sketch, self.scale())
    weighted = h_tokens * (alpha * alpha.shape[-1])[..., None].astype(h_tokens.dtype)
    return {"image": h_image, "alpha": alpha, "sketch": h_sketch,
            "text_logits": self.classify_text(h_image if text is None else text),
            "image_logits": self.classify_image(h_image), "boxes": self.boxes(weighted),
            "reconstruction": self.decode_sketch(h_image)}


def reweight(tokens: jax.Array, sketch: jax.Array, scale) -> tuple[jax.Array, jax.Array]:
  """Every query against every image: tokens [G, T, E], sketch [Q, E] -> (pooled [Q, G, E], alpha [Q, G, T]).

  alpha = softmax over T of scale * <tokens, sketch>; pooled = sum_t alpha * tokens.
  """
  logits = scale * jnp.einsum("gte,qe->qgt", tokens, sketch).astype(jnp.float32)
  alpha = jax.nn.softmax(logits, axis=-1)
  return jnp.einsum("qgt,gte->qge", alpha.astype(tokens.dtype), tokens), alpha


def reweight_paired(tokens: jax.Array, sketch: jax.Array, scale) -> tuple[jax.Array, jax.Array]:
  """Image b with query b: tokens [B, T, E], sketch [B, E] -> (pooled [B, E], alpha [B, T])."""
  logits = scale * jnp.einsum("bte,be->bt", tokens, sketch).astype(jnp.float32)
  alpha = jax.nn.softmax(logits, axis=-1)
  return jnp.einsum("bt,bte->be", alpha.astype(tokens.dtype), tokens), alpha


@functools.partial(jax.jit, static_argnames="block")
def blocked_scores(text: jax.Array, sketch: jax.Array, tokens: jax.Array, scale, block: int = 256) -> jax.Array:
  """cos(h_T[q], h_I[q, g]) for every query q and image g: [Q, E], [Q, E], [G, T, E] -> [Q, G].

  Never forms the pooled [Q, G, E]: with s = <h_T, H_t> and K = H H^T (per image, [T, T]),
  cos = sum_t alpha_t s_t / (|h_T| sqrt(alpha^T K alpha)); both dot products are one matmul against
  the gallery's [G*T, E] tokens. Queries go through `jax.lax.map` in blocks of `block` (Q padded).
  """
  q, e = text.shape
  g, t, _ = tokens.shape
  nb = -(-q // block)
  pad = nb * block - q
  text = jnp.pad(l2_normalize(text), ((0, pad), (0, 0))).reshape(nb, block, e)
  sketch = jnp.pad(sketch, ((0, pad), (0, 0))).reshape(nb, block, e)
  flat = tokens.reshape(g * t, e)
  gram = jnp.einsum("gte,gse->gts", tokens, tokens).astype(jnp.float32)

  def one(args):
    tx, sk = args
    both = (jnp.concatenate([sk, tx]) @ flat.T).astype(jnp.float32).reshape(2, block, g, t)
    alpha = jax.nn.softmax(scale * both[0], axis=-1)
    numerator = jnp.sum(alpha * both[1], axis=-1)
    norm2 = jnp.einsum("qgt,gts,qgs->qg", alpha, gram, alpha)
    return numerator / jnp.sqrt(jnp.maximum(norm2, 1e-12))

  return jax.lax.map(one, (text, sketch)).reshape(nb * block, -1)[:q]


def _iou(a: jax.Array, b: jax.Array) -> jax.Array:
  """Elementwise IoU of [..., 4] xyxy boxes (0 where both are empty)."""
  lt = jnp.maximum(a[..., :2], b[..., :2])
  rb = jnp.minimum(a[..., 2:], b[..., 2:])
  inter = jnp.prod(jnp.maximum(rb - lt, 0.0), axis=-1)
  area = lambda x: jnp.prod(jnp.maximum(x[..., 2:] - x[..., :2], 0.0), axis=-1)
  union = area(a) + area(b) - inter
  ok = union > 0
  return jnp.where(ok, inter / jnp.where(ok, union, 1.0), 0.0)


def target_cells(boxes: jax.Array, grid: int) -> jax.Array:
  """[B, 4] xyxy fractions -> [B] int: row-major index of the cell holding the box centre."""
  cx = (boxes[:, 0] + boxes[:, 2]) / 2
  cy = (boxes[:, 1] + boxes[:, 3]) / 2
  col = jnp.clip(jnp.floor(cx * grid), 0, grid - 1).astype(jnp.int32)
  row = jnp.clip(jnp.floor(cy * grid), 0, grid - 1).astype(jnp.int32)
  return row * grid + col


def grid_box_loss(pred: jax.Array, boxes: jax.Array, valid: jax.Array, grid: int) -> jax.Array:
  """YOLO-style sketched-object detection loss, a scalar.

  pred [B, T, 5] from `STNetHeads.boxes`, boxes [B, 4] xyxy in [0, 1] fractions, valid [B] bool.
  Per row: objectness BCE averaged over the T cells (target 1 on the cell holding the box centre,
  0 elsewhere) + (1 - IoU) of that cell's box; averaged over the valid rows (0 if none).
  """
  pred = pred.astype(jnp.float32)
  cell = target_cells(boxes, grid)
  objectness = jax.nn.one_hot(cell, pred.shape[1], dtype=jnp.float32)
  bce = optax.sigmoid_binary_cross_entropy(pred[..., 0], objectness).mean(axis=-1)
  chosen = jnp.take_along_axis(pred[..., 1:], cell[:, None, None], axis=1)[:, 0]
  iou = _iou(cxcywh_to_xyxy(chosen), boxes.astype(jnp.float32))
  v = valid.astype(jnp.float32)
  return jnp.sum(v * (bce + 1.0 - iou)) / jnp.maximum(jnp.sum(v), 1.0)


def bce_dice_loss(logits: jax.Array, target: jax.Array, eps: float = 1.0) -> jax.Array:
  """Mean pixel BCE + (1 - Dice) of [B, S, S] logits against {0, 1} targets, a scalar.

  Dice = (2 sum(p t) + eps) / (sum(p) + sum(t) + eps) per image (p = sigmoid(logits)), batch mean.
  """
  logits, target = logits.astype(jnp.float32), target.astype(jnp.float32)
  bce = optax.sigmoid_binary_cross_entropy(logits, target).mean()
  p = jax.nn.sigmoid(logits)
  dice = (2 * jnp.sum(p * target, axis=(1, 2)) + eps) / (
      jnp.sum(p, axis=(1, 2)) + jnp.sum(target, axis=(1, 2)) + eps)
  return bce + jnp.mean(1.0 - dice)


class TIRG(nn.Module):
  """TIRG composition (Vo et al., 2019) of an image embedding x [B, E] and a text embedding t [B, E].

  f = w_g * sigmoid(gate_fc(ReLU(LN([x; t])))) * x + w_r * res_fc2(ReLU(res_fc1(ReLU(LN([x; t])))))
  with w_g = 1, w_r = 10 at init (learnable). LayerNorm replaces the original BatchNorm (no mutable
  batch statistics); res_fc1 maps 2E -> 2E as in the release.
  """
  embed_dim: int

  @nn.compact
  def __call__(self, x: jax.Array, t: jax.Array) -> jax.Array:
    xt = jnp.concatenate([x, t], axis=-1)
    gate = jax.nn.sigmoid(nn.Dense(self.embed_dim, name="gate_fc")(nn.relu(nn.LayerNorm(name="gate_norm")(xt))))
    h = nn.relu(nn.Dense(2 * self.embed_dim, name="res_fc1")(nn.relu(nn.LayerNorm(name="res_norm")(xt))))
    res = nn.Dense(self.embed_dim, name="res_fc2")(h)
    w_gate = self.param("w_gate", nn.initializers.constant(1.0), ())
    w_res = self.param("w_res", nn.initializers.constant(10.0), ())
    return w_gate * gate * x + w_res * res
