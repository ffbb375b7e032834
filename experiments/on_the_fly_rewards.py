"""Seed 001's reward ablations on SynthSketch shoes: PPO with Eq. 4's reward (1/rank + Kendall tau)
against PPO with other local rewards, three seeds per row, on the same frozen B1.

  python -m sgvu.main --config=experiments/on_the_fly_rewards.py
  python -m sgvu.main --config=experiments/on_the_fly_rewards.py:small   # a smoke test

The same settings as experiments/on_the_fly.py (the paper's rows: B1-B4, vanilla PG, PPO).
"""

import ml_collections

from experiments import blocks


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = blocks.experiment("on_the_fly", "on_the_fly_rewards", arg, seeds=1 if arg else 3)
  c.methods = ("ppo",) + blocks.ON_THE_FLY_REWARDS
  c.baseline = "ppo"  # differences beyond two standard deviations are printed against this row
  blocks.add_fg_sbir(c, arg)
  return blocks.add_on_the_fly(c, arg)
