"""Text tokenizers: CLIP's BPE (through transformers) and a closed word vocab.

Both are callables `list[str] -> np.int32 [N, context_length]`: each row is
[start, ..., end, pad, ...]; a long text is truncated keeping the end token
(the text tower pools there). Both expose `eos_token_id`, `bos_token_id`,
`pad_token_id`, `vocab_size` and `context_length`.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Callable, Mapping, Sequence

import numpy as np

WORD_TOKENIZER_FILE = "word_tokenizer.json"
_MAX_SANE_CONTEXT = 100_000  # transformers' "no limit" is 1e30


def _pack(rows: Sequence[Sequence[int]], context_length: int, eos: int,
          pad: int) -> np.ndarray:
  out = np.full((len(rows), context_length), pad, np.int32)
  for i, ids in enumerate(rows):
    ids = list(ids)
    if len(ids) > context_length:
      ids = ids[:context_length - 1] + [eos]
    out[i, :len(ids)] = ids
  return out


def _check_texts(texts) -> list[str]:
  if isinstance(texts, str):
    raise TypeError("tokenizer expects a list of strings, got one str")
  texts = list(texts)
  for t in texts:
    if not isinstance(t, str):
      raise TypeError(f"tokenizer expects strings, got {type(t).__name__}: "
                      f"{t!r}")
  return texts


class ClipBPETokenizer:
  """CLIP's byte-level BPE via transformers' CLIPTokenizer."""

  def __init__(self, hf_tokenizer: Any, context_length: int,
               source: str = "<in memory>", expected_vocab: int | None = None):
    self.hf = hf_tokenizer
    self.source = source
    self.context_length = int(context_length)
    if self.context_length < 2:
      raise ValueError(f"{source}: context_length {context_length} < 2")
    vocab = hf_tokenizer.get_vocab()
    # transformers 5's CLIPTokenizer(vocab_file=..., merges_file=...) ignores
    # both files and silently yields a 2-3 token tokenizer.
    if len(vocab) <= 3 or (expected_vocab and len(vocab) < expected_vocab):
      raise ValueError(
          f"{source}: broken CLIP tokenizer with {len(vocab)} tokens"
          + (f" (vocab.json has {expected_vocab})" if expected_vocab else "")
          + "; build it with ClipBPETokenizer.from_dir(dir) or "
          "from_vocab_merges(vocab=..., merges=...), not vocab_file=/"
          "merges_file=")
    self.bos_token_id = hf_tokenizer.bos_token_id
    self.eos_token_id = hf_tokenizer.eos_token_id
    if self.bos_token_id is None or self.eos_token_id is None:
      raise ValueError(f"{source}: CLIP tokenizer lacks a start or end token")
    pad = hf_tokenizer.pad_token_id
    self.pad_token_id = self.eos_token_id if pad is None else pad
    self.vocab_size = max(len(hf_tokenizer), max(vocab.values()) + 1)

  @classmethod
  def from_dir(cls, directory: str,
               context_length: int | None = None) -> "ClipBPETokenizer":
    """From a transformers checkpoint (or convert_clip output) directory."""
    from transformers import CLIPTokenizer  # ~2 s import; only when needed
    if not os.path.isdir(directory):
      raise FileNotFoundError(f"tokenizer directory {directory} not found")
    files = set(os.listdir(directory))
    if "tokenizer.json" not in files and not {"vocab.json",
                                              "merges.txt"} <= files:
      raise FileNotFoundError(
          f"{directory}: no tokenizer files (need tokenizer.json or "
          f"vocab.json + merges.txt)")
    expected = None
    if "vocab.json" in files:
      with open(os.path.join(directory, "vocab.json")) as f:
        expected = len(json.load(f))
    try:
      hf = CLIPTokenizer.from_pretrained(directory)
    except Exception as e:  # transformers raises many types here
      raise ValueError(f"{directory}: cannot load CLIP tokenizer: {e}") from e
    if context_length is None:
      context_length = context_length_from_dir(directory, hf)
    return cls(hf, context_length, source=directory, expected_vocab=expected)

  @classmethod
  def from_vocab_merges(cls, vocab: Mapping[str, int],
                        merges: Sequence[str | tuple[str, str]],
                        context_length: int) -> "ClipBPETokenizer":
    """From an in-memory vocab dict and merges ('a b' or ('a', 'b'))."""
    from transformers import CLIPTokenizer
    pairs = [tuple(m.split()) if isinstance(m, str) else tuple(m)
             for m in merges]
    bad = [m for m in pairs if len(m) != 2]
    if bad:
      raise ValueError(f"merges must be pairs; bad entries: {bad[:3]}")
    hf = CLIPTokenizer(vocab=dict(vocab), merges=pairs)
    return cls(hf, context_length, expected_vocab=len(vocab))

  def __call__(self, texts: Sequence[str]) -> np.ndarray:
    texts = _check_texts(texts)
    rows = self.hf(texts, add_special_tokens=True)["input_ids"] if texts else []
    return _pack(rows, self.context_length, self.eos_token_id,
                 self.pad_token_id)

  def save(self, directory: str) -> None:
    self.hf.save_pretrained(directory)


def context_length_from_dir(directory: str, hf_tokenizer: Any = None) -> int:
  """The text context length a checkpoint directory was trained with."""
  for name, path in (("clip_config.json", ("text", "context_length")),
                     ("config.json", ("text_config",
                                      "max_position_embeddings"))):
    file = os.path.join(directory, name)
    if os.path.exists(file):
      with open(file) as f:
        value: Any = json.load(f)
      for key in path:
        value = value.get(key) if isinstance(value, dict) else None
      if value is not None:
        return int(value)
  limit = getattr(hf_tokenizer, "model_max_length", None)
  if limit and limit < _MAX_SANE_CONTEXT:
    return int(limit)
  raise ValueError(f"{directory}: cannot tell the context length (no "
                   f"clip_config.json / config.json); pass context_length")


_WORD = re.compile(r"[^\W_]+")  # letters and digits; the rest separates


class WordTokenizer:
  """Closed-vocabulary word tokenizer (SynthSketch captions).

  ids: 0 pad, 1 start, 2 end, vocab[i] -> i + 3. Text is lowercased and split
  on anything that is not a letter or digit; an unknown word raises.
  """
  pad_token_id = 0
  bos_token_id = 1
  eos_token_id = 2
  num_special = 3

  def __init__(self, vocab: Sequence[str], context_length: int):
    vocab = list(vocab)
    problems = [w for w in vocab
                if not isinstance(w, str) or self.split(w) != [w]]
    if problems:
      raise ValueError(f"WordTokenizer vocab entries must be single lowercase "
                       f"words; bad: {problems[:5]}")
    dupes = sorted({w for w in vocab if vocab.count(w) > 1})
    if dupes:
      raise ValueError(f"WordTokenizer vocab has duplicates: {dupes[:5]}")
    if context_length < 2:
      raise ValueError(f"context_length {context_length} < 2")
    self.vocab = vocab
    self.context_length = int(context_length)
    self._ids = {w: i + self.num_special for i, w in enumerate(vocab)}
    self.vocab_size = len(vocab) + self.num_special

  @staticmethod
  def split(text: str) -> list[str]:
    return _WORD.findall(text.lower())

  def encode(self, text: str) -> list[int]:
    ids = [self.bos_token_id]
    for word in self.split(text):
      if word not in self._ids:
        raise KeyError(f"unknown word {word!r} in text {text!r} (vocabulary "
                       f"of {len(self.vocab)} words)")
      ids.append(self._ids[word])
    return ids + [self.eos_token_id]

  def __call__(self, texts: Sequence[str]) -> np.ndarray:
    texts = _check_texts(texts)
    return _pack([self.encode(t) for t in texts], self.context_length,
                 self.eos_token_id, self.pad_token_id)

  def decode(self, ids: Sequence[int]) -> str:
    words = []
    for i in ids:
      i = int(i)
      if i == self.eos_token_id:
        break
      if i >= self.num_special:
        words.append(self.vocab[i - self.num_special])
    return " ".join(words)

  def save(self, directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, WORD_TOKENIZER_FILE), "w") as f:
      json.dump({"vocab": self.vocab, "context_length": self.context_length},
                f, indent=1)

  @classmethod
  def from_dir(cls, directory: str,
               context_length: int | None = None) -> "WordTokenizer":
    file = os.path.join(directory, WORD_TOKENIZER_FILE)
    try:
      with open(file) as f:
        d = json.load(f)
      vocab, saved_length = d["vocab"], d["context_length"]
    except (OSError, ValueError, KeyError, TypeError) as e:
      raise ValueError(f"{file}: not a word tokenizer file ({e})") from e
    return cls(vocab, context_length or saved_length)


Tokenizer = Callable[[Sequence[str]], np.ndarray]

# name -> constructor from a directory.
TOKENIZERS: dict[str, Callable[..., Tokenizer]] = {
    "clip_bpe": ClipBPETokenizer.from_dir,
    "word": WordTokenizer.from_dir,
}


def get_tokenizer(name: str, directory: str,
                  context_length: int | None = None) -> Tokenizer:
  if name not in TOKENIZERS:
    raise ValueError(f"Unknown tokenizer {name!r}; valid: {sorted(TOKENIZERS)}")
  return TOKENIZERS[name](directory, context_length=context_length)


def load_tokenizer(directory: str,
                   context_length: int | None = None) -> Tokenizer:
  """Whichever tokenizer `directory` holds (word vocab first, then BPE)."""
  if os.path.exists(os.path.join(directory, WORD_TOKENIZER_FILE)):
    return get_tokenizer("word", directory, context_length)
  return get_tokenizer("clip_bpe", directory, context_length)
