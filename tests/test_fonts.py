"""Picture labels use a TrueType font whose spaces are visible (PIL's default draws 'vs sketch' as 'vssketch')."""

from PIL import ImageFont

from sgvu import fonts


def test_label_font_has_real_spaces():
  font = fonts.label_font(11)
  assert isinstance(font, ImageFont.FreeTypeFont) and "DejaVu" in font.getname()[0]
  space = font.getlength("vs sketch") - font.getlength("vssketch")
  assert space >= 0.28 * 11, space  # DejaVu Sans: ~0.32 em; PIL's default font: ~0.2 em
  assert fonts.label_font(11) is font  # loaded once
