"""Cross-category fine-grained zero-shot SBIR (seed 004) on Sketchy, the paper's setting.

  python -m sgvu.main --config=experiments/fg_zs_sbir_sketchy.py \
      --config.model.clip_init=hf:/models/clip-vit-base-patch32 --config.data.root=/data/Sketchy

Trains on the seen classes with instance pairs (positive = the photo the sketch
was drawn from, negative = another photo of its class) and reports Acc@1 /
Acc@5 on the unseen classes, each sketch ranked against the photos of its own
class. At this level 'ours' is the fine-grained method (patch shuffling and
the f-divergence term added; sgvu.tasks.zs_sbir.METHODS['instance']).
See docs/real_data.md. `:small` is the smoke test.
"""

import ml_collections

from experiments import blocks

# Seed 004's FG rows: B-FG-FT, B-FG-Lin, B-FG-IP, B-FG-Deep, Ours; plus frozen CLIP and our ablations.
METHODS = ("frozen", "full-ft", "linear", "shallow-prompt", "deep-prompt", "ours",
           "ours-no-patch-shuffle", "ours-no-fdiv")


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = blocks.experiment("zs_sbir", "fg_zs_sbir_sketchy", arg)
  blocks.add_zs_sbir_paper(c, "sketchy", arg, methods=METHODS, num_steps=2000)
  c.level = "instance"
  c.evals = blocks.zs_evals(c.level)
  c.pairing = "instance"
  return c
