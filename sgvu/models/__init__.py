"""Pure flax.linen models; each tower takes its own config (see docs in configs.py)."""

from sgvu.models.clip import CLIP, CLIPConfig, MODEL_PRESETS, get_preset
from sgvu.models.text import TextConfig, TextTransformer
from sgvu.models.vit import VisionConfig, VisionTransformer

__all__ = ["CLIP", "CLIPConfig", "MODEL_PRESETS", "TextConfig", "VisionConfig",
           "get_preset", "TextTransformer", "VisionTransformer"]
