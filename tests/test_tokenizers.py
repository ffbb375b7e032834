"""Tokenizers: CLIP BPE against transformers' own, and the word tokenizer."""

import json

import numpy as np
import pytest

from sgvu import tokenizers
from sgvu.tokenizers import ClipBPETokenizer, WordTokenizer

LETTERS = "abcdefghijklmnopqrstuvwxyz"
MERGES = ["a t</w>", "c at</w>", "p h", "o t", "ph ot", "phot o</w>",
          "o f</w>"]


def tiny_vocab() -> dict[str, int]:
  tokens = list(LETTERS) + [c + "</w>" for c in LETTERS]
  tokens += [m.replace(" ", "") for m in MERGES]
  tokens += [".", ".</w>", "<|startoftext|>", "<|endoftext|>"]
  return {t: i for i, t in enumerate(tokens)}


def write_tiny_tokenizer(directory, context_length=None):
  directory.mkdir(parents=True, exist_ok=True)
  (directory / "vocab.json").write_text(json.dumps(tiny_vocab()))
  (directory / "merges.txt").write_text(
      "#version: 0.2\n" + "\n".join(MERGES) + "\n")
  if context_length:
    (directory / "config.json").write_text(json.dumps(
        {"text_config": {"max_position_embeddings": context_length}}))
  return directory


TEXTS = ["a photo of a cat.", "A CAT", "photo", ""]


def test_clip_bpe_matches_transformers(tmp_path):
  from transformers import CLIPTokenizer
  d = write_tiny_tokenizer(tmp_path / "tok", context_length=12)
  tok = ClipBPETokenizer.from_dir(str(d))
  assert tok.context_length == 12
  v = tiny_vocab()
  assert tok.bos_token_id == v["<|startoftext|>"]
  assert tok.eos_token_id == v["<|endoftext|>"]
  assert tok.vocab_size == len(v)
  ids = tok(TEXTS)
  assert ids.dtype == np.int32 and ids.shape == (len(TEXTS), 12)
  # Hand-derived BPE of the first text.
  expected = [v[t] for t in ["<|startoftext|>", "a</w>", "photo</w>", "of</w>",
                             "a</w>", "cat</w>", ".</w>", "<|endoftext|>"]]
  assert ids[0, :8].tolist() == expected
  assert (ids[0, 8:] == tok.pad_token_id).all()
  # Same ids as transformers' own padded/truncated output.
  ref = CLIPTokenizer.from_pretrained(str(d))(
      TEXTS, padding="max_length", max_length=12, truncation=True)["input_ids"]
  np.testing.assert_array_equal(ids, np.array(ref, np.int32))
  assert ids[3, :2].tolist() == [tok.bos_token_id, tok.eos_token_id]


def test_clip_bpe_truncation_keeps_end_token(tmp_path):
  d = write_tiny_tokenizer(tmp_path / "tok")
  tok = ClipBPETokenizer.from_dir(str(d), context_length=5)
  ids = tok(["a photo of a cat."])
  v = tiny_vocab()
  assert ids[0].tolist() == [v["<|startoftext|>"], v["a</w>"], v["photo</w>"],
                             v["of</w>"], v["<|endoftext|>"]]


def test_clip_bpe_from_vocab_merges_equals_from_dir(tmp_path):
  d = write_tiny_tokenizer(tmp_path / "tok")
  a = ClipBPETokenizer.from_dir(str(d), context_length=10)
  b = ClipBPETokenizer.from_vocab_merges(tiny_vocab(), MERGES, 10)
  np.testing.assert_array_equal(a(TEXTS), b(TEXTS))


def test_broken_tokenizer_is_detected(tmp_path):
  from transformers import CLIPTokenizer
  d = write_tiny_tokenizer(tmp_path / "tok")
  broken = CLIPTokenizer(vocab_file=str(d / "vocab.json"),
                         merges_file=str(d / "merges.txt"))
  with pytest.raises(ValueError, match="broken CLIP tokenizer"):
    ClipBPETokenizer(broken, 8)


def test_clip_bpe_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="no tokenizer files"):
    ClipBPETokenizer.from_dir(str(tmp_path))
  d = write_tiny_tokenizer(tmp_path / "tok")
  with pytest.raises(ValueError, match="context length"):
    ClipBPETokenizer.from_dir(str(d))
  tok = ClipBPETokenizer.from_dir(str(d), context_length=8)
  with pytest.raises(TypeError, match="list of strings"):
    tok("a cat")


def test_word_tokenizer_ids_and_roundtrip(tmp_path):
  tok = WordTokenizer(["a", "red", "cat", "on", "grass"], context_length=8)
  assert (tok.vocab_size, tok.eos_token_id) == (8, 2)
  ids = tok(["A red cat, on grass!", "cat"])
  assert ids.dtype == np.int32 and ids.shape == (2, 8)
  assert ids[0].tolist() == [1, 3, 4, 5, 6, 7, 2, 0]
  assert ids[1].tolist() == [1, 5, 2, 0, 0, 0, 0, 0]
  assert tok.decode(ids[0]) == "a red cat on grass"
  short = WordTokenizer(tok.vocab, context_length=4)(["a red cat on grass"])
  assert short[0].tolist() == [1, 3, 4, 2]
  tok.save(str(tmp_path))
  again = tokenizers.load_tokenizer(str(tmp_path))
  assert isinstance(again, WordTokenizer)
  np.testing.assert_array_equal(again(["red cat"]), tok(["red cat"]))


def test_word_tokenizer_errors():
  tok = WordTokenizer(["red", "cat"], context_length=6)
  with pytest.raises(KeyError, match="unknown word 'dog'"):
    tok(["red dog"])
  with pytest.raises(ValueError, match="duplicates: \\['cat'\\]"):
    WordTokenizer(["cat", "red", "cat"], 6)
  with pytest.raises(ValueError, match="single lowercase words"):
    WordTokenizer(["red cat"], 6)
  with pytest.raises(ValueError, match="valid: \\['clip_bpe', 'word'\\]"):
    tokenizers.get_tokenizer("sentencepiece", "/nonexistent")
