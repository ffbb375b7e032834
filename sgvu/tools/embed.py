"""Embeds images and texts with a CLIP checkpoint.

  python -m sgvu.tools.embed --clip DIR --images a.png b.jpg \
      --texts "a photo of a cat" "a sketch of a dog" --out E.npz

DIR: a transformers CLIP directory or a convert_clip output. E.npz holds
`image_embeds` [N, D] and `text_embeds` [M, D]: projected, unnormalised
features (what transformers' get_image_features / get_text_features return),
plus `images` and `texts` (the inputs, in order).
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

import jax
import numpy as np

from sgvu import clip_io, compile_cache, preprocess, tokenizers
from sgvu.models.clip import CLIP


class Embedder:
  """Jitted CLIP image/text embedding with the checkpoint's preprocessing."""

  def __init__(self, clip_dir: str, batch_size: int = 32,
               precision: str = "highest"):
    self.cfg, params = clip_io.load_clip(clip_dir)
    directory = clip_dir[3:] if clip_dir.startswith("hf:") else clip_dir
    self.params = jax.device_put(params)
    self.batch_size = batch_size
    # Accelerators default to reduced-precision float32 matmuls; embeddings
    # should match transformers' float32 numbers.
    self.precision = precision
    self.preprocess = preprocess.ClipPreprocess.from_dir(
        directory, self.cfg.vision.image_size)
    self._directory = directory
    self._tokenizer = None
    model = CLIP(self.cfg)
    self._image_fn = jax.jit(lambda p, x: model.apply(
        {"params": p}, x, method=CLIP.encode_image))
    self._text_fn = jax.jit(lambda p, t: model.apply(
        {"params": p}, t, method=CLIP.encode_text))

  @property
  def tokenizer(self) -> tokenizers.Tokenizer:
    if self._tokenizer is None:  # only loaded when texts are embedded
      self._tokenizer = tokenizers.load_tokenizer(
          self._directory, self.cfg.text.context_length)
    return self._tokenizer

  def _batched(self, fn, inputs: np.ndarray) -> np.ndarray:
    outs = []
    for i in range(0, len(inputs), self.batch_size):
      chunk = inputs[i:i + self.batch_size]
      n = len(chunk)
      if n < self.batch_size and len(inputs) > self.batch_size:
        # Pad the last chunk to the batch size: one compiled shape.
        pad = np.repeat(chunk[-1:], self.batch_size - n, axis=0)
        chunk = np.concatenate([chunk, pad])
      with jax.default_matmul_precision(self.precision):
        outs.append(np.asarray(fn(self.params, chunk))[:n])
    return np.concatenate(outs) if outs else np.zeros(
        (0, self.cfg.embed_dim), np.float32)

  def embed_images(self, paths: Sequence[str]) -> np.ndarray:
    return self._batched(self._image_fn,
                         preprocess.load_images(list(paths), self.preprocess))

  def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
    """Already preprocessed [N, H, W, 3] float32."""
    return self._batched(self._image_fn, np.asarray(pixels, np.float32))

  def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
    if not texts:
      return np.zeros((0, self.cfg.embed_dim), np.float32)
    return self._batched(self._text_fn, self.tokenizer(list(texts)))


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m sgvu.tools.embed", description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--clip", required=True,
                      help="transformers CLIP dir ('hf:' prefix optional) or "
                      "convert_clip output")
  parser.add_argument("--images", nargs="*", default=[])
  parser.add_argument("--texts", nargs="*", default=[])
  parser.add_argument("--out", required=True, help="output .npz")
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--precision", default="highest",
                      choices=["default", "high", "highest"],
                      help="float32 matmul precision on GPU/TPU")
  args = parser.parse_args(argv)
  if not args.images and not args.texts:
    parser.error("give --images and/or --texts")
  compile_cache.enable()
  try:
    embedder = Embedder(args.clip, batch_size=args.batch_size,
                        precision=args.precision)
  except (FileNotFoundError, NotADirectoryError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  try:
    image_embeds = embedder.embed_images(args.images)
  except preprocess.ImageError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  text_embeds = embedder.embed_texts(args.texts)
  np.savez(args.out, image_embeds=image_embeds, text_embeds=text_embeds,
           images=np.asarray(args.images, dtype=str),
           texts=np.asarray(args.texts, dtype=str))
  print(f"wrote {args.out}: image_embeds {image_embeds.shape}, "
        f"text_embeds {text_embeds.shape}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
