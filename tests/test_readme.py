"""README's two opening commands stay true: CI runs the test command verbatim; the main command is the main job."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(__file__))


def _readme_commands():
  text = open(os.path.join(ROOT, "README.md")).read()
  block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
  return [l for l in block.splitlines() if l.strip() and not l.startswith("#")]


def test_readme_opens_with_exactly_two_commands():
  text = open(os.path.join(ROOT, "README.md")).read()
  first_block = text.index("```bash")
  assert text[:first_block].count("```") == 0
  assert len(_readme_commands()) == 2


def test_main_command_runs_the_main_job():
  main = _readme_commands()[0]
  assert "pip install" in main and "-r requirements.txt" in main
  assert main.endswith("-m sgvu.main --config=experiments/zs_sbir.py")


def test_ci_runs_the_readme_test_command():
  test_cmd = _readme_commands()[1]
  ci = open(os.path.join(ROOT, ".ci", "run")).read().splitlines()
  assert test_cmd in ci, f"{test_cmd!r} not in .ci/run"
  assert "pytest" in test_cmd and "requirements-dev.txt" in test_cmd


def test_requirements_pin_the_cpu_torch():
  dev = open(os.path.join(ROOT, "requirements-dev.txt")).read().splitlines()
  assert "torch==2.13.0" in dev
  assert not any(l.startswith("torch") for l in open(os.path.join(ROOT, "requirements.txt")).read().splitlines())
