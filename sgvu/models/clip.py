"""CLIP: the combined configuration, named presets, and the two-tower module.

`CLIPConfig` combines a `VisionConfig` (vit.py) and a `TextConfig` (text.py)
with the settings both towers share (embed_dim, layer_norm_eps, activation,
remat, dtype, attention), which it forwards into them: `cfg.vision` / `cfg.text` alone
build their tower. `CLIP` nests `img` (VisionTransformer) and `txt`
(TextTransformer) and owns the scalar `logit_scale` (stored as a log, like
OpenAI / transformers).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from sgvu.models import layers
from sgvu.models.configs import DTYPES, SHARED, drop_defaults, from_dict, shared_problems
from sgvu.models.text import TEXT_POOLS, TextConfig, TextTransformer
from sgvu.models.vit import STEMS, VisionConfig, VisionTransformer

__all__ = ["CLIP", "CLIPConfig", "DTYPES", "MODEL_PRESETS", "STEMS",
           "TEXT_POOLS", "TextConfig", "VisionConfig", "get_preset"]
TOWERS = {"vision": VisionConfig, "text": TextConfig}


@dataclasses.dataclass(frozen=True)
class CLIPConfig:
  """Both towers' configs and the shared settings, forwarded into them.

  After construction `vision.<s>` and `text.<s>` equal `<s>` for every shared
  setting s (the towers' own values are overwritten). `to_dict` writes each
  shared setting once, at the top level (the format of every saved
  clip_config.json); `from_dict` also accepts tower dicts that repeat them,
  if they agree.
  """
  vision: VisionConfig
  text: TextConfig
  embed_dim: int
  layer_norm_eps: float = 1e-5
  activation: str = "quick_gelu"
  remat: bool = False
  dtype: str = "float32"  # compute dtype of activations
  attention: str = "auto"  # attention kernel, see TowerConfig.attention

  def __post_init__(self):
    problems = shared_problems(self)
    for tower, cls in TOWERS.items():
      if not isinstance(getattr(self, tower), cls):
        problems.append(f"{tower} must be a {cls.__name__}, got "
                        f"{type(getattr(self, tower)).__name__}")
    if problems:
      raise ValueError("Invalid CLIPConfig: " + "; ".join(problems))
    shared = {k: getattr(self, k) for k in SHARED}
    for tower in TOWERS:
      cfg = getattr(self, tower)
      if any(getattr(cfg, k) != v for k, v in shared.items()):
        object.__setattr__(self, tower, cfg.replace(**shared))

  @property
  def compute_dtype(self):
    return DTYPES[self.dtype]

  def replace(self, **changes) -> "CLIPConfig":
    return dataclasses.replace(self, **changes)

  def to_dict(self) -> dict[str, Any]:
    d = dataclasses.asdict(self)
    for tower in TOWERS:
      for k in SHARED:
        del d[tower][k]
    return drop_defaults(d)

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> "CLIPConfig":
    d = dict(d)
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    for tower, tower_cls in TOWERS.items():
      sub = d.pop(tower, None)
      if isinstance(sub, Mapping):
        sub = dict(sub)
        for k in SHARED:
          if k in sub:
            value, top = sub.pop(k), d.get(k, defaults[k])
            if top is dataclasses.MISSING:
              d[k] = top = value
            if value != top:
              raise ValueError(
                  f"{tower}.{k} = {value!r} differs from {k} = {top!r}: "
                  f"CLIPConfig shares one {k} between its towers")
      d[tower] = from_dict(tower_cls, sub, tower)
    return from_dict(cls, d, "CLIPConfig")

  @classmethod
  def from_hf(cls, hf: Mapping[str, Any]) -> "CLIPConfig":
    """From a transformers CLIPModel config.json (as a dict)."""
    try:
      hv, ht = hf["vision_config"], hf["text_config"]
    except KeyError as e:
      raise ValueError(f"CLIP config.json lacks {e.args[0]!r} (keys: "
                       f"{sorted(hf)}); is it a CLIPModel config?") from None

    def get(sub, name, key, default=None):
      if key in sub:
        return sub[key]
      if default is None:
        raise ValueError(f"CLIP config.json: {name}.{key} is missing")
      return default

    acts = {get(hv, "vision_config", "hidden_act", "quick_gelu"),
            get(ht, "text_config", "hidden_act", "quick_gelu")}
    if len(acts) != 1:
      raise ValueError(f"CLIP config.json: towers use different hidden_act "
                       f"{sorted(acts)}; sgvu supports one for both")
    epss = {get(hv, "vision_config", "layer_norm_eps", 1e-5),
            get(ht, "text_config", "layer_norm_eps", 1e-5)}
    if len(epss) != 1:
      raise ValueError(f"CLIP config.json: towers use different "
                       f"layer_norm_eps {sorted(epss)}")
    eos = int(get(ht, "text_config", "eos_token_id", 2))
    vision = VisionConfig(
        image_size=int(get(hv, "vision_config", "image_size")),
        patch_size=int(get(hv, "vision_config", "patch_size")),
        width=int(get(hv, "vision_config", "hidden_size")),
        layers=int(get(hv, "vision_config", "num_hidden_layers")),
        heads=int(get(hv, "vision_config", "num_attention_heads")),
        mlp_dim=int(get(hv, "vision_config", "intermediate_size")))
    text = TextConfig(
        vocab_size=int(get(ht, "text_config", "vocab_size")),
        context_length=int(get(ht, "text_config", "max_position_embeddings")),
        width=int(get(ht, "text_config", "hidden_size")),
        layers=int(get(ht, "text_config", "num_hidden_layers")),
        heads=int(get(ht, "text_config", "num_attention_heads")),
        mlp_dim=int(get(ht, "text_config", "intermediate_size")),
        eos_token_id=eos,
        pool="argmax" if eos == 2 else "eos")
    return cls(vision=vision, text=text,
               embed_dim=int(hf.get("projection_dim", 512)),
               layer_norm_eps=float(epss.pop()), activation=acts.pop())


def _openai(image_size, patch, v_width, v_layers, v_heads, t_width, t_heads,
            embed_dim) -> CLIPConfig:
  return CLIPConfig(
      vision=VisionConfig(image_size, patch, v_width, v_layers, v_heads,
                          4 * v_width),
      text=TextConfig(vocab_size=49408, context_length=77, width=t_width,
                      layers=12, heads=t_heads, mlp_dim=4 * t_width,
                      eos_token_id=49407),
      embed_dim=embed_dim)


MODEL_PRESETS: dict[str, CLIPConfig] = {
    # Tests only. eos 2 matches sgvu.tokenizers.WordTokenizer.
    "tiny": CLIPConfig(
        vision=VisionConfig(image_size=32, patch_size=8, width=32, layers=2,
                            heads=2, mlp_dim=64),
        text=TextConfig(vocab_size=100, context_length=16, width=32, layers=2,
                        heads=2, mlp_dim=64, eos_token_id=2),
        embed_dim=24),
    # The embedded SynthSketch world on a 2-core CPU: 48 px, 36 patches, 4
    # layers of width 128; a conv stem with one residual conv per stage,
    # because a patch-conv ViT trained from scratch for minutes memorises its
    # photos (docs/clip.md has the trials).
    "synth-s": CLIPConfig(
        vision=VisionConfig(image_size=48, patch_size=8, width=128, layers=4,
                            heads=4, mlp_dim=512, stem="conv", stem_depth=1),
        text=TextConfig(vocab_size=1024, context_length=24, width=128,
                        layers=3, heads=4, mlp_dim=512, eos_token_id=2),
        embed_dim=128),
    "B/32": _openai(224, 32, 768, 12, 12, 512, 8, 512),
    "B/16": _openai(224, 16, 768, 12, 12, 512, 8, 512),
    "L/14": _openai(224, 14, 1024, 24, 16, 768, 12, 768),
}


def get_preset(name: str, **overrides) -> CLIPConfig:
  """A named preset, optionally with top-level fields replaced."""
  if name not in MODEL_PRESETS:
    raise ValueError(
        f"Unknown CLIP preset {name!r}; valid: {sorted(MODEL_PRESETS)}")
  return MODEL_PRESETS[name].replace(**overrides)


class CLIP(nn.Module):
  """Image and text towers with a shared embedding space."""
  config: CLIPConfig

  def setup(self):
    self.img = VisionTransformer(self.config.vision, name="img")
    self.txt = TextTransformer(self.config.text, name="txt")
    self.logit_scale = self.param(
        "logit_scale",
        layers.param_with_axes(nn.initializers.constant(math.log(1 / 0.07)),
                               ()),
        ())

  def encode_image(self, images: jax.Array, **kwargs):
    """[B, H, W, 3] normalised images -> [B, E] unnormalised embeddings.

    kwargs go to VisionTransformer (prompts, deep_prompts, return_tokens).
    """
    return self.img(images, **kwargs)

  def encode_text(self, tokens: jax.Array, **kwargs):
    """int32 [B, L] tokens -> [B, E] unnormalised embeddings.

    kwargs go to TextTransformer (input_embeds, return_tokens).
    """
    return self.txt(tokens, **kwargs)

  def __call__(self, images: jax.Array, tokens: jax.Array):
    """Returns (img_emb, txt_emb, exp(logit_scale)); embeddings unnormalised.

    The third value is the multiplicative temperature (like open_clip's
    forward), not the stored log.
    """
    return (self.encode_image(images), self.encode_text(tokens),
            jnp.exp(self.logit_scale))
