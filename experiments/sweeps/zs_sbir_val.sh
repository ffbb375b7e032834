#!/usr/bin/env bash
# Steps (and learning rate) of the zs_sbir / fg_zs_sbir rows, chosen on the validation holdout: the model
# trains on 48 of the 60 seen categories and is scored on the other 12 (every 5th, data.holdout=categories);
# the 15 unseen test categories are never looked at. Each point is one table command with eval curves
# (zs_train.eval_every); `python -m sgvu.tools.curves --workdir W` prints them and the best step per row.
#   bash experiments/sweeps/zs_sbir_val.sh [LEVEL=zs_sbir|fg_zs_sbir] [LRS="1e-3"]
#   STEPS=300 EVERY=50 METHODS="('full-ft','linear','shallow-prompt','deep-prompt','ours')" (defaults)
# One learning rate at a time: the 2 cores are the bottleneck, so parallel points only slow each other.
set -euo pipefail
LEVEL=${1:-zs_sbir}
LRS=${2:-"1e-3"}
STEPS=${STEPS:-300}
EVERY=${EVERY:-50}
METHODS=${METHODS:-"('full-ft','linear','shallow-prompt','deep-prompt','ours')"}
PY=${PY:-.venv/bin/python}
for LR in $LRS; do
  W=runs/val/${LEVEL}_lr${LR}_steps${STEPS}
  $PY -m sgvu.main --config=experiments/${LEVEL}.py --workdir="$W" \
      --config.data.holdout=categories --config.seeds=1 --config.methods="$METHODS" \
      --config.zs_train.num_steps="$STEPS" --config.zs_train.eval_every="$EVERY" --config.zs_train.optim.lr="$LR"
done
for LR in $LRS; do
  echo "== ${LEVEL} lr ${LR} steps ${STEPS}"
  $PY -m sgvu.tools.curves --workdir=runs/val/${LEVEL}_lr${LR}_steps${STEPS} \
      --metric="${METRIC:-$([ "$LEVEL" = zs_sbir ] && echo mAP@all || echo Acc@1)}"
done
