"""Unsupervised SBIR by context prediction as an experiment (issue #13): the per-class evaluator against a
brute-force reference, validation naming keys, and the :small table end to end (every row, files, pictures)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from experiments import context as context_config
from sgvu import main as sgvu_main
from sgvu.data.synth import SynthSketch
from sgvu.evaluators import get as get_evaluator
from sgvu.tasks import context


@pytest.fixture(scope="module")
def tiny_source():
  return SynthSketch(protocol="instance", categories=("cat", "car", "chair"), photos_per_category=8,
                     sketches_per_photo=2, test_fraction=0.5)


def _reference_acc(q, ql, own, g, gl, k):
  """Per class, the fraction of sketches whose own photo is among the k most cosine-similar photos of that class."""
  unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
  q, g = unit(q), unit(g)
  per = {}
  for label in np.unique(ql):
    hits = []
    for n in np.flatnonzero(ql == label):
      rows = np.flatnonzero(gl == label)
      order = rows[np.argsort(-(g[rows] @ q[n]), kind="stable")]
      hits.append(own[n] in order[:k])
    per[int(label)] = float(np.mean(hits))
  return per


def test_per_class_retrieval_matches_brute_force(tiny_source):
  sp = tiny_source.split("test")
  evaluator = get_evaluator("per_class_retrieval")({"embed_sketch": None, "embed_photo": None}, source=tiny_source,
                                                   image_size=32, ks=(1, 2))
  rng = np.random.default_rng(0)
  g = rng.normal(size=(len(sp.photos), 16)).astype(np.float32)
  gl = np.asarray([p.label for p in sp.photos])
  own = np.asarray([s.photo for s in sp.sketches])
  q = (g[own] + rng.normal(scale=1.5, size=(len(own), 16))).astype(np.float32)  # noisy: not every hit is rank 1
  ql = gl[own]
  out = evaluator.score((q, ql, np.arange(len(q))), (g, gl, np.arange(len(g))))
  for k in (1, 2):
    ref = _reference_acc(q, ql, own, g, gl, k)
    for label, value in ref.items():
      assert out[f"Acc@{k} {tiny_source.categories[label]}"] == pytest.approx(value)
    assert out[f"Acc@{k}"] == pytest.approx(np.mean(list(ref.values())))
  assert 0 < out["Acc@1"] < 1  # the test can tell a wrong ranking from a right one
  flipped = evaluator.score((-g[own], ql, np.arange(len(q))), (g, gl, np.arange(len(g))))
  assert flipped["Acc@1"] == 0.0  # its own photo is the least similar of its class


@pytest.mark.parametrize("key, value, message", [
    ("methods", ("ours", "best"), "unknown \\['best'\\]"),
    ("data.eval_classes", ("cat", "unicorn"), "data.eval_classes: unknown or repeated \\['unicorn'\\]"),
    ("pretext.patch", 30, "spans 94 px > data.image_size 64"),
    ("picture_methods", ("ours",), None),
])
def test_validate_names_the_key(key, value, message):
  c = context_config.get_config()
  if key == "picture_methods":
    c.methods = ("random-init",)
    c.picture_methods = value
    message = "picture_methods \\['ours'\\] are not in config.methods"
  target, _, leaf = key.rpartition(".")
  setattr(c[target] if target else c, leaf, value)
  with pytest.raises(ValueError, match=message):
    context.validate(c)


def test_small_config_runs_every_row_and_writes_files(tmp_path, capsys):
  c = context_config.get_config("small")
  out = sgvu_main.run(c, str(tmp_path))
  rows = {r["method"]: r for r in out["rows"]}
  assert list(rows) == list(c.methods)
  for r in rows.values():
    assert 0.0 <= r["Acc@5"] <= 1.0 and 0.0 <= r["Acc@10"] <= 1.0
  printed = capsys.readouterr().out
  assert "per class, Acc@5" in printed and "held-out pretext accuracy" in printed
  tables = json.load(open(tmp_path / context.TABLES_FILE))
  assert set(tables["pretext_acc"]) == {"pretext-photo", "pretext-edge", "ours", "ours-init-none",
                                        "ours-init-lower", "ours-no-bn"}
  assert all(0.0 <= v[0] <= 1.0 for v in tables["pretext_acc"].values())
  assert tables["per_class"]["ours"][f"Acc@5 {c.data.eval_classes[0]}"] is not None
  for name in (context.TSNE_FILE, context.GRID_FILE):
    assert os.path.getsize(tmp_path / name) > 1000, name
  # The classifier was trained once per BatchNorm setting and is shared by the rows that start from it.
  assert len(os.listdir(tmp_path / "pretrained")) == 2
  again = sgvu_main.run(c, str(tmp_path))  # finished rows are reused, not retrained
  assert [r["Acc@5"] for r in again["rows"]] == [rows[m]["Acc@5"] for m in c.methods]
