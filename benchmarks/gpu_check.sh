#!/usr/bin/env bash
# The GPU checks of issue 14 in one run on a CUDA machine (the device tool's H200), from the repo root:
#   bash benchmarks/gpu_check.sh            # logs in $OUT ($OUT defaults to /tmp/gpu_check)
# 1. installs the carried wheels (.whl/: grain, ml_collections, array_record, portpicker) into /tmp/site;
# 2. names the GPU and the library versions;
# 3. tests/test_attention.py on the GPU (cuDNN vs XLA attention within bfloat16 tolerance; 'auto' picks cuDNN);
# 4. benchmarks/train_step.py --device=gpu --profile (ViT-B/16, batch 256, bf16: sgvu xla / cudnn vs torch eager /
#    compile; then kernel time by category of each sgvu side and of torch.compile) -> $OUT/gpu_bench.txt;
# 5. the main job (experiments/zs_sbir.py) from a fresh $SGVU_CACHE -> $OUT/main_job_1.log, then, if time is left,
#    a second time into a new workdir with that cache warm (compiles, rendered data) -> $OUT/main_job_2.log.
# 4b. GPU_CHECK_FLAGS="--xla_gpu_enable_triton_gemm=false --flag_a,--flag_b": sgvu-cudnn's full step again under each
#    (space-separated variants, flags within one variant comma-joined), while time is left.
# 4c. if time is left: benchmarks/metrics.py at 100k queries x 100k gallery.
# Every stage runs even if an earlier one failed; each has its own timeout inside GPU_CHECK_BUDGET_S (default 520 s).
set -u
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
LOG=$OUT/gpu_bench.txt
BUDGET=${GPU_CHECK_BUDGET_S:-520}
MAIN_JOB_S=${MAIN_JOB_S:-150}  # what the fresh main job may take; the second run gets what is left
T0=$(date +%s)
left() { echo $((BUDGET - ($(date +%s) - T0))); }
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && echo "wheels: $(ls .whl | tr '\n' ' ')"
fi
export PYTHONPATH=/tmp/site:$PWD
{
  echo "== $(date -u +%FT%TZ) gpu_check, git $(git rev-parse --short HEAD 2>/dev/null || echo '?'); $(nproc) CPUs"
  nvidia-smi -L
  python3 -c "import sys, jax, jaxlib, flax, optax, torch, grain, ml_collections; print('python', sys.version.split()[0], \
'| jax', jax.__version__, jax.default_backend(), jax.devices()[0].device_kind, '| flax', flax.__version__, \
'| optax', optax.__version__, '| torch', torch.__version__, 'cuda', torch.version.cuda, '| grain', grain.__version__)"
  echo "== attention parity on the GPU ($(left) s left)"
  timeout 80 python3 -m pytest -q -p no:cacheprovider tests/test_attention.py -rs 2>&1 | tail -25
  echo "== benchmark + profile ($(left) s left)"
  timeout $(( $(left) - MAIN_JOB_S - 20 > 60 ? $(left) - MAIN_JOB_S - 20 : 60 )) \
    python3 benchmarks/train_step.py --device=gpu --cache_dir=/tmp/jax_cache --profile=/tmp/gpu_profile
  echo "== benchmark exit $? ($(left) s left)"
  trace=$(find /tmp/gpu_profile/full-sgvu-cudnn -name perfetto_trace.json.gz 2>/dev/null | head -1)
  [ -n "$trace" ] && cp "$trace" "$OUT/full_sgvu_cudnn_trace.json.gz"
  for flags in ${GPU_CHECK_FLAGS:-}; do  # leads: sgvu-cudnn (full mode) again under other XLA flags, comma-joined
    [ "$(left)" -gt $((MAIN_JOB_S + 80)) ] || break
    echo "== sgvu-cudnn under ${flags//,/ } ($(left) s left)"
    timeout $(( $(left) - MAIN_JOB_S - 10 )) python3 benchmarks/train_step.py --device=gpu --sides=sgvu-cudnn \
      --modes=full --rounds=1 --cache_dir= --xla_flags="${flags//,/ }" 2>&1 | grep -v "^[IW][0-9]"
  done
  if [ "$(left)" -gt $((MAIN_JOB_S + 100)) ]; then  # issue 14's 100k x 100k retrieval metrics figure
    echo "== retrieval metrics, 100k x 100k ($(left) s left)"
    timeout $(( $(left) - MAIN_JOB_S - 10 )) python3 benchmarks/metrics.py --num_queries=100000 \
      --num_gallery=100000 --reference_queries=200 --repeats=2 2>&1 | grep -v "^[IW][0-9]"
  fi
} 2>&1 | tee "$LOG"
main_job() {  # $1: log name, $2: workdir, $3: seconds
  local t=$(date +%s)
  echo "== main job -> $1 ($3 s allowed, $(left) s left)"
  SGVU_CACHE=/tmp/sgvu_cache timeout "$3" python3 -m sgvu.main --config=experiments/zs_sbir.py --workdir="$2" \
    >"$OUT/$1" 2>&1
  echo "== main job exit $? after $(( $(date +%s) - t )) s wall"
  grep -v "step [0-9]*/\|rendering [0-9]*/\|embedded [0-9]*/" "$OUT/$1" | tail -40
}
{
  rm -rf /tmp/sgvu_cache
  main_job main_job_1.log /tmp/main_1 "$(( $(left) - 10 < MAIN_JOB_S ? $(left) - 10 : MAIN_JOB_S ))"
  [ "$(left)" -gt 40 ] && main_job main_job_2.log /tmp/main_2 $(( $(left) - 10 ))
  echo "== done after $(( $(date +%s) - T0 )) s"
} 2>&1 | tee -a "$LOG"
