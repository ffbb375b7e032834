"""The font of the pictures' labels: DejaVu Sans, the TrueType font matplotlib ships.

PIL's built-in default font draws spaces almost zero-wide at small sizes ("1 / rank vssketch completion");
matplotlib is already a dependency, so its DejaVu Sans is on every machine that runs sgvu.
"""

from __future__ import annotations

import functools

from PIL import ImageFont


@functools.lru_cache(maxsize=8)
def label_font(size: int = 11) -> ImageFont.FreeTypeFont:
  from matplotlib import font_manager  # pylint: disable=g-import-not-at-top
  path = font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans"), fallback_to_default=True)
  return ImageFont.truetype(path, size)
