"""The sketch+text duet for fine-grained retrieval (seed 002) on SynthSketch instances.

  python -m sgvu.main --config=experiments/duet.py
  python -m sgvu.main --config=experiments/duet.py:small   # a smoke test

Training sees sketch/photo pairs of the seen categories and no text; a test query is a sketch of an unseen
category plus words a sketch cannot show ("red striped * on a sandy beach"), ranked among the photos of its
category: Acc@1 / Acc@10. Rows: sketch-only, text-only, B-CLIP, Pic2Word, ours and its five loss ablations.
"""

import ml_collections

from experiments import blocks


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = blocks.experiment("duet", "duet", arg, seeds=1 if arg else 3)
  c.methods = blocks.DUET_METHODS
  return blocks.add_duet(c, arg)
