"""sgvu.tools.curves: eval curves from a table workdir's metrics.jsonl files."""

import json
import os

from sgvu.tools import curves


def _write(workdir, row, seed, records):
  d = os.path.join(workdir, row, f"seed{seed}")
  os.makedirs(d)
  with open(os.path.join(d, "metrics.jsonl"), "w") as f:
    for r in records:
      f.write(json.dumps(r) + "\n")
    f.write('{"step": 9, "eval": {"mAP')  # a line cut by a kill


def test_best_step_is_the_best_seed_mean(tmp_path, capsys):
  w = str(tmp_path)
  _write(w, "ours", 0, [{"step": 1, "loss": 3.0}, {"step": 40, "eval": {"mAP@all": 0.2}},
                        {"step": 80, "eval": {"mAP@all": 0.4}}, {"step": 120, "eval": {"mAP@all": 0.3}}])
  _write(w, "ours", 1, [{"step": 40, "eval": {"mAP@all": 0.3}}, {"step": 80, "eval": {"mAP@all": 0.2}},
                        {"step": 120, "eval": {"mAP@all": 0.5}}])
  got = curves.read_curves(w, "mAP@all")
  assert got == {"ours": {0: {40: 0.2, 80: 0.4, 120: 0.3}, 1: {40: 0.3, 80: 0.2, 120: 0.5}}}
  assert curves.best_step(got["ours"]) == (120, 0.4)
  assert curves.main(["--workdir", w]) == 0
  assert "ours: best mAP@all 0.4000 at step 120" in capsys.readouterr().out


def test_ties_go_to_the_earlier_step_and_no_records_is_an_error(tmp_path, capsys):
  assert curves.best_step({0: {40: 0.5, 80: 0.5}}) == (40, 0.5)
  assert curves.main(["--workdir", str(tmp_path)]) == 2
  assert "no eval records" in capsys.readouterr().err
