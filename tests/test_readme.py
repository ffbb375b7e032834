"""README's two opening commands stay true: CI runs the test command verbatim; the main command is the main job."""

import os
import re
import subprocess
import sys

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
  assert "pip install" in main and "-r requirements.txt -e ." in main  # sgvu installed: tools work anywhere
  assert main.endswith("-m sgvu.main --config=experiments/zs_sbir.py")


def test_ci_runs_the_readme_test_command():
  test_cmd = _readme_commands()[1]
  ci = open(os.path.join(ROOT, ".ci", "run")).read().splitlines()
  assert test_cmd in ci, f"{test_cmd!r} not in .ci/run"
  assert "pytest" in test_cmd and "requirements-dev.txt -e ." in test_cmd


def test_requirements_pin_the_cpu_torch():
  dev = open(os.path.join(ROOT, "requirements-dev.txt")).read().splitlines()
  assert "torch==2.13.0" in dev
  assert not any(l.startswith("torch") for l in open(os.path.join(ROOT, "requirements.txt")).read().splitlines())


def test_installed_package_works_from_any_directory(tmp_path):
  """The venv's python finds sgvu and the experiment configs outside the repository."""
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  r = subprocess.run([sys.executable, "-m", "sgvu.tools.search", "--help"], cwd=tmp_path, env=env,
                     capture_output=True, text=True, timeout=120)
  assert r.returncode == 0 and "--workdir" in r.stdout, r.stderr[-2000:]
  r = subprocess.run([sys.executable, "-c", "from experiments import zs_sbir; print(zs_sbir.get_config('small').name)"],
                     cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
  assert r.returncode == 0 and r.stdout.strip() == "zs_sbir_small", r.stderr[-2000:]
