#!/usr/bin/env bash
# Settings of experiments/context.py chosen on 10 validation classes (blocks.CONTEXT_VAL_CLASSES), never on its
# 10 evaluation classes: the same table, one seed, retrieval scored on the validation classes' test instances
# (the classifier then leaves those 10 out instead). docs/context.md keeps what each point printed.
#   bash experiments/sweeps/context_val.sh [fc6_grid ...]      # default: 0 2
set -eu
VAL="('bus','train','shoe','teapot','guitar','fish','butterfly','snake','cup','lamp')"
for grid in ${@:-0 2}; do
  .venv/bin/python -m sgvu.main --config=experiments/context.py --workdir=runs/val/context_grid$grid \
    --config.data.eval_classes="$VAL" --config.seeds=1 --config.model.fc6_grid=$grid \
    --config.methods="('random-init','classifier','hog-pyramid','supervised-triplet','ours')"
done
