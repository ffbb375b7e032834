"""Unsupervised SBIR by cross-domain context prediction (seed 003) on real data: one table, one seed.

  python -m sgvu.main --config=experiments/context_voc_sketchy.py \
      --config.pretext_data.root=/data/VOC2012 --config.data.root=/data/Sketchy

The pretext (8-way relative position of a photo patch and an edge-map patch) reads PASCAL VOC 2012's train photos
(JPEGImages/ and ImageSets/Main/train.txt); retrieval ranks each sketch's own photo among the photos of its class
in the seed's 10 Sketchy classes (airplane, bicycle, car, cat, chair, cow, dog, horse, motorcycle, sheep). The
classifier and the supervised triplet row train on Sketchy's other classes. See docs/context.md.
`:small` (a tiny trunk, 4 steps a stage) is the smoke test tests/test_context_real.py runs on fixture files.
"""

from experiments import blocks


def get_config(arg: str = ""):
  c = blocks.experiment("context", "context_voc_sketchy", arg)  # one seed, as the other real-data tables
  return blocks.add_context_voc_sketchy(c, arg)
