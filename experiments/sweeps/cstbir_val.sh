#!/usr/bin/env bash
# Learning rate and length of experiments/cstbir.py's rows, chosen on its 'val' split (1,000 new scenes of
# the seen categories), never on Test-1K / Test-5K / open: one seed per point, evaluated every 50 steps
# (each row's metrics.jsonl holds the curve). docs/composed.md keeps what each point printed.
# A point is "lr" or "lr:heads_lr" (the new heads', TIRG's and the placeholder's own learning rate).
#   bash experiments/sweeps/cstbir_val.sh [point ...]   # default: 1e-4 1e-3 1e-4:1e-3
set -eu
for point in ${@:-1e-4 1e-3 1e-4:1e-3}; do
  lr=${point%%:*}; heads=0.0; [[ $point == *:* ]] && heads=${point##*:}
  echo "== lr $lr, heads_lr $heads"
  .venv/bin/python -m sgvu.main --config=experiments/cstbir.py --workdir=runs/val/cstbir_$point \
    --config.evals.composed.splits='(("val","val"),)' --config.seeds=1 \
    --config.methods="('text-only','two-stage','tirg','stnet')" \
    --config.cstbir_train.num_steps=300 --config.cstbir_train.eval_every=50 --config.cstbir_train.optim.lr=$lr \
    --config.cstbir.heads_lr=$heads
done
