"""Unsupervised SBIR by cross-domain context prediction (seed 003) on SynthSketch: one table, 3 seeds.

  python -m sgvu.main --config=experiments/context.py          # the table (budget: 15 min on 2 CPU cores)
  python -m sgvu.main --config=experiments/context.py:small    # smoke test

A trunk learns the relative position of a photo patch and an edge-map patch (8 ways), without labels; its fc6
embeds sketches and photos for nearest-neighbour retrieval. See sgvu/tasks/context.py and docs/context.md.
"""

from experiments import blocks


def get_config(arg: str = ""):
  c = blocks.experiment("context", "context", arg, seeds=1 if arg == "small" else 3)
  return blocks.add_context(c, arg)
