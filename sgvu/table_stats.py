"""Which differences between table rows exceed two standard deviations (pure functions on runner rows).

A row is what experiment.combine makes: `<metric>` (mean over seeds), `<metric>_std` (std over seeds,
population std as the runner computes it) and `seeds`. Rows a and b differ beyond 2 std on a metric when
|mean_a - mean_b| > 2 * sqrt(std_a^2 + std_b^2). Two rules the formula cannot express alone:
- a deterministic row (`deterministic`: rows that run once by design, Table.trains false) has no seed
  noise; two deterministic rows that differ at all differ beyond any noise: reported as exact;
- a trained row with fewer than 2 seeds has no std to compare with: never claimed ('std unknown').
All table metrics are higher-is-better, so pairs are ordered better row first.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Collection, Mapping, Sequence

Row = Mapping[str, Any]


def _has(row: Row, metric: str) -> bool:
  return isinstance(row.get(metric), float)


def _known(row: Row, deterministic: Collection[str]) -> bool:
  """The row's std is meaningful: it runs once by design or has >= 2 seeds."""
  return row.get("method") in deterministic or row.get("seeds", 1) >= 2


def compare(a: Row, b: Row, metric: str, deterministic: Collection[str] = ()) -> dict:
  """a - b on `metric`: {"diff", "two_std", "beyond"}, plus "exact": true when both rows are
  deterministic, or two_std None and "note" when a trained row has < 2 seeds (beyond is then false)."""
  diff = a[metric] - b[metric]
  for r, who in ((a, ""), (b, f"{b.get('method')}: ")):
    if not _known(r, deterministic):
      n = r.get("seeds", 1)
      return {"diff": diff, "two_std": None, "beyond": False,
              "note": f"std unknown ({who}{n} seed{'s' if n != 1 else ''})"}
  two_std = 2.0 * math.sqrt(a.get(f"{metric}_std", 0.0) ** 2 + b.get(f"{metric}_std", 0.0) ** 2)
  out = {"diff": diff, "two_std": two_std, "beyond": abs(diff) > two_std}
  if a.get("method") in deterministic and b.get("method") in deterministic:
    out["exact"] = True
  return out


def beyond_2std(rows: Sequence[Row], metrics: Sequence[str], baseline: str,
                deterministic: Collection[str] = ()) -> dict | None:
  """Every row but the baseline against it on every metric: {"baseline", "rows": {row: {metric: compare}}};
  None when no row is named `baseline`."""
  base = next((r for r in rows if r.get("method") == baseline), None)
  if base is None:
    return None
  out = {}
  for r in rows:
    if r is not base:
      out[r["method"]] = {m: compare(r, base, m, deterministic) for m in metrics if _has(r, m) and _has(base, m)}
  return {"baseline": baseline, "rows": out}


def pairwise_beyond_2std(rows: Sequence[Row], metric: str,
                         deterministic: Collection[str] = ()) -> list[tuple[str, str, float, float]]:
  """(a, b, mean_a - mean_b > 0, two_std) for every pair of rows differing beyond 2 std on `metric`
  (two_std 0.0: both deterministic, exact); best row first, then its largest differences first."""
  pairs = []
  for x, y in itertools.combinations([r for r in rows if _has(r, metric)], 2):
    a, b = (x, y) if x[metric] >= y[metric] else (y, x)
    c = compare(a, b, metric, deterministic)
    if c["beyond"]:
      pairs.append((a["method"], b["method"], c["diff"], c["two_std"], a[metric]))
  pairs.sort(key=lambda p: (-p[4], -p[2]))
  return [p[:4] for p in pairs]


def _amount(diff: float, two_std: float, exact: bool) -> str:
  return f"{diff:+.4f} " + ("(exact: both deterministic)" if exact else f"(2 std {two_std:.4f})")


def format_block(stats: Mapping[str, Any], pairs: Sequence[tuple[str, str, float, float]], metric: str,
                 deterministic: Collection[str] = ()) -> str:
  """The printed block: per row, the metrics beyond 2 std from the baseline; then the pairs on `metric`."""
  base = stats["baseline"]
  lines = [f"differences from {base} beyond 2 std (|mean - mean_{base}| > 2 * sqrt(std^2 + std_{base}^2), "
           "std over seeds):"]
  for method, by_metric in stats["rows"].items():
    notes = sorted({c["note"] for c in by_metric.values() if "note" in c})
    beyond = [f"{m} " + _amount(c["diff"], c["two_std"], c.get("exact", False))
              for m, c in by_metric.items() if c["beyond"]]
    lines.append(f"  {method}: " + (", ".join(beyond + notes) or "none"))
  lines.append(f"pairs beyond 2 std on {metric}:")
  for a, b, diff, two_std in pairs:
    lines.append(f"  {a} > {b}: " + _amount(diff, two_std, a in deterministic and b in deterministic))
  if not pairs:
    lines.append("  none")
  return "\n".join(lines)
