"""Fine-grained SBIR with a triplet ranking loss (the base of seed 001) on SynthSketch shoes.

  python -m sgvu.main --config=experiments/fg_sbir.py
  python -m sgvu.main --config=experiments/fg_sbir.py:small     # seconds to a few minutes: a smoke test

Trains a small CNN shared by sketches and photos on complete sketches (`fg_train`),
negatives from the same category (see sgvu/tasks/fg_sbir.py for the encoder and loss
choices), and reports Acc@1/5/10 of each test sketch's own photo among all test
photos. Rows: `B1`, `B2` (B1 + DSSA-style spatial attention); `frozen` (CLIP as is).
"""

import ml_collections

from experiments import blocks


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = blocks.experiment("fg_sbir", "fg_sbir", arg)
  c.methods = ("B1", "B2")  # + 'frozen' (the CLIP as is; pretrains the SynthSketch CLIP unless model.clip_init)
  return blocks.add_fg_sbir(c, arg)
