"""Pure flax.linen models."""

from sgvu.models.clip import (CLIP, CLIPConfig, MODEL_PRESETS, TextConfig,
                              VisionConfig, get_preset)
from sgvu.models.text import TextTransformer
from sgvu.models.vit import VisionTransformer

__all__ = ["CLIP", "CLIPConfig", "MODEL_PRESETS", "TextConfig", "VisionConfig",
           "get_preset", "TextTransformer", "VisionTransformer"]
