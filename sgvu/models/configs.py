"""What the tower configs share: compute dtypes, the shared settings, validation, dict round trips.

`VisionConfig` (vit.py) and `TextConfig` (text.py) subclass `TowerConfig`, so
each tower is fully described by its own config: its architecture plus the
keyword-only settings below. `CLIPConfig` (clip.py) holds one value of each
shared setting and forwards it into both towers.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, TypeVar

import jax.numpy as jnp

from sgvu.models import layers

# Compute dtypes by name (params always stay float32).
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16,
          "float16": jnp.float16}
# The TowerConfig fields CLIPConfig forwards into both towers.
SHARED = ("embed_dim", "layer_norm_eps", "activation", "remat", "dtype", "attention")
# Settings that to_dict writes only when they differ from these defaults, so a
# config with the default serialises exactly as before the setting existed
# (saved clip_config.json files, bundle specs, cache keys). Absent keys load
# as the default.
WRITTEN_UNLESS_DEFAULT = {"attention": "auto"}

C = TypeVar("C")


def from_dict(cls: type[C], d: Any, where: str) -> C:
  """cls(**d), with a ValueError naming `where` and any unknown or invalid key."""
  if not isinstance(d, Mapping):
    raise ValueError(f"{where}: expected a mapping, got {type(d).__name__}")
  fields = {f.name for f in dataclasses.fields(cls)}
  unknown = sorted(set(d) - fields)
  if unknown:
    raise ValueError(
        f"{where}: unknown keys {unknown}; valid: {sorted(fields)}")
  try:
    return cls(**d)
  except TypeError as e:
    raise ValueError(f"{where}: {e}") from None


def shared_problems(cfg, prefix: str = "") -> list[str]:
  """What is wrong with cfg's shared settings (embed_dim, dtype, activation, attention)."""
  problems = []
  if cfg.embed_dim < 1:
    problems.append(f"{prefix}embed_dim must be >= 1, got {cfg.embed_dim}")
  if cfg.dtype not in DTYPES:
    problems.append(f"{prefix}dtype {cfg.dtype!r}; valid: {sorted(DTYPES)}")
  if cfg.activation not in layers.ACTIVATIONS:
    problems.append(f"{prefix}activation {cfg.activation!r}; valid: "
                    f"{sorted(layers.ACTIVATIONS)}")
  if cfg.attention not in layers.ATTENTIONS:
    problems.append(f"{prefix}attention {cfg.attention!r}; valid: "
                    f"{list(layers.ATTENTIONS)}")
  return problems


def drop_defaults(d: dict[str, Any]) -> dict[str, Any]:
  """d without the WRITTEN_UNLESS_DEFAULT keys that hold their default."""
  return {k: v for k, v in d.items()
          if k not in WRITTEN_UNLESS_DEFAULT or v != WRITTEN_UNLESS_DEFAULT[k]}


@dataclasses.dataclass(frozen=True, kw_only=True)
class TowerConfig:
  """Settings every transformer tower takes (keyword-only, after the tower's own fields)."""
  embed_dim: int = 512  # output of the bias-free projection (transformers' projection_dim)
  layer_norm_eps: float = 1e-5
  activation: str = "quick_gelu"  # a key of layers.ACTIVATIONS
  remat: bool = False  # rematerialise each block in the backward pass
  dtype: str = "float32"  # compute dtype of activations (a key of DTYPES); params stay float32
  # Attention kernel (layers.ATTENTIONS): 'auto' = cuDNN flash attention on a
  # CUDA GPU when dtype and head size allow it, else XLA; 'xla'; 'cudnn'
  # (raises where it cannot run). See layers.attention_implementation.
  attention: str = "auto"

  def __post_init__(self):
    problems = shared_problems(self) + self.problems()
    if problems:
      raise ValueError(f"Invalid {type(self).__name__}: " + "; ".join(problems))

  def problems(self) -> list[str]:
    """The tower's own checks (overridden)."""
    return []

  @property
  def compute_dtype(self):
    return DTYPES[self.dtype]

  def replace(self, **changes):
    return dataclasses.replace(self, **changes)

  def to_dict(self) -> dict[str, Any]:
    return drop_defaults(dataclasses.asdict(self))

  @classmethod
  def from_dict(cls, d: Mapping[str, Any], where: str | None = None):
    return from_dict(cls, d, where or cls.__name__)
