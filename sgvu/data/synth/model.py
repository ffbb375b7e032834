"""How a SynthSketch category is declared: a parametric part model.

    @category("cup", options={"handle": {"yes": "a handle", "no": "no handle"}})
    def cup(a: Attr) -> list[Part]:
      w = a.u("width", 0.5, 0.8)          # a continuous proportion
      if a.opt("handle") == "yes": ...    # a named part variation

`options` are discrete part variations a caption names ("with a handle");
a phrase '' means the caption stays silent about that value. `a.u` draws
continuous proportions and `a.pick` unnamed discrete variations; both are
cached per name, so asking twice gives the same value.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from sgvu.data.synth.geometry import Part

BuildFn = Callable[["Attr"], list[Part]]


@dataclasses.dataclass(frozen=True)
class Category:
  name: str
  build: BuildFn
  options: dict[str, dict[str, str]]
  # Instance colours this category may take (None: every palette colour).
  colours: tuple[str, ...] | None = None


REGISTRY: dict[str, Category] = {}


def category(name: str, options: dict[str, dict[str, str]] | None = None,
             colours: Sequence[str] | None = None) -> Callable[[BuildFn], BuildFn]:
  """Registers a part model under `name` (a caption noun, may be two words)."""

  def register(fn: BuildFn) -> BuildFn:
    if name in REGISTRY:
      raise ValueError(f"SynthSketch category {name!r} registered twice")
    REGISTRY[name] = Category(name, fn, dict(options or {}), tuple(colours) if colours else None)
    return fn

  return register


def yes_no(phrase: str) -> dict[str, str]:
  """The common two-valued option: present (named in captions) or absent (silent)."""
  return {"yes": phrase, "no": ""}


class Attr:
  """The fine-grained attributes of one instance, drawn from one generator."""

  def __init__(self, cat: Category, rng: np.random.Generator):
    self.category = cat.name
    self._rng = rng
    self.options = {k: _choice(rng, sorted(v)) for k, v in sorted(cat.options.items())}
    self.values: dict[str, float | str] = {}

  def opt(self, name: str) -> str:
    if name not in self.options:
      raise KeyError(f"category {self.category!r} has no option {name!r}; options: {sorted(self.options)}")
    return self.options[name]

  def u(self, name: str, lo: float = 0.0, hi: float = 1.0) -> float:
    if name not in self.values:
      self.values[name] = float(lo + (hi - lo) * self._rng.random())
    return self.values[name]  # type: ignore[return-value]

  def pick(self, name: str, choices: Sequence):
    if name not in self.values:
      self.values[name] = _choice(self._rng, list(choices))
    return self.values[name]

  def coin(self, name: str, p: float = 0.5) -> bool:
    return self.u(name) < p


def _choice(rng: np.random.Generator, seq: Sequence):
  return seq[int(rng.integers(len(seq)))]
