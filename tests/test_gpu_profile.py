"""benchmarks/gpu_profile.py: kernel time from a Chrome-format profiler trace (a hand-made one: no GPU here)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))

import gpu_profile  # pylint: disable=g-import-not-at-top,wrong-import-position


def _trace():
  meta = [
      {"ph": "M", "pid": 1, "name": "process_name", "args": {"name": "/host:CPU"}},
      {"ph": "M", "pid": 2, "name": "process_name", "args": {"name": "/device:GPU:0"}},
      {"ph": "M", "pid": 2, "tid": 7, "name": "thread_name", "args": {"name": "Stream #13(Compute)"}},
      {"ph": "M", "pid": 2, "tid": 8, "name": "thread_name", "args": {"name": "XLA Ops"}},
  ]
  x = lambda pid, tid, name, dur: {"ph": "X", "pid": pid, "tid": tid, "name": name, "ts": 0, "dur": dur}
  events = [
      x(2, 7, "nvjet_tst_128x256_64x4_2x1_v_bz_coopA_TNN", 600.0),  # matmul
      x(2, 7, "cudnn_generated_fort_native_sdpa_sm90_flash_fprop", 300.0),
      x(2, 7, "loop_add_fusion_3", 80.0),
      x(2, 7, "input_reduce_fusion_1", 20.0),
      x(2, 8, "fusion.3", 999.0),  # derived line: must not count twice
      x(1, 5, "host thing", 5000.0),  # host: not a kernel
  ]
  return {"traceEvents": meta + events}


def test_device_kernels_count_stream_lines_of_gpu_processes_only():
  kernels, lines = gpu_profile.device_kernels(_trace())
  assert sorted(d for _, d in kernels) == [20.0, 80.0, 300.0, 600.0]
  assert "XLA Ops" in lines and "Stream #13(Compute)" in lines


def test_categories_and_per_step_figures():
  kernels, _ = gpu_profile.device_kernels(_trace())
  text = gpu_profile.summary(kernels, steps=2, wall_s=0.002, title="t")
  # 1000 us of kernels over 2 steps = 0.5 ms/step; wall 1.0 ms/step -> gap 0.5 ms/step
  assert "device kernels 0.5 ms/step" in text and "gap 0.5 ms/step" in text
  assert gpu_profile.categorise("nvjet_tst_128x256") == "matmul"
  assert gpu_profile.categorise("cudnn_generated_fort_native_sdpa") == "attention (cuDNN/flash)"
  assert gpu_profile.categorise("loop_add_fusion_3") == "other fusion / elementwise"
  assert gpu_profile.categorise("input_reduce_fusion_1") == "reduction fusion"
  assert gpu_profile.categorise("loop_convert_fusion_2") == "other fusion / elementwise"
  assert "   0.30 " in text and "matmul" in text  # 600 us / 2 steps
