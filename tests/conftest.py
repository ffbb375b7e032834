"""Test-session set-up: 8 fake CPU devices (for sharding tests), parsed absl flags, and a persistent
compilation cache, so that a second run of the suite skips the XLA compiles of the first.

All must happen before JAX initialises its backend, hence here.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import flags  # noqa: E402

from sgvu import compile_cache  # noqa: E402

# grain's worker processes read absl flags; under pytest nobody parses them.
if not flags.FLAGS.is_parsed():
  flags.FLAGS.mark_as_parsed()

# Apart from the user's runs (other XLA flags, 8 devices): $SGVU_CACHE/xla-tests or ~/.cache/sgvu/xla-tests.
# SGVU_COMPILE_CACHE=0 turns it off.
compile_cache.enable(os.path.join(os.path.dirname(compile_cache.default_directory()), "xla-tests"))


import pytest  # noqa: E402


@pytest.fixture(scope="module")
def module_sgvu_cache(tmp_path_factory):
  """A fresh $SGVU_CACHE per test module: one pretrained tiny SynthSketch CLIP shared by the module's runs."""
  old = os.environ.get("SGVU_CACHE")
  os.environ["SGVU_CACHE"] = str(tmp_path_factory.mktemp("cache"))
  yield
  if old is None:
    os.environ.pop("SGVU_CACHE")
  else:
    os.environ["SGVU_CACHE"] = old
