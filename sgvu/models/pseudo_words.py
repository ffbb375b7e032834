"""Pseudo-word tokens in the text tower's real embedding sequence (seed 002, the sketch and text duet).

A query such as "### * red striped" is tokenised with one *slot* per marker character: '#' (kind 1) for
the learnt prompt tokens P^L, '*' (kind 2) for the sketch's pseudo-word s^w, '+' (kind 3) for the
compositional Delta^w. `splice` looks up the ordinary tokens in the text tower's own token embedding
and writes the given vectors into the slots, so `TextTransformer(input_embeds=...)` (and a transformers
CLIP checkpoint converted to it) reads the pseudo-words exactly where a word would be.
"""

from __future__ import annotations

import copy
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sgvu.models.text import TextConfig, TextTransformer

DEFAULT_MARKERS = "#*+"


def _pieces(tokenizer: Any, chunk: str, text: str) -> list[int]:
  """Ids of `chunk` without its start / end tokens, never truncated.

  The tokenizer is called on a shallow copy whose context is long enough for any encoding of the
  chunk (byte-level BPE: at most 4 tokens a character), so a long chunk comes back whole and the
  caller's length check sees it, instead of a truncated row that silently drops words.
  """
  wide = copy.copy(tokenizer)
  try:
    wide.context_length = max(int(tokenizer.context_length), 4 * len(chunk) + 2)
  except (AttributeError, TypeError):
    wide = tokenizer
  row = np.asarray(wide([chunk]))[0].tolist()
  bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
  start = row.index(bos) if bos in row else -1
  if eos not in row[start + 1:]:
    raise ValueError(f"text {text!r}: the tokenizer gave no end token for {chunk!r}: {row}")
  end = row.index(eos, start + 1)
  if end == len(row) - 1 and len(row) <= 4 * len(chunk) + 2:
    # The row is full: it may have been truncated (a tokenizer that ignored the wider context).
    raise ValueError(f"text {text!r}: {chunk!r} fills a whole context of {len(row)} tokens (truncated?)")
  return row[start + 1:end]


def tokenize_with_slots(tokenizer: Any, texts: Sequence[str],
                        markers: str = DEFAULT_MARKERS) -> tuple[np.ndarray, np.ndarray]:
  """Tokenises texts whose marker characters each stand for one pseudo-word slot.

  Args:
    tokenizer: a `sgvu.tokenizers` tokenizer (WordTokenizer or ClipBPETokenizer, or any callable
      list[str] -> int [N, context_length] with bos/eos/pad_token_id and context_length).
    texts: e.g. "### * red striped": three slots of kind 1, one of kind 2, then the words.
    markers: markers[k - 1] is the character of slot kind k (kind 0: an ordinary token).

  Returns:
    tokens int32 [N, context_length]: [bos] + pieces + [eos] + pad, a slot's id being bos.
    kinds int32 [N, context_length]: 1 + markers.index(ch) at the slots, 0 elsewhere.

  The words between markers are tokenised chunk by chunk, so a marker glued to a word ("red*cat")
  separates it like a space would; with markers set off by spaces the ordinary tokens equal the
  tokenizer's own encoding of the text without its markers.

  Raises:
    ValueError naming the text if it needs more than context_length tokens (a slot is never truncated
    away); the tokenizer's own errors (e.g. WordTokenizer's unknown word) pass through.
  """
  if isinstance(texts, str):
    raise TypeError("tokenize_with_slots expects a list of strings, got one str")
  if not markers or len(set(markers)) != len(markers):
    raise ValueError(f"markers must be distinct characters, got {markers!r}")
  length = int(tokenizer.context_length)
  bos, eos, pad = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
  # A slot's id is only a placeholder (splice overwrites its embedding) but it still decides pooling:
  # bos is a valid id (the lookup stays in range), it is never the eos that pool='eos' looks for, and
  # bos < eos in CLIP's vocabulary (49406 < 49407), so the legacy pool='argmax' still picks the eos.
  slot_id = bos
  tokens = np.full((len(texts), length), pad, np.int32)
  kinds = np.zeros((len(texts), length), np.int32)
  for n, text in enumerate(texts):
    if not isinstance(text, str):
      raise TypeError(f"tokenize_with_slots expects strings, got {type(text).__name__}: {text!r}")
    ids, row_kinds, chunk = [bos], [0], ""
    for ch in text + markers[0]:  # a sentinel marker flushes the last chunk
      if ch not in markers:
        chunk += ch
        continue
      if chunk.strip():
        pieces = _pieces(tokenizer, chunk, text)
        ids += pieces
        row_kinds += [0] * len(pieces)
      chunk = ""
      ids.append(slot_id)
      row_kinds.append(1 + markers.index(ch))
    ids[-1], row_kinds[-1] = eos, 0  # the sentinel's place becomes the end token
    if len(ids) > length:
      raise ValueError(f"text {text!r} needs {len(ids)} tokens (slots included) but the context "
                       f"length is {length}")
    tokens[n, :len(ids)] = ids
    kinds[n, :len(ids)] = row_kinds
  return tokens, kinds


def splice(token_embedding: jax.Array, tokens: jax.Array, kinds: jax.Array,
           fills: Sequence[jax.Array]) -> jax.Array:
  """The token-embedding lookup with slots filled: [V, W], [N, L], [N, L] -> [N, L, W].

  The j-th occurrence (left to right) of kind k in row n gets fills[k - 1][n, j]; fills[k - 1] is
  [N, n_k, W], or [n_k, W] shared by all rows (e.g. the learnt prompt tokens). Rows may use fewer
  than n_k slots of a kind. Pure jnp and jit-able (occurrences are counted with a cumsum); with
  concrete `kinds` it checks that every kind has a fill and enough of them (under jit an excess
  occurrence would reuse the last fill).
  """
  tokens, kinds = jnp.asarray(tokens), jnp.asarray(kinds)
  if tokens.ndim != 2 or kinds.shape != tokens.shape:
    raise ValueError(f"tokens and kinds must both be [N, L]; got {tokens.shape}, {kinds.shape}")
  x = jnp.take(token_embedding, tokens, axis=0)
  n, width = tokens.shape[0], token_embedding.shape[-1]
  if not isinstance(kinds, jax.core.Tracer):
    counts = [np.asarray((kinds == k).sum(1)).max(initial=0)
              for k in range(1, int(np.asarray(kinds).max(initial=0)) + 1)]
    for k, count in enumerate(counts, start=1):
      have = -1 if k > len(fills) else jnp.shape(fills[k - 1])[-2]
      if count and count > have:
        raise ValueError(f"a row has {count} slots of kind {k} but "
                         + ("no fill is given for it" if have < 0 else f"fills[{k - 1}] has {have}"))
  for k, fill in enumerate(fills, start=1):
    fill = jnp.asarray(fill)
    if fill.ndim == 2:
      fill = jnp.broadcast_to(fill[None], (n,) + fill.shape)
    if fill.ndim != 3 or fill.shape[0] != n or fill.shape[2] != width:
      raise ValueError(f"fills[{k - 1}] must be [N={n}, n_k, W={width}] or [n_k, W]; got {fill.shape}")
    if fill.shape[1] == 0:
      continue
    mask = kinds == k
    occurrence = jnp.clip(jnp.cumsum(mask, axis=1) - 1, 0, fill.shape[1] - 1)
    gathered = jnp.take_along_axis(fill, occurrence[..., None], axis=1)
    x = jnp.where(mask[..., None], gathered.astype(x.dtype), x)
  return x


def encode_with_slots(text_params: Any, text_config: TextConfig, tokens: jax.Array, kinds: jax.Array,
                      fills: Sequence[jax.Array]) -> jax.Array:
  """The text tower on the spliced sequence -> [N, E] (unnormalised; pooled where `tokens` says)."""
  embedding = nn.meta.unbox(text_params["token_embedding"])
  embeds = splice(embedding, tokens, kinds, fills)
  return TextTransformer(text_config).apply({"params": text_params}, jnp.asarray(tokens),
                                            input_embeds=embeds)
