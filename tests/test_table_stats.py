"""Differences beyond two standard deviations (sgvu/table_stats.py) and the runner's block (Table.baseline)."""

import json
import os

import pytest

from sgvu import experiment, table_stats

METRICS = ["mAP@all", "P@100"]
# (method, seed) -> metrics; deterministic rows ('frozen', 'zero') only have seed 0.
NUMBERS = {
    ("ours", 0): (0.50, 0.30), ("ours", 1): (0.52, 0.30), ("ours", 2): (0.54, 0.30),
    ("linear", 0): (0.41, 0.20), ("linear", 1): (0.39, 0.22), ("linear", 2): (0.43, 0.24),
    ("frozen", 0): (0.40, 0.20),
    ("zero", 0): (0.30, 0.20),
}


def _table(methods, seeds=3, baseline="frozen"):
  def run_row(method, seed, directory):
    return dict(zip(METRICS, NUMBERS[(method, seed)]))
  return experiment.Table(name="toy", split="test", metrics=METRICS, methods=methods, run_row=run_row,
                          settings=lambda m: {"method": m}, trains=lambda m: m not in ("frozen", "zero"),
                          seeds=seeds, baseline=baseline)


def _results(workdir):
  with open(os.path.join(workdir, "results.json")) as f:
    return json.load(f)


def test_formula_on_a_hand_example():
  a = {"method": "a", "seeds": 3, "m": 0.61, "m_std": 0.03}
  b = {"method": "b", "seeds": 3, "m": 0.50, "m_std": 0.04}
  c = table_stats.compare(a, b, "m")  # 2 * sqrt(0.03^2 + 0.04^2) = 0.1 < 0.11
  assert c == {"diff": pytest.approx(0.11), "two_std": pytest.approx(0.1), "beyond": True}
  a["m"] = 0.59
  assert not table_stats.compare(a, b, "m")["beyond"]  # 0.09 < 0.1
  assert table_stats.compare(b, a, "m")["diff"] == pytest.approx(-0.09)
  # Both deterministic: no noise, any difference is exact; equal means are not a difference.
  x, y = {"method": "x", "seeds": 1, "m": 0.4, "m_std": 0.0}, {"method": "y", "seeds": 1, "m": 0.3, "m_std": 0.0}
  assert table_stats.compare(x, y, "m", {"x", "y"}) == {"diff": pytest.approx(0.1), "two_std": 0.0,
                                                         "beyond": True, "exact": True}
  assert not table_stats.compare(x, dict(y, m=0.4), "m", {"x", "y"})["beyond"]
  # A trained row with one seed has no std: never claimed, whichever side it is on.
  assert table_stats.compare(x, y, "m", {"y"}) == {"diff": pytest.approx(0.1), "two_std": None, "beyond": False,
                                                    "note": "std unknown (1 seed)"}
  assert table_stats.compare(x, y, "m", {"x"})["note"] == "std unknown (y: 1 seed)"


def test_pairwise_best_first():
  rows = [{"method": m, "seeds": 3, "m": v, "m_std": 0.01} for m, v in (("c", 0.30), ("a", 0.50), ("b", 0.45),
                                                                         ("d", 0.31))]
  pairs = table_stats.pairwise_beyond_2std(rows, "m")  # 2 std of a pair: 2 * sqrt(2) * 0.01 = 0.0283
  assert [(a, b) for a, b, _, _ in pairs] == [("a", "c"), ("a", "d"), ("a", "b"), ("b", "c"), ("b", "d")]
  assert pairs[0][2:] == (pytest.approx(0.2), pytest.approx(0.02 * 2 ** 0.5))
  assert table_stats.pairwise_beyond_2std(rows + [{"method": "e", "seeds": 1, "m": 0.9, "m_std": 0.0}], "m") \
      == pairs  # a one-seed trained row is in no pair


def test_runner_prints_the_block_and_keeps_it_in_results(tmp_path, capsys):
  experiment.run(_table(("ours", "linear", "frozen", "zero")), str(tmp_path))
  out = capsys.readouterr().out
  header = ("differences from frozen beyond 2 std (|mean - mean_frozen| > 2 * sqrt(std^2 + std_frozen^2), "
            "std over seeds):")
  assert header in out.splitlines()
  lines = out[out.index("differences from frozen"):].rstrip().splitlines()
  assert lines[1:] == [
      "  ours: mAP@all +0.1200 (2 std 0.0327), P@100 +0.1000 (2 std 0.0000)",
      "  linear: none",
      "  zero: mAP@all -0.1000 (exact: both deterministic)",
      "pairs beyond 2 std on mAP@all:",
      "  ours > zero: +0.2200 (2 std 0.0327)",
      "  ours > frozen: +0.1200 (2 std 0.0327)",
      "  ours > linear: +0.1100 (2 std 0.0462)",
      "  linear > zero: +0.1100 (2 std 0.0327)",
      "  frozen > zero: +0.1000 (exact: both deterministic)",
  ]
  saved = _results(tmp_path)["beyond_2std"]
  assert saved["baseline"] == "frozen" and list(saved["rows"]) == ["ours", "linear", "zero"]
  ours = saved["rows"]["ours"]["mAP@all"]
  assert ours["beyond"] and ours["diff"] == pytest.approx(0.12) and ours["two_std"] == pytest.approx(0.03266, abs=1e-5)
  assert saved["rows"]["ours"]["P@100"] == {"diff": pytest.approx(0.1), "two_std": 0.0, "beyond": True}
  assert not saved["rows"]["linear"]["mAP@all"]["beyond"] and not saved["rows"]["linear"]["P@100"]["beyond"]
  assert saved["rows"]["zero"]["mAP@all"] == {"diff": pytest.approx(-0.1), "two_std": 0.0, "beyond": True,
                                              "exact": True}
  assert saved["rows"]["zero"]["P@100"] == {"diff": 0.0, "two_std": 0.0, "beyond": False, "exact": True}
  assert [p[:2] for p in saved["pairs"]["mAP@all"]] == [["ours", "zero"], ["ours", "frozen"], ["ours", "linear"],
                                                        ["linear", "zero"], ["frozen", "zero"]]


def test_one_seed_rows_claim_nothing(tmp_path, capsys):
  experiment.run(_table(("ours", "frozen", "zero"), seeds=1), str(tmp_path))
  out = capsys.readouterr().out
  lines = out[out.index("differences from frozen"):].rstrip().splitlines()
  assert lines[1:] == ["  ours: std unknown (1 seed)",
                       "  zero: mAP@all -0.1000 (exact: both deterministic)",
                       "pairs beyond 2 std on mAP@all:",
                       "  frozen > zero: +0.1000 (exact: both deterministic)"]
  saved = _results(tmp_path)["beyond_2std"]["rows"]["ours"]["mAP@all"]
  assert saved == {"diff": pytest.approx(0.1), "two_std": None, "beyond": False, "note": "std unknown (1 seed)"}
  # The baseline itself trained with one seed: nothing is claimed against it.
  experiment.run(_table(("ours", "zero"), seeds=1, baseline="ours"), str(tmp_path / "b"))
  out = capsys.readouterr().out
  assert "  zero: std unknown (ours: 1 seed)\npairs beyond 2 std on mAP@all:\n  none" in out


@pytest.mark.parametrize("baseline", ["", "frozen"])
def test_no_baseline_row_no_block(tmp_path, capsys, baseline):
  experiment.run(_table(("ours", "linear"), baseline=baseline), str(tmp_path))
  assert "beyond 2 std" not in capsys.readouterr().out
  assert "beyond_2std" not in _results(tmp_path)
