"""Re-keys the shipped SynthSketch CLIP after a change that no weight depends on (docs/architecture.md).

  python experiments/rekey/rekey_clip.py /tmp/snap_before /tmp/snap_after                    # the evidence only
  python experiments/rekey/rekey_clip.py /tmp/snap_before /tmp/snap_after --write --why "..." --commits A..B

The evidence: the tiny CLIPs that experiments/rekey/small_snapshot.sh pretrained (clip_pretrain.py:small) before
and after the change have bitwise-equal weights and identical configs and tokenizers. With --write (and only
then), PROVENANCE.json gets the new digest, code key and file hashes, and a "rekeyed" entry naming the files whose
text changed, why, and this evidence.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os

import numpy as np

from experiments import clip_pretrain as clip_experiment
from sgvu import clip_io, train
from sgvu.tasks import clip_pretrain as cp


def tiny_clip(snapshot: str) -> dict:
  dirs = glob.glob(os.path.join(snapshot, "cache", "clip_synth", "tiny-*", "clip"))
  if len(dirs) != 1:
    raise SystemExit(f"{snapshot}: expected one tiny CLIP under cache/clip_synth, found {dirs}")
  _, params = clip_io.load_clip(dirs[0])
  out = {k: np.asarray(v) for k, v in train.flatten(params).items()}
  for name in ("clip_config.json", "word_tokenizer.json"):
    with open(os.path.join(dirs[0], name)) as f:
      out[name] = f.read()
  return out


def same(x, y) -> bool:
  if isinstance(x, np.ndarray):
    return isinstance(y, np.ndarray) and x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
  return x == y


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("before")
  p.add_argument("after")
  p.add_argument("--write", action="store_true")
  p.add_argument("--why", default="")
  p.add_argument("--commits", default="")
  args = p.parse_args()
  a, b = tiny_clip(args.before), tiny_clip(args.after)
  differing = sorted(k for k in set(a) | set(b) if k not in a or k not in b or not same(a[k], b[k]))
  print(f"{len(a)} arrays / files; differing: {differing or 'none'}")
  if not args.write:
    return
  if differing or not args.why or not args.commits:
    raise SystemExit("not re-keyed: the tiny CLIPs differ, or --why / --commits is missing")
  c = clip_experiment.get_config().clip_train
  path = os.path.join(cp.SHIPPED_DIR, cp.PROVENANCE_FILE)
  with open(path) as f:
    prov = json.load(f)
  now = cp.weights_files()
  changed = sorted(f for f in set(now) | set(prov["files"]) if now.get(f) != prov["files"].get(f))
  entry = {"changed": changed, "code_from": prov["key"]["code"], "code_to": cp.weights_key(c)["code"],
           "date": datetime.date.today().isoformat(), "from": prov["digest"], "to": cp.weights_digest(c), "why": args.why,
           "evidence": f"experiments/rekey/small_snapshot.sh at {args.commits}: the clip_pretrain.py:small CLIPs' "
                       "weights are bitwise equal (every array), their config and tokenizer identical"}
  prov["rekeyed"].append(entry)
  prov.update(digest=entry["to"], key=cp.weights_key(c), files=now)
  with open(path, "w") as f:
    json.dump(prov, f, indent=1, sort_keys=True, default=str)
  print(json.dumps(entry, indent=1))


if __name__ == "__main__":
  main()
