"""README's results tables stay true: each carries the fingerprint of the code and config that printed it.

A results table in README.md is preceded by `<!-- table: experiments/NAME.py[:variant] fingerprint=FP -->`,
FP being what `python -m sgvu.main --config=...` printed under the table (`table fingerprint: FP`,
= experiment.table_fingerprint(config)). A change to sgvu's code, to that config (neutral keys aside) or to a
shipped asset changes the fingerprint, and this test fails until the table is printed again and pasted.
"""

import json
import os
import re

from absl import flags
import ml_collections
from ml_collections import config_flags
import pytest

from sgvu import experiment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKER = re.compile(r"^<!-- table: (\S+) fingerprint=([0-9a-f]{16}) -->$")


def _readme_lines():
  with open(os.path.join(ROOT, "README.md")) as f:
    return f.read().splitlines()


def _markers():
  return [m.groups() for m in map(MARKER.match, _readme_lines()) if m]


def load_config(spec: str) -> ml_collections.ConfigDict:
  """`experiments/NAME.py[:variant]` loaded as sgvu.main loads --config (config_flags, locked)."""
  path, _, variant = spec.partition(":")
  values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, flag_values=values, lock_config=True)
  values(["readme", "--config=" + os.path.join(ROOT, path) + (":" + variant if variant else "")])
  return values.config


def _sections():
  """README's `### ` sections: (title, lines), up to the next heading of level <= 3."""
  sections, current = [], None
  for line in _readme_lines():
    if re.match(r"#{1,3} ", line):
      current = (line[4:], []) if line.startswith("### ") else None
      if current:
        sections.append(current)
    elif current:
      current[1].append(line)
  return sections


def test_every_results_table_has_a_marker():
  seeds_tables = 0
  for title, lines in _sections():
    for i, line in enumerate(lines):
      if not (line.startswith("|") and "| seeds |" in line):
        continue
      seeds_tables += 1
      above = [l for l in lines[:i] if l.strip() and not l.startswith("```")]
      marker = MARKER.match(above[-1]) if above else None
      assert marker, (f"README section {title!r}: its results table has no `<!-- table: experiments/NAME.py "
                      "fingerprint=FP -->` line right above it (before its ``` fence)")
      assert f"--config={marker.group(1)}`" in "\n".join(lines), (
          f"README section {title!r}: the marker names {marker.group(1)}, which its command does not")
  assert seeds_tables >= 3 and len(_markers()) == seeds_tables


@pytest.mark.parametrize("spec,printed", _markers())
def test_readme_table_is_current(spec, printed):
  assert experiment.table_fingerprint(load_config(spec)) == printed, (
      f"README table for {spec} is stale: regenerate it with `python -m sgvu.main --config={spec}` "
      "and paste the printed table and fingerprint")


def test_fingerprint_follows_values_not_neutral_keys(monkeypatch):
  base = load_config("experiments/zs_sbir.py")
  fp = experiment.table_fingerprint(base)
  changed = base.copy_and_resolve_references()
  changed.seeds += 1  # neutral: how many seeds does not change what a row computes
  changed.zs_train.log_every += 1
  assert experiment.table_fingerprint(changed) == fp
  changed.zs_train.num_steps += 1
  assert experiment.table_fingerprint(changed) != fp
  monkeypatch.setattr(experiment, "asset_versions", lambda: ["another-asset"])
  assert experiment.table_fingerprint(base) != fp
  monkeypatch.setattr(experiment, "code_version", lambda task=None: "another-version")
  monkeypatch.setattr(experiment, "asset_versions", lambda: [])
  assert experiment.table_fingerprint(base) != fp


def test_table_code_is_the_tasks_closure_not_the_registries_or_other_tasks():
  root = os.path.dirname(os.path.abspath(experiment.__file__))
  from sgvu.tasks import registry  # pylint: disable=g-import-not-at-top
  closure = lambda task: {os.path.relpath(p, root) for p in experiment.source_closure(
      (registry.module_name(task),) + experiment.RUNNER, ("sgvu.tools",) + experiment.REGISTRIES,
      local_imports=True)}
  zs, otf = closure("zs_sbir"), closure("on_the_fly")
  for need in ("tasks/zs_sbir.py", "tasks/clip_pretrain.py", "experiment.py", "main.py", "losses.py",
               "evaluators/retrieval.py", "metrics/retrieval.py", "data/synth/world.py"):
    assert need in zs, need
  assert {"tasks/on_the_fly.py", "tasks/fg_sbir.py", "rl.py"} <= otf
  for never in ("tasks/registry.py", "data/registry.py", "tasks/on_the_fly.py", "rl.py", "tools/curves.py"):
    assert never not in zs, never
  versions = {t: experiment.code_version(t) for t in ("zs_sbir", "on_the_fly", "clip_pretrain")}
  assert len(set(versions.values())) == 3 and all(re.fullmatch(r"[0-9a-f]{16}", v) for v in versions.values())


def test_run_writes_and_prints_the_table_fingerprint(tmp_path, capsys):
  def table(**kw):
    return experiment.Table(name="toy", split="test", metrics=["P@10"], methods=("a",),
                            run_row=lambda method, seed, directory: {"P@10": 0.5},
                            settings=lambda m: {"method": m}, **kw)

  experiment.run(table(fingerprint="0123456789abcdef"), str(tmp_path / "with"))
  with open(tmp_path / "with" / "results.json") as f:
    assert json.load(f)["table_fingerprint"] == "0123456789abcdef"
  lines = capsys.readouterr().out.splitlines()
  assert lines[lines.index("table fingerprint: 0123456789abcdef") - 1].startswith("| a ")  # right under the table
  experiment.run(table(), str(tmp_path / "without"))
  with open(tmp_path / "without" / "results.json") as f:
    assert "table_fingerprint" not in json.load(f)
  assert "table fingerprint" not in capsys.readouterr().out
