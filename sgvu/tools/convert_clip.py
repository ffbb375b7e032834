"""Converts a transformers CLIP checkpoint into sgvu's self-contained format.

  python -m sgvu.tools.convert_clip --hf_dir /path/to/clip-vit-base-patch32 \
      --out /path/to/sgvu-clip-b32

writes OUT/params (orbax, plain arrays), OUT/clip_config.json and copies the
tokenizer and preprocessor files, so `load_clip(OUT)` and
`sgvu.tools.embed --clip OUT` need nothing else.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import Sequence

from sgvu import clip_io

# Files that make the output directory self-contained.
SIDE_FILES = ("tokenizer.json", "vocab.json", "merges.txt",
              "tokenizer_config.json", "special_tokens_map.json",
              "preprocessor_config.json", "word_tokenizer.json")


def convert(hf_dir: str, out: str) -> list[str]:
  """Converts; returns the side files copied."""
  cfg, params = clip_io.load_hf(hf_dir)
  if os.path.abspath(hf_dir) == os.path.abspath(out):
    raise ValueError(f"--out must differ from --hf_dir ({out})")
  clip_io.save_converted(out, cfg, params)
  copied = []
  for name in SIDE_FILES:
    src = os.path.join(hf_dir, name)
    if os.path.exists(src):
      shutil.copyfile(src, os.path.join(out, name))
      copied.append(name)
  return copied


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m sgvu.tools.convert_clip", description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--hf_dir", required=True,
                      help="transformers CLIPModel directory")
  parser.add_argument("--out", required=True, help="output directory")
  args = parser.parse_args(argv)
  copied = convert(args.hf_dir, args.out)
  print(f"wrote {args.out} (params, {clip_io.CONFIG_FILE}"
        + "".join(f", {c}" for c in copied) + ")")
  if not {"tokenizer.json", "vocab.json", "word_tokenizer.json"} & set(copied):
    print("warning: no tokenizer files found next to the checkpoint",
          file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(main())
