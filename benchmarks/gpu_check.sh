#!/usr/bin/env bash
# The GPU checks of issue 14 in one run on a CUDA machine (the device tool's H200), from the repo root:
#   bash benchmarks/gpu_check.sh            # output also in $OUT/gpu_bench.txt ($OUT defaults to /tmp/gpu_check)
# 1. installs the carried wheels (.whl/: grain, ml_collections, array_record, portpicker) into /tmp/site;
# 2. names the GPU and the library versions;
# 3. tests/test_attention.py on the GPU (cuDNN vs XLA attention within bfloat16 tolerance; 'auto' picks cuDNN);
# 4. benchmarks/train_step.py --device=gpu (ViT-B/16, batch 256, bf16: sgvu xla / cudnn vs torch eager / compile);
# 5. if time is left (GPU_CHECK_BUDGET_S, default 420 s from the start): sgvu-cudnn again under
#    --xla_gpu_enable_triton_gemm=false (cuBLAS for every matmul), as a lead for the next speed-up.
# Every stage runs even if an earlier one failed; each has its own timeout.
set -u
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
LOG=$OUT/gpu_bench.txt
BUDGET=${GPU_CHECK_BUDGET_S:-420}
T0=$(date +%s)
left() { echo $((BUDGET - ($(date +%s) - T0))); }
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
{
  echo "== $(date -u +%FT%TZ) gpu_check, git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
      && echo "wheels: $(ls .whl | tr '\n' ' ')"
  fi
  export PYTHONPATH=/tmp/site:$PWD
  nvidia-smi -L
  python3 -c "import sys, jax, jaxlib, flax, optax, torch, grain, ml_collections; print('python', sys.version.split()[0], \
'| jax', jax.__version__, jax.default_backend(), jax.devices()[0].device_kind, '| flax', flax.__version__, \
'| optax', optax.__version__, '| torch', torch.__version__, 'cuda', torch.version.cuda, '| grain', grain.__version__)"
  echo "== attention parity on the GPU ($(left) s left)"
  timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_attention.py -rs 2>&1 | tail -15
  echo "== benchmark ($(left) s left)"
  timeout $(( $(left) - 20 > 60 ? $(left) - 20 : 60 )) python3 benchmarks/train_step.py --device=gpu --cache_dir=/tmp/jax_cache
  echo "== benchmark exit $? ($(left) s left)"
  if [ "$(left)" -gt 100 ]; then
    echo "== sgvu-cudnn with --xla_gpu_enable_triton_gemm=false"
    timeout $(( $(left) - 10 )) python3 benchmarks/train_step.py --device=gpu --sides=sgvu-cudnn --rounds=1 \
      --xla_flags=--xla_gpu_enable_triton_gemm=false --cache_dir=
  fi
  echo "== done after $(( $(date +%s) - T0 )) s"
} 2>&1 | tee "$LOG"
