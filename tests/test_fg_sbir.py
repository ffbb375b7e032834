"""FG-SBIR base of seed 001: model shapes, ranks convention, gallery targets, the small experiment end to end."""

import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import fg_sbir as fg_config
from sgvu import clip_io, metrics
from sgvu import main as sgvu_main
from sgvu.data.base import PhotoItem, SketchItem, Split
from sgvu.models.clip import CLIP, get_preset
from sgvu.tasks import fg_sbir


def _run(config, workdir):
  """What `python -m sgvu.main` does: look the experiment up in the registry, validate, run."""
  return sgvu_main.run(config, str(workdir))


def write_random_clip(directory: str) -> str:
  """A randomly initialised tiny CLIP in convert_clip format (no pretraining: fast tests)."""
  cfg = get_preset("tiny")
  size = cfg.vision.image_size
  params = CLIP(cfg).init(jax.random.key(0), jnp.zeros((1, size, size, 3)),
                          jnp.zeros((1, cfg.text.context_length), jnp.int32))["params"]
  clip_io.save_converted(directory, cfg, params)
  return directory


@pytest.fixture(scope="module")
def random_clip(tmp_path_factory):
  return write_random_clip(str(tmp_path_factory.mktemp("clip")))


@pytest.mark.parametrize("encoder,attention", [("cnn", False), ("cnn", True), ("clip", False), ("clip", True)])
def test_model_embeddings_are_unit_norm(encoder, attention):
  cfg = get_preset("tiny")
  model = fg_sbir.FGSBIRModel(encoder, cfg, cnn_widths=(8, 16), feature_dim=12, num_prompts=2, embed_dim=16,
                              attention=attention, attention_hidden=8)
  x = jax.random.uniform(jax.random.key(1), (3, 32, 32, 3))
  params = model.init(jax.random.key(0), x, x, method=fg_sbir.FGSBIRModel.embed_both)["params"]
  sk, ph = model.apply({"params": params}, x, x, method=fg_sbir.FGSBIRModel.embed_both)
  chex.assert_shape([sk, ph], (3, 16))
  np.testing.assert_allclose(jnp.linalg.norm(sk, axis=-1), 1.0, rtol=1e-5)
  if encoder == "clip":  # per-modality prompts: the same image embeds differently as a sketch and a photo
    assert float(jnp.max(jnp.abs(sk - ph))) > 1e-4
  else:  # one shared (Siamese) network
    np.testing.assert_allclose(sk, ph, atol=1e-6)
  width = cfg.embed_dim if encoder == "clip" else 12
  feats = model.apply({"params": params}, x, "sketch", method=fg_sbir.FGSBIRModel.features)
  chex.assert_shape(feats, (3, width * (2 if attention else 1)))  # attention concatenates global + attended
  assert ("attn" in params) == attention and (("img" in params) == (encoder == "clip"))
  with pytest.raises(ValueError, match="modality"):
    model.apply({"params": params}, x, "drawing")


def test_losses_rank_the_true_photo_first():
  rng = np.random.default_rng(0)
  photos = jnp.asarray(rng.normal(size=(6, 8)), jnp.float32)
  photos /= jnp.linalg.norm(photos, axis=-1, keepdims=True)
  labels = jnp.array([0, 0, 0, 1, 1, 1])
  negatives = jnp.roll(photos, 1, axis=0)
  for name, fn in fg_sbir.LOSSES.items():
    matched, _ = fn(photos, photos, negatives, labels, 0.2, 10.0)
    swapped, _ = fn(negatives, photos, photos, labels, 0.2, 10.0)
    assert float(matched) < float(swapped), name
  # InfoNCE: photos of another category are not negatives; with one category per pair it is 0.
  loss, aux = fg_sbir.infonce_loss(photos, photos, None, jnp.arange(6), 0.2, 10.0)
  np.testing.assert_allclose(loss, 0.0, atol=1e-6)
  assert float(aux["batch_acc"]) == 1.0


def test_numpy_ranks_follow_the_metrics_convention():
  rng = np.random.default_rng(0)
  gallery = rng.normal(size=(30, 8)).astype(np.float32)
  gallery[7] = gallery[3]  # a tie: the lower index ranks first
  queries = rng.normal(size=(50, 8)).astype(np.float32)
  queries[0] = gallery[3]
  targets = rng.integers(30, size=50).astype(np.int32)
  targets[:2] = [7, 3]
  queries[1] = gallery[3]
  r = fg_sbir.ranks(queries, targets, gallery, block=16)
  np.testing.assert_array_equal(r, metrics.ranks(queries, targets, gallery))
  assert r[0] == 2 and r[1] == 1
  acc = fg_sbir.instance_accuracy(queries, targets, gallery)
  assert acc["Acc@1"] <= acc["Acc@5"] <= acc["Acc@10"] and acc["Acc@10"] == np.mean(r <= 10)


def test_gallery_targets_map_sketches_to_gallery_rows():
  photos = tuple(PhotoItem(f"p{i}", 0) for i in range(4))
  sketches = (SketchItem("s0", 0, 2), SketchItem("s1", 0, 3), SketchItem("s2", 0, None), SketchItem("s3", 0, 0))
  split = Split("test", ("shoe",), photos, sketches)
  # Photo 3 failed to load: the gallery holds photos 0, 1, 2 in that order; sketch 1 and 2 drop out.
  keep, targets = fg_sbir.gallery_targets(split, np.array([0, 1, 2, 3]), np.array([0, 1, 2]))
  np.testing.assert_array_equal(keep, [0, 3])
  np.testing.assert_array_equal(targets, [2, 0])
  with pytest.raises(ValueError, match="no sketch"):
    fg_sbir.gallery_targets(split, np.array([1]), np.array([0, 1, 2]))


@pytest.mark.parametrize("loss", ["infonce", "triplet"])
def test_small_experiment_end_to_end_and_reuse(tmp_path, random_clip, loss):
  config = fg_config.get_config("small")
  config.methods = ("frozen", "B1", "B2")
  config.model.clip_init = random_clip
  config.fg.loss = loss
  config.fg_train.sharding.num_devices = 1  # 8 fake devices compile slowly; the loop's sharding has its own tests
  _run(config, str(tmp_path))
  with open(tmp_path / "results.json") as f:
    rows = {r["method"]: r for r in json.load(f)["rows"]}
  assert list(rows) == list(config.methods)
  for r in rows.values():
    assert 0.0 <= r["Acc@1"] <= r["Acc@5"] <= r["Acc@10"] <= 1.0
  assert rows["frozen"]["trainable_params"] == 0
  assert rows["B2"]["trainable_params"] > rows["B1"]["trainable_params"] > 0
  logged = (tmp_path / "B1" / "metrics.jsonl").read_text()
  assert ("active_triplets" if loss == "triplet" else "batch_acc") in logged
  before = os.path.getmtime(tmp_path / "B1" / "row.json")
  _run(config, str(tmp_path))
  assert os.path.getmtime(tmp_path / "B1" / "row.json") == before


@pytest.mark.parametrize("change,message", [
    (lambda c: setattr(c, "methods", ("B1", "B3")), "B3"),
    (lambda c: setattr(c.data, "dataset", "chairv2") or setattr(c.data, "root", "/x") or
     setattr(c.fg, "encoder", "clip"), "clip_init"),
    (lambda c: setattr(c.fg, "encoder", "resnet"), "resnet"),
    (lambda c: setattr(c.fg, "loss", "contrastive"), "contrastive"),
    (lambda c: setattr(c.data, "test_fraction", 1.0), "test_fraction"),
    (lambda c: setattr(c.fg, "margin", 0.0), "margin"),
    (lambda c: setattr(c.fg_train.optim, "name", "adamm"), "adamm"),
])
def test_bad_settings_fail_before_compute(tmp_path, change, message):
  config = fg_config.get_config("small")
  change(config)
  with pytest.raises(ValueError, match=message):
    _run(config, str(tmp_path))
  assert not (tmp_path / "results.json").exists()
