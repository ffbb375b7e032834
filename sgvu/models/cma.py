"""Cross-modal attention (CMA) for sketch-guided object localization (Tripathi et al., ECCV 2020; seed 000).

A Faster R-CNN whose RPN and region scorer are conditioned on a query sketch:
  F_I = img(image) [B, h, w, C]; F_S = sketch(sketch) [B, k, hs, ws, C] (separate weights, same family).
  Cross-modal attention: s = max over (hs, ws) of theta_S(F_S); A = op(<s, theta_I(F_I)> / D) per location,
  theta = 1x1 conv -> BN -> ReLU -> 1x1 conv (C -> D), op a 1x1 conv on the one-channel map (a learnt
  scale and shift; no softmax or sigmoid, as the release). RPN input X = 1x1 conv of [F_I * A ; F_I].
  `use_attention=False` (the `cma-no-attention` ablation, the release's 'basic' model): X = F_I.
  Query-guided RPN on X -> proposals (top-k, static-shape NMS, fixed count + valid mask).
  RoIAlign on X (the release pools the RPN input, not F_I), a region head (fc layers; ResNet-50's
  layer4 + spatial mean), score logits = Dense(2)(Dense(8)([region ; sketch feature])) (no nonlinearity
  between, as the release), class-agnostic box deltas from the region feature. The sketch feature is
  the same region head applied to F_S (the release: sketch layer3 map -> image layer4 -> mean).

Methods (all under `model.apply(variables, ..., method=...)`; variables {'params', 'batch_stats'}):
  __call__(images, sketches, train)  scores every proposal (inference / evaluation).
  train_forward(images, sketches, gt_boxes, gt_valid, gt_query, rng)  samples `num_rois` RoIs from
      proposals + ground truth (25% foreground) inside the apply, static shapes, and scores those;
      `sgvu.detection.losses.cma_losses` takes its output.
  detect(images, sketches)  refined boxes after test NMS, best first.
With batchnorm='train' and train=True, apply with mutable=['batch_stats'].
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from sgvu.detection import boxes as box_ops
from sgvu.detection import nms as nms_ops
from sgvu.detection import roi_align as roi_ops
from sgvu.detection.losses import ROI_BOX_WEIGHTS, sample_rois
from sgvu.models.configs import from_dict

BACKBONES = ("cnn", "resnet50")
BATCHNORMS = ("frozen", "train", "none")  # frozen: running statistics always (use_running_average=True)
# How k > 1 sketches of one query combine. The paper (per REFERENCES) does either a 1x1 conv over the
# concatenated feature maps ('conv') or one attention map per sketch, averaged ('attention_mean');
# 'mean' / 'max' pool the k feature maps (cheap baselines).
SKETCH_FUSIONS = ("mean", "max", "conv", "attention_mean")
RESNET50_C4 = ((3, 64, 1), (4, 128, 2), (6, 256, 2))  # (blocks, planes, stride): conv1 .. layer3, stride 16
RESNET50_C5 = ((3, 512, 2),)  # layer4: the region head
Array = jax.Array


@dataclasses.dataclass(frozen=True)
class CMAConfig:
  """Everything the CMA model's shapes and post-processing depend on. Defaults: a small CNN for ~128 px images."""
  backbone: str = "cnn"  # one of BACKBONES
  cnn_widths: tuple[int, ...] = (32, 64, 128, 128)  # cnn: one 3x3 conv-BN-ReLU stage per width
  feature_stride: int = 8  # cnn: the first log2(stride) stages have stride 2; resnet50: must be 16
  batchnorm: str = "train"  # backbones and region head; one of BATCHNORMS
  attention_batchnorm: str = "train"  # theta_I / theta_S (the release trains these while freezing the backbone's)
  use_attention: bool = True  # False: the cma-no-attention ablation (RPN on F_I)
  attention_dim: int = 0  # D of theta_I / theta_S; 0 = the feature width C (the release: 1024 -> 1024)
  num_sketches: int = 1  # k sketches per query
  sketch_fusion: str = "mean"  # one of SKETCH_FUSIONS (only used when num_sketches > 1)
  anchor_sizes: tuple[float, ...] = (16.0, 32.0, 64.0)  # pixels (sqrt of the area)
  anchor_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)  # height / width
  rpn_dim: int = 128  # width of the RPN's 3x3 conv (release: 512)
  rpn_pre_nms_train: int = 1000
  rpn_post_nms_train: int = 200
  rpn_pre_nms_test: int = 500
  rpn_post_nms_test: int = 100
  rpn_nms_threshold: float = 0.7
  rpn_min_size: float = 1e-3  # proposals narrower or lower than this (pixels) are dropped
  rpn_batch: int = 256  # anchors sampled per image for the RPN loss
  rpn_fg_fraction: float = 0.5
  rpn_fg_iou: float = 0.7
  rpn_bg_iou: float = 0.3
  roi_size: int = 7  # RoIAlign output (roi_size x roi_size)
  roi_sampling_ratio: int = 2
  head_dim: int = 256  # cnn: width of the two fc layers of the region head (resnet50: 2048, layer4)
  score_hidden: int = 8  # the release's Linear(2 x 2048, 8) -> Linear(8, 2)
  num_rois: int = 128  # RoIs sampled per image in training
  roi_fg_fraction: float = 0.25
  roi_fg_iou: float = 0.5
  detect_nms_threshold: float = 0.3
  detections_per_image: int = 100
  detect_score_threshold: float = 0.0

  def __post_init__(self):
    for name in ("cnn_widths", "anchor_sizes", "anchor_ratios"):  # lists from JSON -> hashable tuples
      object.__setattr__(self, name, tuple(getattr(self, name)))
    problems = self.problems()
    if problems:
      raise ValueError("Invalid CMAConfig: " + "; ".join(problems))

  def problems(self) -> list[str]:
    p = []
    for name, value, valid in (("backbone", self.backbone, BACKBONES), ("batchnorm", self.batchnorm, BATCHNORMS),
                               ("attention_batchnorm", self.attention_batchnorm, BATCHNORMS),
                               ("sketch_fusion", self.sketch_fusion, SKETCH_FUSIONS)):
      if value not in valid:
        p.append(f"{name} {value!r}; valid: {list(valid)}")
    s = self.feature_stride
    if s < 1 or s & (s - 1):
      p.append(f"feature_stride must be a power of 2, got {s}")
    elif self.backbone == "resnet50" and s != 16:
      p.append(f"feature_stride must be 16 for backbone 'resnet50' (C4), got {s}")
    elif self.backbone == "cnn" and (not self.cnn_widths or int(math.log2(s)) > len(self.cnn_widths)):
      p.append(f"feature_stride {s} needs >= log2({s}) cnn_widths, got {len(self.cnn_widths)}")
    if not self.anchor_sizes or not self.anchor_ratios:
      p.append("anchor_sizes and anchor_ratios must not be empty")
    counts = [f.name for f in dataclasses.fields(self) if f.type == "int" and f.name != "attention_dim"]
    p += [f"{name} must be >= 1, got {getattr(self, name)}" for name in counts if getattr(self, name) < 1]
    for name in ("rpn_fg_fraction", "roi_fg_fraction", "rpn_nms_threshold", "detect_nms_threshold", "roi_fg_iou"):
      if not 0.0 <= getattr(self, name) <= 1.0:
        p.append(f"{name} must be in [0, 1], got {getattr(self, name)}")
    if self.rpn_bg_iou > self.rpn_fg_iou:
      p.append(f"rpn_bg_iou {self.rpn_bg_iou} > rpn_fg_iou {self.rpn_fg_iou}")
    return p

  @property
  def feature_dim(self) -> int:
    """C: channels of F_I, F_S and the RPN input."""
    return 1024 if self.backbone == "resnet50" else self.cnn_widths[-1]

  @property
  def num_anchors(self) -> int:
    """Anchors per feature-map cell."""
    return len(self.anchor_sizes) * len(self.anchor_ratios)

  def rpn_target_kwargs(self) -> dict[str, Any]:
    """The RPN sampling settings `sgvu.detection.losses.cma_losses` takes."""
    return dict(rpn_batch=self.rpn_batch, rpn_fg_fraction=self.rpn_fg_fraction, rpn_fg_iou=self.rpn_fg_iou,
                rpn_bg_iou=self.rpn_bg_iou)

  def replace(self, **changes) -> CMAConfig:
    return dataclasses.replace(self, **changes)

  def to_dict(self) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

  @classmethod
  def from_dict(cls, d: Mapping[str, Any], where: str | None = None) -> CMAConfig:
    return from_dict(cls, d, where or cls.__name__)


def paper_config(**changes) -> CMAConfig:
  """The release's settings: ResNet-50 C4 (stride 16, frozen BatchNorm), anchors 4/8/16/32 x stride, RPN 512 wide,
  12000 -> 2000 proposals in training and 6000 -> 300 in test (faster-rcnn.pytorch's defaults), 128 RoIs."""
  return CMAConfig(backbone="resnet50", feature_stride=16, batchnorm="frozen", attention_batchnorm="train",
                   anchor_sizes=(64.0, 128.0, 256.0, 512.0), rpn_dim=512, rpn_pre_nms_train=12000,
                   rpn_post_nms_train=2000, rpn_pre_nms_test=6000, rpn_post_nms_test=300, head_dim=2048,
                   ).replace(**changes)


# ------------------------------------------------------------------------------------------ layers

def batch_norm(mode: str, train: bool, name: str, **kwargs):
  """A BatchNorm as `mode` says (inside a compact method): 'frozen' normalises with the running statistics even in
  training, so they never change (the release's frozen BNs); 'train' uses and updates batch statistics when
  train=True; 'none' is the identity (no variables). PyTorch's momentum 0.1 is flax's 0.9."""
  if mode == "none":
    return lambda x: x
  return nn.BatchNorm(use_running_average=mode == "frozen" or not train, momentum=0.9, epsilon=1e-5,
                      name=name, **kwargs)


_conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")  # torchvision ResNet's kaiming init


def _pad(k: int):
  return ((k // 2, k // 2),) * 2  # PyTorch's symmetric padding (flax 'SAME' pads stride-2 convs asymmetrically)


class ConvNet(nn.Module):
  """The small backbone: images [N, H, W, 3] -> [N, ceil(H / stride), ceil(W / stride), widths[-1]]."""
  widths: tuple[int, ...]
  stride: int
  batchnorm: str

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    downs = int(math.log2(self.stride))
    for i, w in enumerate(self.widths):
      x = nn.Conv(w, (3, 3), strides=2 if i < downs else 1, padding=_pad(3), use_bias=self.batchnorm == "none",
                  kernel_init=_conv_init, name=f"conv{i}")(x)
      x = nn.relu(batch_norm(self.batchnorm, train, f"bn{i}")(x))
    return x


class Bottleneck(nn.Module):
  """torchvision's ResNet v1.5 bottleneck (stride on the 3x3 conv): [N, H, W, Cin] -> [N, H/s, W/s, 4 planes]."""
  planes: int
  stride: int = 1
  downsample: bool = False
  batchnorm: str = "frozen"

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    conv = functools.partial(nn.Conv, use_bias=self.batchnorm == "none", kernel_init=_conv_init)
    bn = functools.partial(batch_norm, self.batchnorm, train)
    y = nn.relu(bn("bn1")(conv(self.planes, (1, 1), name="conv1")(x)))
    y = nn.relu(bn("bn2")(conv(self.planes, (3, 3), self.stride, padding=_pad(3), name="conv2")(y)))
    y = bn("bn3")(conv(4 * self.planes, (1, 1), name="conv3")(y))
    if self.downsample:
      x = bn("downsample_bn")(conv(4 * self.planes, (1, 1), self.stride, name="downsample_conv")(x))
    return nn.relu(x + y)


class ResNet(nn.Module):
  """An optional ResNet stem (7x7/2 conv, BN, ReLU, 3x3/2 max-pool) and bottleneck stages named layer{first}...:
  RESNET50_C4 with the stem is conv1 .. layer3 (1024 channels, stride 16); RESNET50_C5 with first=4 is layer4."""
  stages: tuple[tuple[int, int, int], ...]
  stem: bool = True
  first: int = 1
  batchnorm: str = "frozen"

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    if self.stem:
      x = nn.Conv(64, (7, 7), 2, padding=_pad(7), use_bias=self.batchnorm == "none", kernel_init=_conv_init,
                  name="conv1")(x)
      x = nn.relu(batch_norm(self.batchnorm, train, "bn1")(x))
      x = nn.max_pool(x, (3, 3), (2, 2), padding=_pad(3))
    for i, (blocks, planes, stride) in enumerate(self.stages):
      for j in range(blocks):
        x = Bottleneck(planes, stride if j == 0 else 1, j == 0, self.batchnorm,
                       name=f"layer{self.first + i}_{j}")(x, train)
    return x


class FCHead(nn.Module):
  """The small region head: pooled [N, r, r, C] -> [N, dim] by two ReLU fc layers (torchvision's TwoMLPHead)."""
  dim: int

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    x = nn.relu(nn.Dense(self.dim, name="fc6")(x.reshape(x.shape[0], -1)))
    return nn.relu(nn.Dense(self.dim, name="fc7")(x))


class Theta(nn.Module):
  """theta_I / theta_S: 1x1 conv -> BN -> ReLU -> 1x1 conv (no bias), [..., C] -> [..., dim]."""
  dim: int
  batchnorm: str

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    init = nn.initializers.xavier_uniform()  # the release's init of the first conv
    x = nn.Conv(self.dim, (1, 1), use_bias=self.batchnorm == "none", kernel_init=init, name="conv1")(x)
    x = nn.relu(batch_norm(self.batchnorm, train, "bn")(x))
    return nn.Conv(self.dim, (1, 1), use_bias=False, name="conv2")(x)


class CrossModalAttention(nn.Module):
  """F_I [B, h, w, C] and F_S [B, k, hs, ws, C] -> A [B, h, w, 1], the mean over the k sketches of
  A_k = op(<s_k, theta_I(F_I)[x, y]> / dim), s_k = max over (hs, ws) of theta_S(F_S[:, k]), op a 1x1 conv
  on the one-channel map (a learnt scale and shift, initialised to the identity)."""
  dim: int
  batchnorm: str

  @nn.compact
  def __call__(self, f_img: Array, f_sk: Array, train: bool) -> Array:
    b, k, hs, ws, c = f_sk.shape
    t_img = Theta(self.dim, self.batchnorm, name="theta_image")(f_img, train)  # [B, h, w, D]
    t_sk = Theta(self.dim, self.batchnorm, name="theta_sketch")(f_sk.reshape(b * k, hs, ws, c), train)
    s = jnp.max(t_sk.reshape(b, k, hs * ws, self.dim), axis=2)  # [B, k, D]: spatial max-pool
    dot = jnp.einsum("bhwd,bkd->bkhw", t_img, s) / self.dim
    a = nn.Dense(1, kernel_init=nn.initializers.ones, name="op")(dot[..., None])  # 1x1 conv, one channel
    return jnp.mean(a, axis=1)


class RPNHead(nn.Module):
  """X [B, h, w, C] -> (objectness logits [B, h, w, A], deltas [B, h, w, A * 4]), A anchors per cell."""
  dim: int
  num_anchors: int

  @nn.compact
  def __call__(self, x: Array) -> tuple[Array, Array]:
    init = nn.initializers.normal(0.01)  # the release's RPN init
    x = nn.relu(nn.Conv(self.dim, (3, 3), padding=_pad(3), kernel_init=init, name="conv")(x))
    logits = nn.Conv(self.num_anchors, (1, 1), kernel_init=init, name="cls")(x)
    return logits, nn.Conv(4 * self.num_anchors, (1, 1), kernel_init=init, name="bbox")(x)


def propose(logits: Array, deltas: Array, anchors: Array, image_hw: tuple[int, int], pre_nms: int, post_nms: int,
            nms_threshold: float, min_size: float) -> tuple[Array, Array]:
  """One image's RPN output (logits [A], deltas [A, 4], anchors [A, 4]) -> (boxes [post_nms, 4], valid [post_nms]).

  The pre_nms best anchors are decoded, clipped to the image, too-small boxes dropped, then greedy NMS keeps
  up to post_nms, best first; the rest is zero boxes with valid False.
  """
  top, idx = jax.lax.top_k(logits, min(pre_nms, logits.shape[0]))
  boxes = box_ops.decode(deltas[idx], anchors[idx], clip_size=image_hw)
  ok = jnp.all(boxes[:, 2:] - boxes[:, :2] >= min_size, axis=-1) & jnp.isfinite(top)
  keep, valid = nms_ops.nms(boxes, top, nms_threshold, post_nms, valid=ok)
  return jnp.where(valid[:, None], boxes[jnp.maximum(keep, 0)], 0.0), valid


# ------------------------------------------------------------------------------------------ the model

class CMA(nn.Module):
  """Sketch-guided localization: images [B, H, W, 3] float and query sketches [B, k, S, S, 3] float (normalised)."""
  config: CMAConfig

  def setup(self):
    c = self.config
    if c.backbone == "cnn":
      self.img = ConvNet(c.cnn_widths, c.feature_stride, c.batchnorm)
      self.sketch = ConvNet(c.cnn_widths, c.feature_stride, c.batchnorm)
      self.region = FCHead(c.head_dim)
    else:
      self.img = ResNet(RESNET50_C4, batchnorm=c.batchnorm)
      self.sketch = ResNet(RESNET50_C4, batchnorm=c.batchnorm)
      self.region = ResNet(RESNET50_C5, stem=False, first=4, batchnorm=c.batchnorm)
    if c.num_sketches > 1 and c.sketch_fusion == "conv":
      self.sketch_fuse = nn.Conv(c.feature_dim, (1, 1))
    if c.use_attention:
      self.attention = CrossModalAttention(c.attention_dim or c.feature_dim, c.attention_batchnorm)
      self.attention_fuse = nn.Conv(c.feature_dim, (1, 1), use_bias=False,
                                    kernel_init=nn.initializers.xavier_uniform())
    self.rpn = RPNHead(c.rpn_dim, c.num_anchors)
    self.score_hidden = nn.Dense(c.score_hidden, kernel_init=nn.initializers.normal(0.01))
    self.score_out = nn.Dense(2, kernel_init=nn.initializers.normal(0.01))
    self.box_out = nn.Dense(4, kernel_init=nn.initializers.normal(0.001))

  def _sketch_maps(self, sketches: Array, train: bool) -> Array:
    """[B, k, S, S, 3] -> F_S [B, k', hs, ws, C]: k' = k for 'attention_mean', else the fused 1."""
    c = self.config
    if sketches.ndim != 5 or sketches.shape[1] != c.num_sketches:
      raise ValueError(f"sketches must be [B, k={c.num_sketches}, S, S, 3], got {sketches.shape}")
    b, k = sketches.shape[:2]
    f = self.sketch(sketches.reshape(b * k, *sketches.shape[2:]), train)
    f = f.reshape(b, k, *f.shape[1:])
    if k == 1 or c.sketch_fusion == "attention_mean":
      return f
    if c.sketch_fusion == "conv":  # [B, hs, ws, k C] -> [B, hs, ws, C]
      stacked = jnp.moveaxis(f, 1, 3).reshape(b, *f.shape[2:4], -1)
      return self.sketch_fuse(stacked)[:, None]
    return (jnp.mean if c.sketch_fusion == "mean" else jnp.max)(f, axis=1, keepdims=True)

  def _head(self, pooled: Array, train: bool) -> Array:
    """Region head: [N, r, r, C] -> [N, D]."""
    x = self.region(pooled, train)
    return x if self.config.backbone == "cnn" else jnp.mean(x, axis=(1, 2))  # layer4 + spatial mean

  def encode(self, images: Array, sketches: Array, train: bool = False) -> dict[str, Array]:
    """Backbones, attention, RPN and proposals: everything before the region head.

    Returns features X [B, h, w, C] (the RPN input), sketch_maps [B, k', hs, ws, C], attention [B, h, w]
    (use_attention only), rpn_logits [B, A], rpn_deltas [B, A, 4], anchors [A, 4] (A = h * w * anchors per
    cell, row-major over (y, x, ratio, size)), proposals [B, P, 4], proposal_valid [B, P], with P the
    post-NMS count of the train or test setting.
    """
    c = self.config
    f_img = self.img(images, train)
    f_sk = self._sketch_maps(sketches, train)
    out = {"sketch_maps": f_sk}
    if c.use_attention:
      a = self.attention(f_img, f_sk, train)  # [B, h, w, 1]
      x = self.attention_fuse(jnp.concatenate([f_img * a, f_img], axis=-1))
      out["attention"] = a[..., 0]
    else:
      x = f_img
    b, h, w, _ = x.shape
    logits, deltas = self.rpn(x)
    logits, deltas = logits.reshape(b, -1), deltas.reshape(b, -1, 4)
    anchors = box_ops.make_anchors((h, w), c.feature_stride, c.anchor_sizes, c.anchor_ratios)
    pre, post = (c.rpn_pre_nms_train, c.rpn_post_nms_train) if train else (c.rpn_pre_nms_test, c.rpn_post_nms_test)
    prop = functools.partial(propose, anchors=anchors, image_hw=images.shape[1:3], pre_nms=pre, post_nms=post,
                             nms_threshold=c.rpn_nms_threshold, min_size=c.rpn_min_size)
    # Proposals are inputs to the second stage, not a function to differentiate (as in Faster R-CNN).
    proposals, valid = jax.vmap(prop)(jax.lax.stop_gradient(logits), jax.lax.stop_gradient(deltas))
    return dict(out, features=x, rpn_logits=logits, rpn_deltas=deltas, anchors=anchors, proposals=proposals,
                proposal_valid=valid)

  def score_rois(self, features: Array, sketch_maps: Array, rois: Array, train: bool = False
                 ) -> tuple[Array, Array, Array]:
    """Features X [B, h, w, C], sketch maps [B, k', hs, ws, C], rois [B, R, 4] (image pixels) ->
    (score logits [B, R, 2] (index 1: the queried category), scores = softmax[..., 1] [B, R], deltas [B, R, 4])."""
    c = self.config
    b, r = rois.shape[:2]
    size = (c.roi_size, c.roi_size)
    align = functools.partial(roi_ops.roi_align, output_size=size, spatial_scale=1.0 / c.feature_stride,
                              sampling_ratio=c.roi_sampling_ratio)
    pooled = jax.vmap(align)(features, rois)  # [B, R, r, r, C]
    region = self._head(pooled.reshape(b * r, *pooled.shape[2:]), train).reshape(b, r, -1)
    bk, k = sketch_maps.shape[:2]
    maps = sketch_maps.reshape(bk * k, *sketch_maps.shape[2:])
    if c.backbone == "cnn":  # the fc head needs roi_size x roi_size: pool the whole sketch map
      hs, ws = maps.shape[1:3]
      whole = jnp.array([[0.0, 0.0, ws * c.feature_stride, hs * c.feature_stride]])
      maps = jax.vmap(lambda m: align(m, whole)[0])(maps)
    query = jnp.mean(self._head(maps, train).reshape(bk, k, -1), axis=1)  # [B, D]
    joint = jnp.concatenate([region, jnp.broadcast_to(query[:, None], region.shape[:2] + query.shape[1:])], -1)
    logits = self.score_out(self.score_hidden(joint))  # no nonlinearity between: the release's Sequential
    return logits, jax.nn.softmax(logits, axis=-1)[..., 1], self.box_out(region)

  def __call__(self, images: Array, sketches: Array, train: bool = False) -> dict[str, Array]:
    """Scores every proposal. Returns rpn_logits [B, A], rpn_deltas [B, A, 4], anchors [A, 4], proposals
    [B, P, 4], proposal_valid [B, P], score_logits [B, P, 2], scores [B, P] (probability that the proposal
    is the queried category), box_deltas [B, P, 4] (class-agnostic, ROI_BOX_WEIGHTS coding relative to the
    proposal), and attention [B, h, w] when use_attention."""
    enc = self.encode(images, sketches, train)
    logits, scores, deltas = self.score_rois(enc["features"], enc["sketch_maps"], enc["proposals"], train)
    out = {k: v for k, v in enc.items() if k not in ("features", "sketch_maps")}
    return dict(out, score_logits=logits, scores=scores, box_deltas=deltas)

  def train_forward(self, images: Array, sketches: Array, gt_boxes: Array, gt_valid: Array, gt_query: Array,
                    rng: Array, train: bool = True) -> dict[str, Array]:
    """The training pass: RPN outputs as `__call__`, and num_rois RoIs per image sampled from the proposals and
    the ground truth (`sgvu.detection.losses.sample_rois`) scored by the head.

    gt_boxes [B, G, 4] every object of the image (the RPN is class-agnostic), gt_valid [B, G] (padding False),
    gt_query [B, G] the boxes of the queried category. Adds rois [B, R, 4], roi_valid [B, R], roi_labels [B, R]
    int32 (1: a query box at IoU >= roi_fg_iou), roi_fg [B, R] (IoU >= roi_fg_iou with any box),
    roi_box_targets [B, R, 4], roi_logits [B, R, 2], roi_scores [B, R], roi_box_deltas [B, R, 4].
    """
    c = self.config
    enc = self.encode(images, sketches, train)
    sample = functools.partial(sample_rois, num=c.num_rois, fg_fraction=c.roi_fg_fraction, fg_iou=c.roi_fg_iou)
    rngs = jax.random.split(rng, images.shape[0])
    rois = jax.vmap(sample)(enc["proposals"], enc["proposal_valid"], gt_boxes, gt_valid, gt_query, rngs)
    logits, scores, deltas = self.score_rois(enc["features"], enc["sketch_maps"], rois["rois"], train)
    out = {k: v for k, v in enc.items() if k not in ("features", "sketch_maps")}
    return dict(out, **rois, roi_logits=logits, roi_scores=scores, roi_box_deltas=deltas)

  def detect(self, images: Array, sketches: Array) -> dict[str, Array]:
    """Final detections: boxes [B, D, 4] (refined proposals clipped to the image), scores [B, D], valid [B, D],
    best first, after NMS at detect_nms_threshold among proposals scoring above detect_score_threshold;
    D = detections_per_image."""
    c = self.config
    out = self(images, sketches, train=False)
    boxes = box_ops.decode(out["box_deltas"], out["proposals"], ROI_BOX_WEIGHTS, clip_size=images.shape[1:3])
    ok = out["proposal_valid"] & (out["scores"] > c.detect_score_threshold)

    def one(b, s, v):
      keep, kept = nms_ops.nms(b, s, c.detect_nms_threshold, c.detections_per_image, valid=v)
      i = jnp.maximum(keep, 0)
      return jnp.where(kept[:, None], b[i], 0.0), jnp.where(kept, s[i], 0.0), kept

    boxes, scores, valid = jax.vmap(one)(boxes, out["scores"], ok)
    return dict(boxes=boxes, scores=scores, valid=valid)
