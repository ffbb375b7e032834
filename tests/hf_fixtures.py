"""A tiny random transformers CLIP checkpoint directory with a working BPE tokenizer.

What a user passes as `--config.model.clip_init=hf:DIR`, at toy size: written by
transformers itself (`CLIPModel.save_pretrained`: config.json +
model.safetensors), plus vocab.json / merges.txt that `CLIPTokenizer.from_pretrained`
reads, and a preprocessor_config.json. Building it imports torch + transformers
(~8 s), so use it from a session- or module-scoped fixture.

Also `persistent_compilation_cache`: end-to-end tests that run several
experiments compile the same encoders again and again.
"""

from __future__ import annotations

import contextlib
import json
import os
import string
from typing import Iterator

# A few merges so that common prompt words ("photo", "of", "a") are single tokens.
MERGES = ("p h", "o t", "ph ot", "phot o</w>", "o f</w>", "s k", "e t", "c h</w>")
SPECIAL = ("<|startoftext|>", "<|endoftext|>")


def bpe_vocab() -> dict[str, int]:
  """Letters, digits and punctuation (alone and word-final), the merges, the special tokens."""
  chars = string.ascii_lowercase + string.digits + "().,-'&"
  tokens = list(chars) + [c + "</w>" for c in chars]
  tokens += [m.replace(" ", "") for m in MERGES] + list(SPECIAL)
  return {t: i for i, t in enumerate(dict.fromkeys(tokens))}


def write_hf_clip(directory: str, *, image_size: int = 32, patch_size: int = 8, width: int = 32,
                  layers: int = 2, embed_dim: int = 24, context_length: int = 16, seed: int = 0) -> str:
  """Writes a random CLIPModel + tokenizer to `directory`; returns it.

  Vision: width `width`, `layers` blocks, 2 heads; text: width 32, 2 blocks,
  4 heads, the end token `<|endoftext|>` (pooled by id, transformers' rule).
  """
  import torch
  from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

  vocab = bpe_vocab()
  cfg = CLIPConfig(
      text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                       num_attention_heads=4, max_position_embeddings=context_length,
                       bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
                       pad_token_id=vocab["<|endoftext|>"]),
      vision_config=dict(image_size=image_size, patch_size=patch_size, hidden_size=width,
                         intermediate_size=2 * width, num_hidden_layers=layers, num_attention_heads=2),
      projection_dim=embed_dim)
  torch.manual_seed(seed)
  model = CLIPModel(cfg).eval()
  os.makedirs(directory, exist_ok=True)
  model.save_pretrained(directory)
  with open(os.path.join(directory, "vocab.json"), "w") as f:
    json.dump(vocab, f)
  with open(os.path.join(directory, "merges.txt"), "w") as f:
    f.write("#version: 0.2\n" + "\n".join(MERGES) + "\n")
  CLIPImageProcessor(size={"shortest_edge": image_size},
                     crop_size={"height": image_size, "width": image_size}).save_pretrained(directory)
  return directory


@contextlib.contextmanager
def persistent_compilation_cache(directory: str) -> Iterator[None]:
  """JAX's persistent compilation cache in `directory` (every compile cached), restored on exit."""
  import jax
  from jax.experimental.compilation_cache import compilation_cache
  keys = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
          "jax_persistent_cache_min_entry_size_bytes")
  old = {k: getattr(jax.config, k) for k in keys}
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  compilation_cache.reset_cache()
  compilation_cache.set_cache_dir(directory)
  try:
    yield
  finally:
    for k, v in old.items():
      jax.config.update(k, v)
    compilation_cache.reset_cache()
