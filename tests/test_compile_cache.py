"""sgvu.compile_cache: a compile leaves an entry that the next process reuses; SGVU_COMPILE_CACHE=0 turns it off."""

import os
import subprocess
import sys

PROGRAM = """
import sys
import jax, jax.numpy as jnp
from sgvu import compile_cache
hits = []
jax.monitoring.register_event_listener(lambda event, **kw: hits.append(event))
print("dir", compile_cache.enable(sys.argv[1]))
jax.jit(lambda x: jnp.sin(x) * 2 + 1)(jnp.arange(7.0)).block_until_ready()
print("hits", hits.count("/jax/compilation_cache/cache_hits"))
"""


def _compile(directory, **env):
  env = {**os.environ, "JAX_PLATFORMS": "cpu", **env}
  env.pop("XLA_FLAGS", None)
  r = subprocess.run([sys.executable, "-c", PROGRAM, str(directory)], env=env, capture_output=True, text=True,
                     timeout=120)
  assert r.returncode == 0, r.stderr
  return dict(line.split(" ", 1) for line in r.stdout.splitlines())


def test_compiles_are_cached_and_reused(tmp_path):
  out = _compile(tmp_path / "xla")
  assert out == {"dir": str(tmp_path / "xla"), "hits": "0"}
  entries = os.listdir(tmp_path / "xla")
  assert entries  # even a tiny CPU program is cached
  assert int(_compile(tmp_path / "xla")["hits"]) >= 1  # a new process reads them instead of compiling
  assert sorted(os.listdir(tmp_path / "xla")) == sorted(entries)


def test_env_turns_it_off(tmp_path):
  assert _compile(tmp_path / "xla", SGVU_COMPILE_CACHE="0") == {"dir": "None", "hits": "0"}
  assert not (tmp_path / "xla").exists()


def test_default_directory_follows_sgvu_cache(monkeypatch, tmp_path):
  from sgvu import compile_cache
  monkeypatch.setenv("SGVU_CACHE", str(tmp_path))
  assert compile_cache.default_directory() == str(tmp_path / "xla")
  monkeypatch.delenv("SGVU_CACHE")
  assert compile_cache.default_directory() == os.path.expanduser("~/.cache/sgvu/xla")
