"""`python -m sgvu.tools.evaluate`, called in-process through main(argv)."""

import json

import numpy as np
import pytest

from sgvu.metrics import retrieval
from sgvu.tools import evaluate

REQUIRED = ("mAP@all", "mAP@100", "mAP@200", "P@100", "P@200", "Acc@1", "Acc@5", "Acc@10")


def _arrays(seed=0, num_queries=12, num_gallery=30, dim=8):
  rng = np.random.default_rng(seed)
  return {"query_embeds": rng.standard_normal((num_queries, dim)).astype(np.float32),
          "gallery_embeds": rng.standard_normal((num_gallery, dim)).astype(np.float32),
          "query_labels": rng.integers(0, 3, num_queries),
          "gallery_labels": rng.integers(0, 3, num_gallery),
          "query_targets": rng.integers(0, num_gallery, num_queries)}


def _save(tmp_path, drop=(), **override):
  arrays = {**_arrays(), **override}
  path = tmp_path / "E.npz"
  np.savez(path, **{k: v for k, v in arrays.items() if k not in drop})
  return str(path), arrays


def test_category_level_writes_and_prints_metrics(tmp_path, capsys):
  path, a = _save(tmp_path)
  out = tmp_path / "sub" / "M.json"
  assert evaluate.main(["--embeddings", path, "--out", str(out)]) == 0
  written = json.loads(out.read_text())
  assert set(REQUIRED) <= set(written)
  want = retrieval.retrieval_metrics(a["query_embeds"], a["query_labels"], a["gallery_embeds"], a["gallery_labels"])
  assert written == pytest.approx(want, abs=1e-12)
  assert json.loads(capsys.readouterr().out) == written


def test_instance_level_from_query_targets(tmp_path):
  path, a = _save(tmp_path, drop=("query_labels", "gallery_labels"))
  out = tmp_path / "M.json"
  assert evaluate.main(["--embeddings", path, "--out", str(out), "--ks", "1,5,10,100,200"]) == 0
  written = json.loads(out.read_text())
  assert set(REQUIRED) <= set(written)
  ranks = retrieval.ranks(a["query_embeds"], a["query_targets"], a["gallery_embeds"])
  assert written["Acc@5"] == pytest.approx(np.mean(ranks <= 5))
  assert written["mAP@all"] == pytest.approx(np.mean(1.0 / ranks))


def test_relevance_flag_picks_targets_over_labels(tmp_path):
  path, a = _save(tmp_path)
  out = tmp_path / "M.json"
  assert evaluate.main(["--embeddings", path, "--out", str(out), "--relevance", "targets", "--ks", "3"]) == 0
  ranks = retrieval.ranks(a["query_embeds"], a["query_targets"], a["gallery_embeds"])
  assert json.loads(out.read_text())["Acc@3"] == pytest.approx(np.mean(ranks <= 3))


@pytest.mark.parametrize("drop, override, relevance, message", [
    (("gallery_embeds",), {}, "auto", "missing key(s) ['gallery_embeds']"),
    (("query_labels", "gallery_labels", "query_targets"), {}, "auto", "missing key(s) ['query_targets']"),
    (("gallery_labels",), {}, "labels", "missing key(s) ['gallery_labels']"),
    ((), {"query_labels": np.zeros(5, int)}, "auto", "query_labels must have shape (12,)"),
    ((), {"gallery_embeds": np.zeros(30)}, "auto", "gallery_embeds must be 2-D"),
    ((), {"query_targets": np.full(12, 99)}, "targets", "query_targets must lie in [0, 30)"),
    ((), {"query_embeds": np.full((12, 8), np.nan, np.float32)}, "auto", "query_embeds has NaN"),
])
def test_bad_files_name_the_key_and_file(tmp_path, capsys, drop, override, relevance, message):
  path, _ = _save(tmp_path, drop=drop, **override)
  out = tmp_path / "M.json"
  assert evaluate.main(["--embeddings", path, "--out", str(out), "--relevance", relevance]) == 2
  err = capsys.readouterr().err
  assert path in err and message in err, err
  assert not out.exists()


def test_unreadable_or_missing_file(tmp_path, capsys):
  assert evaluate.main(["--embeddings", str(tmp_path / "nope.npz")]) == 2
  assert "nope.npz: no such file" in capsys.readouterr().err
  bad = tmp_path / "bad.npz"
  bad.write_text("not a zip")
  assert evaluate.main(["--embeddings", str(bad)]) == 2
  assert "bad.npz: cannot read" in capsys.readouterr().err


def test_bad_ks_flag_exits():
  with pytest.raises(SystemExit):
    evaluate.main(["--embeddings", "x.npz", "--ks", "5,zero"])


def test_queries_without_relevant_items_are_reported(tmp_path, capsys):
  labels = np.zeros(12, int)
  labels[:2] = 7  # label 7 is not in the gallery
  path, _ = _save(tmp_path, query_labels=labels, gallery_labels=np.zeros(30, int))
  assert evaluate.main(["--embeddings", path]) == 0
  captured = capsys.readouterr()
  assert "2 of 12 queries have no relevant item" in captured.err and path in captured.err
  assert json.loads(captured.out)["Acc@10"] == pytest.approx(10 / 12)
