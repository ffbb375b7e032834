"""The sketch+text duet (seed 002) on QMUL-Shoe-V2 with a transformers CLIP.

  python -m sgvu.main --config=experiments/duet_shoev2.py \
      --config.model.clip_init=hf:/models/clip-vit-base-patch16 --config.data.root=/data/QMUL

Trains on ShoeV2's sketch/photo pairs (no text); test queries take their words from
`<root>/ShoeV2/texts.csv` (`sketch_key,text`, the sketch's place marked `*` or `[sketch]`; sketches without a
row are queried by the sketch alone). Acc@1 / Acc@10 among the test photos. `:small` is the smoke test.
"""

import ml_collections

from experiments import blocks


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = blocks.experiment("duet", "duet_shoev2", arg)
  c.methods = blocks.DUET_METHODS
  return blocks.add_duet_paper(c, "ShoeV2", arg)
