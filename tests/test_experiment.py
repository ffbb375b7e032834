"""The table runner (sgvu/experiment.py): fingerprinted row reuse, seeds, results.json, stops, flags."""

import dataclasses
import json
import os

import pytest

from sgvu import experiment, interrupt


class ToyRows:
  """A table whose rows 'train' by recording the call; the metric depends on settings and seed."""

  def __init__(self, lr=0.1, methods=("a", "b"), seeds=3, stop_during=None):
    self.lr, self.methods, self.seeds, self.stop_during = lr, methods, seeds, stop_during
    self.calls = []

  def run_row(self, method, seed, directory):
    self.calls.append((method, seed))
    assert os.path.isdir(directory)
    with open(os.path.join(directory, "checkpoint"), "w") as f:  # what a half-trained row leaves
      f.write(str(self.lr))
    if self.stop_during == (method, seed):
      interrupt.request()  # Ctrl-C while this row evaluates
    return {"P@10": self.lr + seed / 100 + (0.5 if method == "b" else 0.0), "trainable_params": 7}

  def table(self, **kw):
    args = dict(name="toy", split="test", metrics=["P@10"], methods=self.methods, run_row=self.run_row,
                settings=lambda m: {"lr": self.lr, "method": m}, trains=lambda m: m != "frozen",
                seeds=self.seeds)
    args.update(kw)
    return experiment.Table(**args)


def _results(workdir):
  with open(os.path.join(workdir, "results.json")) as f:
    return json.load(f)


def test_seeds_mean_std_and_reuse(tmp_path, capsys):
  toy = ToyRows(methods=("a", "b", "frozen"))
  out = experiment.run(toy.table(), str(tmp_path))
  rows = {r["method"]: r for r in out["rows"]}
  assert rows["a"]["seeds"] == 3 and rows["a"]["P@10"] == pytest.approx(0.11)
  assert rows["a"]["P@10_std"] == pytest.approx(0.008165, abs=1e-6)  # population std of 0.10, 0.11, 0.12
  assert rows["frozen"]["seeds"] == 1 and rows["frozen"]["P@10_std"] == 0.0  # deterministic: one run
  assert len(toy.calls) == 7
  assert "0.1100 ± 0.0082" in capsys.readouterr().out
  saved = _results(tmp_path)
  assert [r["method"] for r in saved["rows"]] == ["a", "b", "frozen"] and saved["rows"][0]["P@10_std"] > 0
  # Same settings again: nothing trains.
  toy.calls.clear()
  experiment.run(toy.table(), str(tmp_path))
  assert toy.calls == []


def test_changed_settings_retrain_and_clear_stale_work(tmp_path):
  toy = ToyRows(seeds=1)
  experiment.run(toy.table(), str(tmp_path))
  stale = tmp_path / "a" / "seed0" / "checkpoint"
  assert stale.read_text() == "0.1"
  # The scenario: other settings and one method -> that row retrains; its old checkpoint is gone.
  toy2 = ToyRows(lr=0.2, methods=("a",), seeds=1)
  out = experiment.run(toy2.table(), str(tmp_path))
  assert toy2.calls == [("a", 0)] and out["rows"][0]["P@10"] == pytest.approx(0.2)
  assert stale.read_text() == "0.2"
  # b was made with other settings than the current ones: not carried into results.json.
  assert [r["method"] for r in _results(tmp_path)["rows"]] == ["a"]


def test_results_keep_earlier_rows_of_the_same_settings(tmp_path):
  experiment.run(ToyRows(seeds=2).table(), str(tmp_path))
  toy = ToyRows(methods=("a",), seeds=2)
  experiment.run(toy.table(), str(tmp_path))
  assert toy.calls == []  # reused
  assert [r["method"] for r in _results(tmp_path)["rows"]] == ["a", "b"]  # b kept: same settings


def test_code_change_invalidates(tmp_path, monkeypatch):
  experiment.run(ToyRows(seeds=1).table(), str(tmp_path))
  monkeypatch.setattr(experiment, "code_version", lambda task=None: "another-version")
  toy = ToyRows(seeds=1)
  experiment.run(toy.table(), str(tmp_path))
  assert toy.calls == [("a", 0), ("b", 0)]


def test_a_tables_own_code_version_keys_its_rows(tmp_path):
  experiment.run(ToyRows(seeds=1).table(), str(tmp_path))
  toy = ToyRows(seeds=1)
  experiment.run(dataclasses.replace(toy.table(), code="task-code-1"), str(tmp_path))
  assert toy.calls == [("a", 0), ("b", 0)]  # other code than the whole-package default: trained again
  toy = ToyRows(seeds=1)
  experiment.run(dataclasses.replace(toy.table(), code="task-code-1"), str(tmp_path))
  assert toy.calls == []
  assert _results(tmp_path)["code_version"] == "task-code-1"


def test_source_closure_follows_function_level_imports_only_when_asked():
  root = os.path.dirname(os.path.abspath(experiment.__file__))
  rel = lambda paths: {os.path.relpath(p, root) for p in paths}
  module_level = rel(experiment.source_closure("sgvu.data"))
  assert "data/registry.py" in module_level and "data/sketchy.py" not in module_level  # readers load on use
  assert "data/sketchy.py" in rel(experiment.source_closure("sgvu.data", local_imports=True))
  assert "data/registry.py" not in rel(experiment.source_closure("sgvu.data", experiment.REGISTRIES))


def test_neutral_keys_do_not_invalidate():
  a = experiment.fingerprint({"train": {"lr": 1, "log_every": 5}, "methods": ["x"]}, 0)
  b = experiment.fingerprint({"train": {"lr": 1, "log_every": 50}, "methods": ["y", "z"]}, 0)
  c = experiment.fingerprint({"train": {"lr": 2, "log_every": 5}, "methods": ["x"]}, 0)
  assert a == b != c and a != experiment.fingerprint({"train": {"lr": 1}}, 1)


def test_stop_during_evaluation_ends_the_table_and_the_same_command_resumes(tmp_path):
  toy = ToyRows(methods=("a", "b"), seeds=2, stop_during=("a", 0))
  with pytest.raises(interrupt.Stopped, match="run the same command again to resume"):
    experiment.run(toy.table(), str(tmp_path))
  assert toy.calls == [("a", 0)]  # nothing after the stop
  interrupt.reset()
  resumed = ToyRows(methods=("a", "b"), seeds=2)
  out = experiment.run(resumed.table(), str(tmp_path))
  assert ("a", 0) in resumed.calls  # its result was never written: evaluated again
  uninterrupted = experiment.run(ToyRows(methods=("a", "b"), seeds=2).table(), str(tmp_path / "other"))
  strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]
  assert strip(out["rows"]) == strip(uninterrupted["rows"])


def test_stop_before_pictures(tmp_path):
  drawn = []
  toy = ToyRows(methods=("a",), seeds=1, stop_during=("a", 0))
  with pytest.raises(interrupt.Stopped):
    experiment.run(toy.table(pictures=drawn.append), str(tmp_path))
  interrupt.reset()
  assert drawn == []


def test_flags_and_smoke_test_label(tmp_path, capsys):
  toy = ToyRows(methods=("a",), seeds=1)
  experiment.run(toy.table(metrics=["P@10"], gallery_size=10, smoke_test=True), str(tmp_path))
  out = capsys.readouterr().out
  assert "P@10*" in out and "K >= gallery size (10)" in out and "smoke test" in out
  assert _results(tmp_path)["flagged"] == {"P@10": "K >= gallery size 10"}
  assert experiment.flagged_metrics(["mAP@all", "P@100", "Acc@5"], 40) == ["P@100"]


def test_row_without_a_metric_fails_naming_it(tmp_path):
  toy = ToyRows(methods=("a",), seeds=1)
  with pytest.raises(ValueError, match="mAP@all"):
    experiment.run(toy.table(metrics=["P@10", "mAP@all"]), str(tmp_path))


def test_slug():
  assert experiment.slug("reward-1/sqrt(rank)") == "reward-1_sqrt_rank"
  assert experiment.slug("reward-rank<=5") == "reward-rank_le5"
