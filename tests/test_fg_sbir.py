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
from sgvu.data.base import PhotoItem, SketchItem, Split, gallery_targets
from sgvu.evaluators.retrieval import InstanceRetrieval
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
  model = fg_sbir.FGSBIRModel(encoder, cfg.vision, cnn_widths=(8, 16), feature_dim=12, num_prompts=2, embed_dim=16,
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


def _reference_ranks(queries, targets, gallery):
  """Straightforward NumPy: 1 + photos scoring above the target (ties: lower gallery index first)."""
  q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
  g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
  sims = q @ g.T
  t = sims[np.arange(len(q)), targets][:, None]
  index = np.arange(len(g))[None]
  return 1 + ((sims > t) | ((sims == t) & (index < targets[:, None]))).sum(1)


@pytest.mark.parametrize("gallery_kind", ["all", "category"])
def test_instance_evaluator_matches_a_numpy_reference(gallery_kind):
  """Acc@K of the instance evaluator (gallery: all photos, or the sketch's category) vs NumPy ranks."""
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(3), 10)  # 3 categories x 10 photos
  photos = tuple(PhotoItem(f"p{i}", int(l)) for i, l in enumerate(labels))
  sketch_photo = rng.permutation(30)[:24]
  sketches = tuple(SketchItem(f"s{i}", int(labels[p]), int(p)) for i, p in enumerate(sketch_photo))
  split = Split("test", ("a", "b", "c"), photos, sketches)
  gallery = rng.normal(size=(30, 8)).astype(np.float32)
  gallery[7] = gallery[3]  # a tie
  queries = gallery[sketch_photo] + rng.normal(scale=1.0, size=(24, 8)).astype(np.float32)

  class Source:
    def split(self, name):
      return split

  ev = InstanceRetrieval({"embed_sketch": None, "embed_photo": None}, source=Source(), image_size=8,
                         gallery=gallery_kind, ks=(1, 5))
  result = ev.score((queries, labels[sketch_photo], np.arange(24)), (gallery, labels, np.arange(30)))
  if gallery_kind == "all":
    want = _reference_ranks(queries, sketch_photo, gallery)
  else:
    want = np.concatenate([_reference_ranks(queries[labels[sketch_photo] == c],
                                            sketch_photo[labels[sketch_photo] == c] - 10 * c,
                                            gallery[10 * c:10 * (c + 1)]) for c in range(3)])
  for k in (1, 5):
    assert result[f"Acc@{k}"] == pytest.approx(np.mean(want <= k)), k
  assert ev.gallery_size() == (30 if gallery_kind == "all" else 10)


def test_gallery_targets_map_sketches_to_gallery_rows():
  photos = tuple(PhotoItem(f"p{i}", 0) for i in range(4))
  sketches = (SketchItem("s0", 0, 2), SketchItem("s1", 0, 3), SketchItem("s2", 0, None), SketchItem("s3", 0, 0))
  split = Split("test", ("shoe",), photos, sketches)
  # Photo 3 failed to load: the gallery holds photos 0, 1, 2 in that order; sketch 1 and 2 drop out.
  keep, targets = gallery_targets(split, np.array([0, 1, 2, 3]), np.array([0, 1, 2]))
  np.testing.assert_array_equal(keep, [0, 3])
  np.testing.assert_array_equal(targets, [2, 0])
  with pytest.raises(ValueError, match="no sketch"):
    gallery_targets(split, np.array([1]), np.array([0, 1, 2]))


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
  logged = (tmp_path / "B1" / "seed0" / "metrics.jsonl").read_text()
  assert ("active_triplets" if loss == "triplet" else "batch_acc") in logged
  before = os.path.getmtime(tmp_path / "B1" / "seed0" / "result.json")
  _run(config, str(tmp_path))
  assert os.path.getmtime(tmp_path / "B1" / "seed0" / "result.json") == before


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
