#!/usr/bin/env bash
# Learning rate and length of experiments/duet.py's trained rows, chosen on validation categories: every 5th
# seen category held out (data.reader_options.holdout_every=5), never the unseen test categories. One seed per
# point, evaluated every 50 steps (each row's metrics.jsonl holds the curve). docs/composed.md keeps the numbers.
#   bash experiments/sweeps/duet_val.sh [lr ...]   # default: 1e-4 1e-3
# ROWS (default: the baselines that train and ours) and STEPS (default 300) narrow a point.
set -eu
for lr in ${@:-1e-4 1e-3}; do
  echo "== lr $lr"
  .venv/bin/python -m sgvu.main --config=experiments/duet.py --workdir=runs/val/duet_lr$lr \
    --config.data.reader_options.holdout_every=5 --config.seeds=1 \
    --config.methods="${ROWS:-('b-clip','sketch-only','pic2word','ours')}" \
    --config.duet_train.num_steps=${STEPS:-300} --config.duet_train.eval_every=25 --config.duet_train.optim.lr=$lr
done
