"""Context prediction for unsupervised SBIR (Doersch et al., ICCV 2015, as a student reproduction; seed 002).

The pretext task: given two patches of one image, predict which of the 8 neighbouring positions the second takes
relative to the first. Late fusion, as the paper: one shared AlexNet-style trunk encodes each patch to fc6, the two
fc6 vectors are concatenated, and fc7 -> fc8 classify the position. Retrieval then uses the trunk's fc6.

Our images are small (patches of ~16-24 px, whole images of ~64 px), so the trunk is AlexNet scaled down: stride-1
convs, max-pools 3x3/2, and a global average pool before fc6, so that one trunk takes any input size.

Models (variables {'params'} and, with batchnorm, {'batch_stats'}; with train=True apply with
mutable=['batch_stats']):
  ContextNet        the pretext network: __call__(a, b) -> position logits; embed(x) -> fc6.
  TrunkClassifier   trunk + a class head (photo classification: our stand-in for ImageNet pretraining).
  TrunkEmbedder     trunk alone (the supervised triplet baseline trains fc6 directly).
All keep the trunk under the submodule name 'trunk', so weights transfer path for path ('trunk/conv1/kernel').
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from sgvu.models.configs import DTYPES, from_dict
from sgvu.models.layers import param_with_axes

Array = jax.Array
LEVELS = ("lower", "all", "none")  # trunk_paths levels


@dataclasses.dataclass(frozen=True)
class ContextNetConfig:
  """Shapes of the trunk and the late-fusion head. Defaults: a small AlexNet for 16-64 px inputs."""
  widths: tuple[int, ...] = (32, 64, 96, 96, 64)  # conv1 .. conv5 channels
  stride1: int = 2  # conv1's stride (AlexNet's is 4): the step's cost on a 2-core CPU is mostly conv1-conv2
  # fc6 reads pool5 averaged to a fc6_grid x fc6_grid map (flattened), as AlexNet's fc6 reads its 6x6 pool5: the
  # feature keeps where things are, for any input size. 0: global average (a bag of local features, no layout).
  fc6_grid: int = 2
  fc6: int = 256  # the trunk's output (the retrieval feature)
  fc7: int = 256  # the fusion layer over the two concatenated fc6 vectors
  batchnorm: bool = False  # BatchNorm after every conv and fc6 (our stand-in for AlexNet's LRN)
  dropout: float = 0.0  # after fc7 (ContextNet only)
  dtype: str = "float32"  # compute dtype (a key of DTYPES); params stay float32
  num_positions: int = 8  # relative patch positions (the paper's 8 neighbours)

  def __post_init__(self):
    object.__setattr__(self, "widths", tuple(self.widths))  # lists from JSON -> hashable tuple
    problems = self.problems()
    if problems:
      raise ValueError("Invalid ContextNetConfig: " + "; ".join(problems))

  def problems(self) -> list[str]:
    p = []
    if len(self.widths) != 5 or any(int(w) < 1 for w in self.widths):
      p.append(f"widths must be 5 positive channel counts (conv1 .. conv5), got {self.widths}")
    p += [f"{name} must be >= 1, got {getattr(self, name)}" for name in ("fc6", "fc7", "num_positions", "stride1")
          if getattr(self, name) < 1]
    if self.fc6_grid < 0:
      p.append(f"fc6_grid must be >= 0, got {self.fc6_grid}")
    if not 0.0 <= self.dropout < 1.0:
      p.append(f"dropout must be in [0, 1), got {self.dropout}")
    if self.dtype not in DTYPES:
      p.append(f"dtype {self.dtype!r}; valid: {sorted(DTYPES)}")
    return p

  @property
  def compute_dtype(self) -> Any:
    return DTYPES[self.dtype]

  def replace(self, **changes) -> ContextNetConfig:
    return dataclasses.replace(self, **changes)

  def to_dict(self) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

  @classmethod
  def from_dict(cls, d: Mapping[str, Any], where: str | None = None) -> ContextNetConfig:
    return from_dict(cls, d, where or cls.__name__)


def trunk_paths(level: str) -> str:
  """A regex over '/'-joined variable paths selecting trunk layers, for initialisation ablations.

  'lower': conv1, bn1, conv2, bn2 ('trunk/conv1/kernel', 'batch_stats/trunk/bn2/mean'); 'all': everything under
  trunk/ (params and batch_stats); 'none': nothing. Meant for re.fullmatch, as `regex_matcher` and
  config.optim.param_lrs use it; the paths are those of `sgvu.train.flatten` and `Task.pretrained`.
  """
  if level not in LEVELS:
    raise ValueError(f"trunk_paths level {level!r}; valid: {list(LEVELS)}")
  return {"lower": r"(batch_stats/)?trunk/(conv|bn)[12]/.*",
          "all": r"(batch_stats/)?trunk/.*",
          "none": r"(?!)"}[level]  # an empty lookahead that always fails


# A small network: every parameter is replicated (like cma.py's convs), but boxed with explicit logical names so the
# sharding code sees each leaf's intent. Sharding 32-96 channels over 'model' would only add communication.
_he_init = nn.initializers.variance_scaling(2.0, "fan_in", "normal")  # ReLU layers without BN train from scratch


def _conv(features: int, k: int, use_bias: bool, dtype: Any, name: str, stride: int = 1) -> nn.Conv:
  return nn.Conv(features, (k, k), (stride, stride), padding="SAME", use_bias=use_bias, dtype=dtype, name=name,
                 kernel_init=param_with_axes(_he_init, (None, None, None, None)),
                 bias_init=param_with_axes(nn.initializers.zeros, (None,)))


def _dense(features: int, dtype: Any, name: str, use_bias: bool = True, init=_he_init) -> nn.Dense:
  return nn.Dense(features, use_bias=use_bias, dtype=dtype, name=name,
                  kernel_init=param_with_axes(init, (None, None)),
                  bias_init=param_with_axes(nn.initializers.zeros, (None,)))


def _pool(x: Array) -> Array:
  return nn.max_pool(x, (3, 3), (2, 2), padding="SAME")


def _grid_average(x: Array, grid: int) -> Array:
  """[B, H, W, C] -> [B, grid, grid, C] averages over equal cells (area resize where H, W are not multiples);
  grid 0: the global average [B, 1, 1, C]."""
  b, h, w, c = x.shape
  if grid == 0:
    return jnp.mean(x, axis=(1, 2), keepdims=True)
  if h % grid == 0 and w % grid == 0:
    return x.reshape(b, grid, h // grid, grid, w // grid, c).mean(axis=(2, 4))
  return jax.image.resize(x, (b, grid, grid, c), "linear", antialias=True)


class ContextTrunk(nn.Module):
  """AlexNet scaled down: normalised images [B, H, W, 3] (any H, W) -> fc6 features [B, fc6] (after the ReLU).

  conv1 5x5 (stride `stride1`) -> pool -> conv2 5x5 -> pool -> conv3, conv4, conv5 3x3 -> pool -> average to a
  fc6_grid x fc6_grid map -> fc6; each conv and fc6 is followed by (BN) and ReLU. AlexNet's LRN is left out: BatchNorm (config.batchnorm) is its modern stand-in.
  """
  config: ContextNetConfig

  def _norm(self, x: Array, train: bool, name: str) -> Array:
    if not self.config.batchnorm:
      return x  # no BN: no 'batch_stats' collection at all
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=self.config.compute_dtype,
                        scale_init=param_with_axes(nn.initializers.ones, (None,)),
                        bias_init=param_with_axes(nn.initializers.zeros, (None,)), name=name)(x)

  @nn.compact
  def __call__(self, x: Array, train: bool = False) -> Array:
    c = self.config
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f"ContextTrunk takes images [B, H, W, 3], got shape {x.shape}")
    dt, bias = c.compute_dtype, not c.batchnorm  # BN's shift replaces the bias
    for i, (w, k) in enumerate(zip(c.widths, (5, 5, 3, 3, 3)), start=1):
      x = nn.relu(self._norm(_conv(w, k, bias, dt, f"conv{i}", c.stride1 if i == 1 else 1)(x), train, f"bn{i}"))
      if i in (1, 2, 5):
        x = _pool(x)
    x = _grid_average(x, c.fc6_grid).reshape(x.shape[0], -1)  # any input size
    return nn.relu(self._norm(_dense(c.fc6, dt, "fc6", use_bias=bias)(x), train, "bn6"))


class ContextNet(nn.Module):
  """Late fusion: trunk(a), trunk(b) (shared weights) -> concat -> fc7 -> ReLU (-> dropout) -> fc8 position logits.

  With dropout > 0 and train=True, apply with rngs={'dropout': key}.
  """
  config: ContextNetConfig

  def setup(self):
    c = self.config
    self.trunk = ContextTrunk(c)
    self.fc7 = _dense(c.fc7, c.compute_dtype, "fc7")
    self.drop = nn.Dropout(c.dropout)
    self.fc8 = _dense(c.num_positions, c.compute_dtype, "fc8", init=nn.initializers.lecun_normal())

  def __call__(self, a: Array, b: Array, train: bool = False) -> Array:
    """Patches a, b [B, h, w, 3] (same shape) -> logits [B, num_positions] (float32) of b's position around a."""
    if a.shape != b.shape:
      raise ValueError(f"ContextNet takes two patches of one shape, got {a.shape} and {b.shape}")
    # One trunk pass over both patches: with BN in training, the batch statistics cover both.
    fa, fb = jnp.split(self.trunk(jnp.concatenate([a, b]), train), 2)
    x = nn.relu(self.fc7(jnp.concatenate([fa, fb], axis=-1)))
    if self.config.dropout > 0:
      x = self.drop(x, deterministic=not train)
    return self.fc8(x).astype(jnp.float32)

  def embed(self, x: Array, train: bool = False) -> Array:
    """Images [B, H, W, 3] -> trunk fc6 [B, fc6] (the retrieval feature)."""
    return self.trunk(x, train)


class TrunkClassifier(nn.Module):
  """The trunk with a class head: images -> class logits [B, num_classes] (float32). Pretrains the trunk as a photo
  classifier, our stand-in for ImageNet pretraining."""
  config: ContextNetConfig
  num_classes: int

  def setup(self):
    if self.num_classes < 1:
      raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
    self.trunk = ContextTrunk(self.config)
    self.head = _dense(self.num_classes, self.config.compute_dtype, "head", init=nn.initializers.lecun_normal())

  def __call__(self, x: Array, train: bool = False) -> Array:
    return self.head(self.trunk(x, train)).astype(jnp.float32)

  def embed(self, x: Array, train: bool = False) -> Array:
    """Images [B, H, W, 3] -> trunk fc6 [B, fc6]."""
    return self.trunk(x, train)


class TrunkEmbedder(nn.Module):
  """The trunk alone, for the supervised triplet baseline (the triplet loss acts on fc6)."""
  config: ContextNetConfig

  def setup(self):
    self.trunk = ContextTrunk(self.config)

  def __call__(self, x: Array, train: bool = False) -> Array:
    return self.embed(x, train)

  def embed(self, x: Array, train: bool = False) -> Array:
    """Images [B, H, W, 3] -> trunk fc6 [B, fc6]."""
    return self.trunk(x, train)
