#!/usr/bin/env bash
# The pretext's length and learning rate for experiments/context.py, chosen on the 10 validation classes
# (blocks.CONTEXT_VAL_CLASSES), never on its 10 evaluation classes: the `ours` row (and the classifier it starts
# from, which the pictures need), one seed, at each point.
# One workdir: the classifier the row starts from is trained once and reused (its own fingerprint); each
# point's `ours` row is retrained because its settings differ. docs/context.md keeps what each point printed.
#   bash experiments/sweeps/context_pretext_val.sh ["steps:lr" ...]   # default: 400:1e-3 1600:1e-3 400:3e-3 1600:3e-3
set -eu
VAL="('bus','train','shoe','teapot','guitar','fish','butterfly','snake','cup','lamp')"
for point in ${@:-400:1e-3 1600:1e-3 400:3e-3 1600:3e-3}; do
  steps=${point%%:*}; lr=${point##*:}
  echo "== pretext steps $steps, lr $lr"
  .venv/bin/python -m sgvu.main --config=experiments/context.py --workdir=runs/val/context_pretext \
    --config.data.eval_classes="$VAL" --config.seeds=1 --config.methods="('classifier','ours')" \
    --config.pretext_train.num_steps=$steps --config.pretext_train.optim.lr=$lr
done
