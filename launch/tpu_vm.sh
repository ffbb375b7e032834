#!/usr/bin/env bash
# Runs one sgvu experiment on every worker of a Cloud TPU VM slice.
#
# All workers run the same command; sgvu.main calls jax.distributed.initialize(),
# which discovers the slice's topology by itself on Cloud TPU.
#
#   TPU_NAME=my-v5p-64 ZONE=us-east5-a PROJECT=my-proj \
#   CONFIG=experiments/zs_sbir_sketchy.py WORKDIR=gs://bucket/runs/zs1 \
#   EXTRA="--config.data.root=/mnt/data/sketchy --config.model.clip_init=hf:/mnt/clip-vit-b32" \
#   bash launch/tpu_vm.sh
#
# Optional: REPO_DIR (checkout path on the workers, default ~/sgvu), SETUP=1 to
# create the venv and install requirements on every worker first, DRY_RUN=1 to
# print the gcloud command instead of running it.
set -euo pipefail

missing=()
for v in TPU_NAME ZONE PROJECT CONFIG WORKDIR; do
  [[ -n "${!v:-}" ]] || missing+=("$v")
done
if (( ${#missing[@]} )); then
  echo "launch/tpu_vm.sh: missing required variables: ${missing[*]}" >&2
  echo "  (see the header of this file for an example)" >&2
  exit 2
fi
case "$WORKDIR" in
  gs://*) ;;
  *) echo "launch/tpu_vm.sh: WORKDIR=$WORKDIR must be shared by all workers (a gs:// path)" >&2; exit 2 ;;
esac

REPO_DIR="${REPO_DIR:-\$HOME/sgvu}"
setup=""
if [[ "${SETUP:-0}" == "1" ]]; then
  setup="python3 -m venv .venv && .venv/bin/pip install -q -r requirements.txt 'jax[tpu]' && "
fi
remote="cd $REPO_DIR && ${setup}SGVU_DISTRIBUTED=1 .venv/bin/python -m sgvu.main --config=$CONFIG --workdir=$WORKDIR ${EXTRA:-}"
cmd=(gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --project="$PROJECT" --worker=all --command="$remote")

if [[ "${DRY_RUN:-0}" == "1" ]]; then
  printf '%q ' "${cmd[@]}"; echo
else
  "${cmd[@]}"
fi
