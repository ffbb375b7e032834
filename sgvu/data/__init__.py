"""Sketch datasets by name: `get_source('sketchy', root=...)`.

Every dataset gives the record interface of `sgvu.data.base`. Real datasets are
read from a local copy in their original layout (docs/datasets.md); `synth` is
the embedded procedural world and needs no files.
"""

from __future__ import annotations

from sgvu.data.base import (BadSample, DataError, PhotoItem, Sketch, SketchItem, Source,
                            Split)
from sgvu.data.registry import DATASETS, get_source


def category_text(name: str) -> str:
  """A class folder name as words for prompts: 'car_(sedan)' -> 'car (sedan)'."""
  return " ".join(name.replace("_", " ").replace("-", " ").split())


__all__ = ["BadSample", "DATASETS", "DataError", "PhotoItem", "Sketch", "SketchItem",
           "Source", "Split", "category_text", "get_source"]
