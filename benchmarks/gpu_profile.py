"""Where a GPU step's time goes: kernel time per category from a JAX profiler trace (and torch's own table).

`jax_kernel_summary(run, steps, trace_dir)` traces `run()` (which queues `steps` steps and waits for them)
with `jax.profiler.trace(..., create_perfetto_trace=True)` and sums the device kernels of the Chrome-format
trace it writes: only the stream lines of GPU processes count (the trace's derived "XLA Ops" / "XLA
Modules" lines overlap them). Kernels are grouped by name into CATEGORIES; the printout also gives the
top kernels and the gap between kernel time and wall time (launch overhead, host syncs, idle device).
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import os
import re
import time

# (category, regex on the kernel name), first match wins.
CATEGORIES = (
    ("attention (cuDNN/flash)", r"sdpa|fmha|flash|cudnn|attention"),
    ("matmul", r"gemm|nvjet|cutlass|xmma|cublas|wgmma|triton_gemm|\bdot|_dot_|matmul|sm90_"),
    ("memcpy/memset", r"memcpy|memset|Memcpy|Memset"),
    ("reduction fusion", r"reduce|reduction"),
    ("convolution", r"conv(?!ert)"),
    ("other fusion / elementwise", r"."),
)


def categorise(name: str) -> str:
  for category, pattern in CATEGORIES:
    if re.search(pattern, name, re.IGNORECASE):
      return category
  return CATEGORIES[-1][0]


def device_kernels(trace: dict) -> tuple[list[tuple[str, float]], str]:
  """(name, microseconds) of every complete event on a GPU process's stream lines, and which lines counted."""
  process, thread = {}, {}
  for e in trace.get("traceEvents", []):
    if e.get("ph") == "M" and e.get("name") == "process_name":
      process[e["pid"]] = str(e.get("args", {}).get("name", ""))
    elif e.get("ph") == "M" and e.get("name") == "thread_name":
      thread[(e["pid"], e["tid"])] = str(e.get("args", {}).get("name", ""))
  gpu = {pid for pid, name in process.items() if re.search(r"GPU|gpu|device:\d|/device", name)
         and "host" not in name.lower()}
  kernels, counted, skipped = [], set(), set()
  for e in trace.get("traceEvents", []):
    if e.get("ph") != "X" or e.get("pid") not in gpu:
      continue
    line = thread.get((e["pid"], e.get("tid")), "")
    if line and not line.lower().startswith("stream"):
      skipped.add(line)
      continue  # derived lines (XLA Ops, XLA Modules, ...) repeat the stream's time
    counted.add(line)
    kernels.append((str(e.get("name", "?")), float(e.get("dur", 0.0))))
  lines = (f"GPU processes {sorted(process[p] for p in gpu)}; lines counted {sorted(counted)}, "
           f"skipped {sorted(skipped)}")
  return kernels, lines


def summary(kernels: list[tuple[str, float]], steps: int, wall_s: float, title: str, top: int = 20) -> str:
  """Kernel time per step by category and the `top` kernels, as text."""
  total = sum(d for _, d in kernels)
  by_cat, by_name, count = collections.Counter(), collections.Counter(), collections.Counter()
  for name, dur in kernels:
    by_cat[categorise(name)] += dur
    by_name[name] += dur
    count[name] += 1
  ms = lambda us: us / 1e3 / steps
  lines = [f"== {title}: wall {1e3 * wall_s / steps:.1f} ms/step; device kernels {ms(total):.1f} ms/step "
           f"({len(kernels) // max(steps, 1)} launches/step); gap {1e3 * wall_s / steps - ms(total):.1f} ms/step"]
  for cat, dur in by_cat.most_common():
    lines.append(f"  {cat:32s} {ms(dur):7.2f} ms/step  {dur / max(total, 1e-9):5.1%}")
  lines.append(f"  top {top} kernels (ms/step, calls/step):")
  for name, dur in by_name.most_common(top):
    lines.append(f"    {ms(dur):7.2f} {count[name] / steps:5.1f}  [{categorise(name)[:10]}] {name[:110]}")
  return "\n".join(lines)


def load_trace(trace_dir: str) -> dict:
  paths = sorted(glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True)
                 + glob.glob(os.path.join(trace_dir, "**", "perfetto_trace.json.gz"), recursive=True))
  if not paths:
    raise FileNotFoundError(f"no trace under {trace_dir}")
  with gzip.open(paths[-1], "rt") as f:
    return json.load(f)


def jax_kernel_summary(run, steps: int, trace_dir: str, title: str) -> str:
  import jax  # pylint: disable=g-import-not-at-top
  with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
    t0 = time.perf_counter()
    run()
    wall = time.perf_counter() - t0
  kernels, lines = device_kernels(load_trace(trace_dir))
  return summary(kernels, steps, wall, title) + "\n  " + lines


def torch_kernel_table(run, steps: int, title: str, rows: int = 20) -> str:
  import torch  # pylint: disable=g-import-not-at-top
  acts = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
  with torch.profiler.profile(activities=acts) as prof:
    t0 = time.perf_counter()
    run()
    wall = time.perf_counter() - t0
  averages = prof.key_averages()
  for key in ("self_device_time_total", "self_cuda_time_total"):
    try:
      table = averages.table(sort_by=key, row_limit=rows, max_name_column_width=90)
      break
    except (AttributeError, KeyError, ValueError):
      table = ""
  kernels = [(e.name, float(getattr(e, "device_time", 0.0) or 0.0)) for e in prof.events()
             if str(getattr(e, "device_type", "")).endswith("CUDA")]
  head = summary(kernels, steps, wall, title) if kernels else f"== {title}: wall {1e3 * wall / steps:.1f} ms/step"
  return head + "\n" + table
