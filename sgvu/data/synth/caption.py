"""Captions from instance attributes, over a closed vocabulary.

Captions are lower-case words separated by single spaces (no punctuation), so
`caption.split()` tokenises them and `vocabulary()` lists every word.
"""

from __future__ import annotations

from typing import Sequence

from sgvu.data.synth import catalog, palette
from sgvu.data.synth.instance import Instance

_GLUE = ("a", "an", "and", "with", "next", "to")


def article(word: str) -> str:
  return "an" if word[0] in "aeiou" else "a"


def appearance(inst: Instance) -> str:
  """'red striped shoe' / 'plain red shoe' (no article)."""
  if inst.texture == "plain":
    return f"plain {inst.colour} {inst.category}"
  return f"{inst.colour} {inst.texture} {inst.category}"


def object_phrase(inst: Instance, with_parts: bool = True) -> str:
  """'a red striped shoe with a high heel and laces'."""
  words = appearance(inst)
  text = f"{article(words)} {words}"
  if with_parts:
    cat = catalog.get(inst.category)
    phrases = [cat.options[k][v] for k, v in sorted(inst.options.items()) if cat.options[k][v]]
    if phrases:
      text += " with " + " and ".join(phrases)
  return text


def caption(inst: Instance) -> str:
  """'a red striped shoe with a high heel on a grassy field next to a ball'."""
  text = f"{object_phrase(inst)} {palette.PLACES[inst.place]}"
  if inst.neighbour:
    text += f" next to {article(inst.neighbour)} {inst.neighbour}"
  return text


def partial_caption(inst: Instance, rng, keep: float) -> str:
  """A caption with each attribute phrase (colour, texture, parts, place, neighbour) kept with
  probability `keep`, e.g. 'a striped shoe on a grassy field'. The category is always named:
  captions whose attributes vary stop InfoNCE from matching on attribute words alone."""
  kept = lambda: rng.random() < keep
  colour, texture = kept(), kept()
  look = [inst.texture] * texture + [inst.colour] * colour  # 'plain red', as appearance() says it
  if inst.texture != "plain":
    look.reverse()  # 'red striped'
  words = look + [inst.category]
  text = f"{article(words[0])} {' '.join(words)}"
  cat = catalog.get(inst.category)
  phrases = [cat.options[k][v] for k, v in sorted(inst.options.items()) if cat.options[k][v] and kept()]
  if phrases:
    text += " with " + " and ".join(phrases)
  if kept():
    text += " " + palette.PLACES[inst.place]
  if inst.neighbour and kept():
    text += f" next to {article(inst.neighbour)} {inst.neighbour}"
  return text


def scene_caption(insts: Sequence[Instance], place: str) -> str:
  """'a red striped shoe and a plain blue cup on a grassy field'."""
  return " and ".join(object_phrase(i, with_parts=False) for i in insts) + " " + palette.PLACES[place]


def vocabulary() -> list[str]:
  """Sorted list of every word any caption (object or scene) can contain."""
  words = set(_GLUE) | set(palette.COLOURS) | set(palette.TEXTURES) | set(palette.NEIGHBOURS)
  for phrase in palette.PLACES.values():
    words.update(phrase.split())
  for name in catalog.ALL_CATEGORIES:
    words.update(name.split())
    for values in catalog.get(name).options.values():
      for phrase in values.values():
        words.update(phrase.split())
  return sorted(words)
