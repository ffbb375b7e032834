"""Compares two small_snapshot.sh outputs: every numeric field of every row (and seed) in results.json, and the
printed tables; prints IDENTICAL / DIFFERENT per experiment and ALL IDENTICAL when nothing moved."""
import json, os, re, sys
A, B = sys.argv[1], sys.argv[2]
VOLATILE = re.compile(r"wall|seconds|_s$|steps_per|time|code_version|fingerprint|clip_dir|digest|pretrain_wall")
def walk(x, path=""):
  if isinstance(x, dict):
    for k, v in x.items():
      if not VOLATILE.search(k):
        yield from walk(v, f"{path}/{k}")
  elif isinstance(x, list):
    for i, v in enumerate(x):
      yield from walk(v, f"{path}[{i}]")
  else:
    yield path, x
def table(log):
  lines = open(log).read().splitlines()
  return [l for l in lines if l.startswith("|")]
ok = True
for name in sorted(d for d in os.listdir(os.path.join(A, "runs"))):
  ra, rb = (os.path.join(d, "runs", name, "results.json") for d in (A, B))
  if not (os.path.exists(ra) and os.path.exists(rb)):
    print(name, "MISSING", os.path.exists(ra), os.path.exists(rb)); ok = False; continue
  a, b = dict(walk(json.load(open(ra)))), dict(walk(json.load(open(rb))))
  diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
  ta, tb = table(os.path.join(A, name + ".log")), table(os.path.join(B, name + ".log"))
  same = not diff and ta == tb and len(ta) > 2
  ok &= same
  print(f"{name:20s} {'IDENTICAL' if same else 'DIFFERENT'}  fields {len(a)}  table rows {len(ta) - 2}  "
        + (f"diff: {diff[:5]} {[(a.get(k), b.get(k)) for k in diff[:3]]}" if diff else "") + ("" if ta == tb else " tables differ"))
print("ALL IDENTICAL" if ok else "NOT ALL IDENTICAL")
