"""Pseudo-word slots (seed 002's duet): tokenising with markers for both tokenizers, splicing the slot
vectors into the token-embedding sequence, and the text tower reading them where words would be."""

import functools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sgvu.models.clip import MODEL_PRESETS
from sgvu.models.pseudo_words import encode_with_slots, splice, tokenize_with_slots
from sgvu.models.text import TextTransformer, pool_positions
from sgvu.tokenizers import ClipBPETokenizer, WordTokenizer
from test_tokenizers import MERGES, tiny_vocab

# rbg keys: XLA's CPU compile of threefry costs seconds per random op.
key = functools.partial(jax.random.key, impl="rbg")
WORDS = ["a", "photo", "of", "red", "striped", "cat"]


def word_tok(context_length=16) -> WordTokenizer:
  return WordTokenizer(WORDS, context_length)


@functools.lru_cache(maxsize=None)
def bpe_tok(context_length=16) -> ClipBPETokenizer:
  return ClipBPETokenizer.from_vocab_merges(tiny_vocab(), MERGES, context_length)


def make_tok(name):
  return word_tok() if name == "word" else bpe_tok()


def test_word_tokenizer_slots_and_positions():
  tok = word_tok()
  tokens, kinds = tokenize_with_slots(tok, ["### * red striped", "a photo of * + cat", "red"])
  assert tokens.dtype == np.int32 and kinds.dtype == np.int32 and tokens.shape == kinds.shape == (3, 16)
  red, striped = 3 + WORDS.index("red"), 3 + WORDS.index("striped")
  assert tokens[0].tolist() == [1, 1, 1, 1, 1, red, striped, 2] + [0] * 8
  assert kinds[0].tolist() == [0, 1, 1, 1, 2, 0, 0, 0] + [0] * 8
  assert kinds[1, :8].tolist() == [0, 0, 0, 0, 2, 3, 0, 0]
  np.testing.assert_array_equal(tokens[2], tok(["red"])[0])
  assert not kinds[2].any()


@pytest.mark.parametrize("name", ["word", "bpe"])
def test_ordinary_tokens_equal_the_tokenizers_own(name):
  tok = make_tok(name)
  texts = ["### * a cat.", "a photo of * + cat", "+ photo #", "*"]
  tokens, kinds = tokenize_with_slots(tok, texts)
  for n, text in enumerate(texts):
    plain = tok(["".join(c for c in text if c not in "#*+")])[0]
    slots = kinds[n] > 0
    np.testing.assert_array_equal(tokens[n][slots], tok.bos_token_id)  # slot id = bos
    np.testing.assert_array_equal(tokens[n][~slots], plain[:16 - slots.sum()])
    ends = np.flatnonzero(tokens[n] == tok.eos_token_id)
    used = 2 + slots.sum() + int(np.argmax(plain == tok.eos_token_id)) - 1
    assert ends[0] == used - 1  # the end token right after the last word or slot
    assert tokens[n, 0] == tok.bos_token_id and kinds[n, 0] == 0
    assert [1 + "#*+".index(c) for c in text if c in "#*+"] == kinds[n][slots].tolist()


@pytest.mark.parametrize("name", ["word", "bpe"])
def test_too_long_raises_naming_the_text(name):
  tok = make_tok(name)
  with pytest.raises(ValueError, match=r"'### \* cat' needs 7 tokens"):
    tokenize_with_slots(type(tok)(tok.vocab, 6) if name == "word" else
                        ClipBPETokenizer.from_vocab_merges(tiny_vocab(), MERGES, 6), ["cat", "### * cat"])
  # A chunk longer than the context on its own is not truncated into fitting.
  long = " ".join(["cat"] * 20) + " *"
  with pytest.raises(ValueError, match="needs 23 tokens"):
    tokenize_with_slots(tok, [long])


def test_tokenizer_errors_pass_through():
  with pytest.raises(KeyError, match="unknown word 'dog'"):
    tokenize_with_slots(word_tok(), ["### * red dog"])
  with pytest.raises(ValueError, match="distinct"):
    tokenize_with_slots(word_tok(), ["red"], markers="##")
  with pytest.raises(TypeError, match="list of strings"):
    tokenize_with_slots(word_tok(), "red")


def splice_reference(embedding, tokens, kinds, fills):
  out = embedding[tokens].copy()
  for n in range(tokens.shape[0]):
    seen = {}
    for i in range(tokens.shape[1]):
      k = int(kinds[n, i])
      if k:
        j = seen.get(k, 0)
        fill = fills[k - 1]
        out[n, i] = fill[j] if fill.ndim == 2 else fill[n, j]
        seen[k] = j + 1
  return out


def random_case(seed=0, n=3, length=10, vocab=20, width=8):
  rng = np.random.default_rng(seed)
  embedding = rng.normal(size=(vocab, width)).astype(np.float32)
  tokens = rng.integers(0, vocab, (n, length)).astype(np.int32)
  kinds = np.zeros((n, length), np.int32)
  kinds[0, [1, 2, 3, 6]] = [1, 1, 1, 2]
  kinds[1, [2, 4, 5, 7]] = [2, 1, 2, 1]  # interleaved; fewer kind-1 slots than fills
  fills = [rng.normal(size=(n, 3, width)).astype(np.float32), rng.normal(size=(n, 2, width)).astype(np.float32)]
  return embedding, tokens, kinds, fills


def test_splice_matches_numpy_loop_and_jits():
  embedding, tokens, kinds, fills = random_case()
  expected = splice_reference(embedding, tokens, kinds, fills)
  got = splice(embedding, tokens, kinds, fills)
  chex.assert_shape(got, tokens.shape + (8,))
  np.testing.assert_array_equal(np.asarray(got), expected)
  np.testing.assert_array_equal(np.asarray(jax.jit(splice)(embedding, tokens, kinds, fills)), expected)


def test_splice_broadcast_and_no_slots():
  embedding, tokens, kinds, fills = random_case(1)
  shared = fills[0][0]  # [3, W] for every row
  got = splice(embedding, tokens, kinds, [shared, fills[1]])
  np.testing.assert_array_equal(np.asarray(got), splice_reference(embedding, tokens, kinds, [shared, fills[1]]))
  np.testing.assert_array_equal(
      np.asarray(got), np.asarray(splice(embedding, tokens, kinds, [np.broadcast_to(shared, (3, 3, 8)), fills[1]])))
  plain = np.asarray(jnp.take(embedding, tokens, axis=0))
  np.testing.assert_array_equal(np.asarray(splice(embedding, tokens, np.zeros_like(kinds), fills)), plain)
  np.testing.assert_array_equal(np.asarray(splice(embedding, tokens, np.zeros_like(kinds), [])), plain)
  with pytest.raises(ValueError, match="no fill is given"):
    splice(embedding, tokens, kinds, fills[:1])
  with pytest.raises(ValueError, match="fills\\[0\\] has 2"):
    splice(embedding, tokens, kinds, [fills[0][:, :2], fills[1]])


def text_setup(name, pool):
  """Tokenizer, tiny text config and random params (numpy: no compile of an init)."""
  tok = make_tok(name)
  cfg = MODEL_PRESETS["tiny"].text.replace(eos_token_id=tok.eos_token_id, pool=pool)
  shapes = nn.unbox(jax.eval_shape(TextTransformer(cfg).init, key(0), jnp.zeros((1, 16), jnp.int32)))["params"]
  rng = np.random.default_rng(0)
  params = jax.tree.map(lambda s: jnp.asarray(rng.normal(0.0, 0.3, s.shape), s.dtype), shapes)
  return tok, cfg, params


@functools.partial(jax.jit, static_argnums=0)  # one compile per config for all the tower runs
def tower_runs(cfg, params, original, tokens, kinds, fills):
  expected = TextTransformer(cfg).apply({"params": params}, original)
  got = encode_with_slots(params, cfg, tokens, kinds, fills)
  grads = jax.grad(lambda f: jnp.sum(encode_with_slots(params, cfg, tokens, kinds, f) ** 2))(fills)
  return expected, got, grads


@pytest.mark.parametrize("name,pool", [("word", "eos"), ("bpe", "eos"), ("bpe", "argmax")])
def test_pooling_position_is_unchanged_by_slots(name, pool):
  tok = make_tok(name)
  original = tok(["a photo of a cat", "a cat"])
  tokens, _ = tokenize_with_slots(tok, ["### * cat", "* cat"])
  where = np.asarray(pool_positions(jnp.asarray(tokens), tok.eos_token_id, pool))
  np.testing.assert_array_equal(where, np.asarray(pool_positions(jnp.asarray(original), tok.eos_token_id, pool)))
  np.testing.assert_array_equal(where, np.argmax(tokens == tok.eos_token_id, axis=1))  # still at the eos


@pytest.mark.parametrize("name,pool", [("word", "eos"), ("bpe", "argmax")])
def test_fills_of_the_real_words_give_the_plain_text_embedding(name, pool):
  """The pseudo-words enter the real embedding sequence: filling the slots with the embeddings of the
  words they stand for reproduces the text tower on the original text exactly, pooling included."""
  tok, cfg, params = text_setup(name, pool)
  original = tok(["a photo of a cat", "a photo of a cat"])
  tokens, kinds = tokenize_with_slots(tok, ["### * cat", "### * cat"])
  embedding = np.asarray(params["token_embedding"])
  prompt = embedding[original[0, 1:4]]  # "a photo of", shared: [3, W]
  word = embedding[original[:, 4:5]]  # the second "a", per row: [N, 1, W]
  expected, got, grads = tower_runs(cfg, params, original, tokens, kinds, [prompt, word])
  chex.assert_shape(got, (2, cfg.embed_dim))
  np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-6, atol=1e-6)
  chex.assert_tree_all_finite(grads)
  assert all(float(jnp.abs(g).sum()) > 0 for g in grads)  # the fills are read, and trainable
