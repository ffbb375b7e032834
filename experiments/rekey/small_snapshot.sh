#!/bin/bash
# Every README table's :small variant from fresh workdirs and one fresh $SGVU_CACHE, for comparing two commits:
#   git worktree add /tmp/before OLD && bash experiments/rekey/small_snapshot.sh /tmp/before /tmp/snap_before
#   git worktree add /tmp/after NEW  && bash experiments/rekey/small_snapshot.sh /tmp/after /tmp/snap_after
#   .venv/bin/python experiments/rekey/compare.py /tmp/snap_before /tmp/snap_after
# (docs/architecture.md: when a change computes nothing differently, identical :small runs let the README
# fingerprints and the shipped CLIP be re-keyed instead of re-running every table.)
set -u
REPO=$(cd "$1" && pwd); OUT=$2; mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
PYTHON=${PYTHON:-$(cd "$(dirname "$0")/../.." && pwd)/.venv/bin/python}
export SGVU_CACHE=$OUT/cache
cd "$REPO"
for x in $(grep -o '<!-- table: experiments/[a-z_]*\.py' README.md | sed 's/.*experiments\///; s/\.py//' | sort -u); do
  "$PYTHON" -m sgvu.main --config=experiments/$x.py:small --workdir="$OUT/runs/$x" > "$OUT/$x.log" 2>&1
  echo "$x rc=$?" >> "$OUT/status.txt"
done
echo done >> "$OUT/status.txt"
