"""Models by name, rebuilt from JSON alone (what an exported inference bundle records).

    spec = describe(model)   # {"name": "fg_sbir", "config": {...}}, JSON-able
    model = build(spec)      # an equal module; build(describe(m)) == m

A config holds the module's constructor fields: tuples become lists, tower /
CLIP configs their `to_dict()`, nested modules (level_query's backbone and
head) their own spec. Missing keys take the module's defaults. Imports no
sgvu.tasks module.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import flax.linen as nn

from sgvu.models.clip import CLIP, CLIPConfig
from sgvu.models.fg_sbir import FGSBIRModel
from sgvu.models.heads import EmbeddingHead, LevelHeads, SmallCNN
from sgvu.models.level_query import LevelQuery
from sgvu.models.policy import GaussianPolicy
from sgvu.models.prompted import PromptedImageEncoder
from sgvu.models.text import TextConfig, TextTransformer
from sgvu.models.vit import VisionConfig, VisionTransformer

# A field codec: (encode value -> JSON-able, decode (JSON value, where) -> value).
Codec = tuple[Callable[[Any], Any], Callable[[Any, str], Any]]


@dataclasses.dataclass(frozen=True)
class Entry:
  cls: type[nn.Module]
  to_config: Callable[[nn.Module], dict[str, Any]]
  from_config: Callable[[Mapping[str, Any]], nn.Module]


def _to_json(v):
  if isinstance(v, (tuple, list)):
    return [_to_json(x) for x in v]
  return v


def _from_json(v, where):
  del where
  if isinstance(v, list):
    return tuple(_from_json(x, None) for x in v)
  return v


def _config_codec(cls) -> Codec:
  """A config dataclass with to_dict / from_dict (None allowed: an optional field)."""
  def decode(v, where):
    if v is None:
      return None
    try:
      return cls.from_dict(v)
    except ValueError as e:
      raise ValueError(f"{where}: {e}") from None
  return (lambda c: None if c is None else c.to_dict()), decode


def _module_codec() -> Codec:
  def decode(v, where):
    try:
      return build(v)
    except ValueError as e:
      raise ValueError(f"{where}: {e}") from None
  return (lambda m: describe(m)), decode


def _fields(cls) -> list[str]:
  return [f.name for f in dataclasses.fields(cls) if f.init and f.name not in ("parent", "name")]


def _entry(cls, **codecs: Codec) -> Entry:
  names = _fields(cls)

  def to_config(module):
    return {k: codecs[k][0](getattr(module, k)) if k in codecs else _to_json(getattr(module, k)) for k in names}

  def from_config(config):
    if not isinstance(config, Mapping):
      raise ValueError(f"{cls.__name__}: config must be a mapping, got {type(config).__name__}")
    unknown = sorted(set(config) - set(names))
    if unknown:
      raise ValueError(f"{cls.__name__}: unknown config keys {unknown}; valid: {names}")
    kwargs = {k: (codecs[k][1] if k in codecs else _from_json)(v, f"{cls.__name__}.{k}")
              for k, v in config.items()}
    try:
      return cls(**kwargs)
    except (TypeError, ValueError) as e:
      raise ValueError(f"{cls.__name__}: {e}") from None

  return Entry(cls, to_config, from_config)


MODELS: dict[str, Entry] = {
    "clip": _entry(CLIP, config=_config_codec(CLIPConfig)),
    "vision_transformer": _entry(VisionTransformer, config=_config_codec(VisionConfig)),
    "text_transformer": _entry(TextTransformer, config=_config_codec(TextConfig)),
    "prompted_image_encoder": _entry(PromptedImageEncoder, vision=_config_codec(VisionConfig)),
    "fg_sbir": _entry(FGSBIRModel, vision=_config_codec(VisionConfig)),
    "small_cnn": _entry(SmallCNN),
    "embedding_head": _entry(EmbeddingHead),
    "level_heads": _entry(LevelHeads),
    "gaussian_policy": _entry(GaussianPolicy),
    "level_query": _entry(LevelQuery, backbone=_module_codec(), head=_module_codec()),
}


def describe(module: nn.Module) -> dict[str, Any]:
  """{"name": registry name, "config": JSON-able constructor fields} of a registered module."""
  for name, entry in MODELS.items():
    if type(module) is entry.cls:  # pylint: disable=unidiomatic-typecheck
      return {"name": name, "config": entry.to_config(module)}
  raise ValueError(f"{type(module).__name__} is not a registered model; registered: "
                   f"{sorted(e.cls.__name__ for e in MODELS.values())}")


def build(spec: Mapping[str, Any]) -> nn.Module:
  """The module `describe` described: spec = {"name": one of MODELS, "config": {...}}."""
  if not isinstance(spec, Mapping):
    raise ValueError(f"model spec must be a mapping {{'name', 'config'}}, got {type(spec).__name__}")
  unknown = sorted(set(spec) - {"name", "config"})
  if unknown or "name" not in spec:
    raise ValueError(f"model spec needs 'name' (and 'config'); unknown keys {unknown}")
  name = spec["name"]
  if name not in MODELS:
    raise ValueError(f"Unknown model {name!r}; valid: {sorted(MODELS)}")
  return MODELS[name].from_config(spec.get("config", {}))
