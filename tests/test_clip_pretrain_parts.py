"""Tests for the parts of the SynthSketch CLIP's pretraining: InfoNCE with shared positives, partial
captions, the caption loader's augmentation, the zero-shot evaluator's attribute and caption tests
(against oracle embeddings), the source closure the weights are keyed by, and the shipped-CLIP cache."""

from __future__ import annotations

import hashlib
import json
import os
import re
import time

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from experiments import blocks
from sgvu import experiment, losses, train
from sgvu.data import base, pipeline
from sgvu.data.synth import ALL_CATEGORIES, SynthSketch, caption as caption_lib, palette
from sgvu.evaluators.zero_shot import ZeroShot
from sgvu.tasks import clip_pretrain
from sgvu.tokenizers import WordTokenizer

VOCAB = set(caption_lib.vocabulary())


def _words(text: str) -> list[str]:
  return text.split()


def _content(text: str) -> set[str]:
  """The words of a caption but its articles (dropping 'plain' turns 'a plain orange cup' into 'an orange cup')."""
  return set(text.split()) - {"a", "an"}


# -- losses.infonce with positives


def _reference_infonce(img, txt, scale, positives):
  """numpy: the target of each row (and column) spread evenly over its positives; symmetric CE."""
  img = np.asarray(img, np.float64)
  txt = np.asarray(txt, np.float64)
  img = img / np.linalg.norm(img, axis=-1, keepdims=True)
  txt = txt / np.linalg.norm(txt, axis=-1, keepdims=True)
  logits = scale * img @ txt.T
  p = np.asarray(positives, np.float64)

  def ce(lg, target):
    lg = lg - lg.max(1, keepdims=True)
    logp = lg - np.log(np.exp(lg).sum(1, keepdims=True))
    return -(target / target.sum(1, keepdims=True) * logp).sum(1).mean()

  return 0.5 * (ce(logits, p) + ce(logits.T, p.T))


def test_infonce_identity_positives_equal_plain_loss():
  k1, k2 = jax.random.split(jax.random.PRNGKey(0))
  img, txt = jax.random.normal(k1, (6, 8)), jax.random.normal(k2, (6, 8))
  scale = jnp.float32(10.0)
  plain = losses.infonce(img, txt, scale)
  chex.assert_trees_all_close(losses.infonce(img, txt, scale, positives=jnp.eye(6, dtype=bool)), plain,
                              rtol=1e-5, atol=1e-6)
  chex.assert_trees_all_close(plain, np.float32(_reference_infonce(img, txt, 10.0, np.eye(6))),
                              rtol=1e-5, atol=1e-5)


def test_infonce_duplicated_captions_match_reference_and_grads_are_finite():
  k1, k2 = jax.random.split(jax.random.PRNGKey(1))
  img, txt = jax.random.normal(k1, (5, 8)), jax.random.normal(k2, (5, 8))
  # Rows 1 and 3 have the same caption (so the same text embedding); rows 0 and 4 too.
  txt = txt.at[3].set(txt[1]).at[4].set(txt[0])
  same = np.eye(5, dtype=bool)
  for i, j in ((1, 3), (0, 4)):
    same[i, j] = same[j, i] = True
  scale = jnp.float32(7.0)
  got = losses.infonce(img, txt, scale, positives=jnp.asarray(same))
  chex.assert_trees_all_close(got, np.float32(_reference_infonce(img, txt, 7.0, same)), rtol=1e-5, atol=1e-5)
  # When the positives are exactly the rows with identical text embeddings, the soft targets give the
  # plain loss's value: image->text, the duplicates' logits are equal; text->image, the duplicated rows
  # are equal, and their two one-hot targets average to the same soft one.
  chex.assert_trees_all_close(got, losses.infonce(img, txt, scale), rtol=1e-5, atol=1e-6)
  # Positives whose embeddings differ do change the loss.
  txt2 = txt.at[3].add(0.5)
  chex.assert_trees_all_close(losses.infonce(img, txt2, scale, positives=jnp.asarray(same)),
                              np.float32(_reference_infonce(img, txt2, 7.0, same)), rtol=1e-5, atol=1e-5)
  assert abs(float(losses.infonce(img, txt2, scale, positives=jnp.asarray(same)))
             - float(losses.infonce(img, txt2, scale))) > 1e-3
  grads = jax.grad(lambda a, b, s: losses.infonce(a, b, s, positives=jnp.asarray(same)), argnums=(0, 1, 2))(
      img, txt, scale)
  for g in grads:
    assert np.all(np.isfinite(np.asarray(g)))
  assert float(jnp.abs(grads[0]).sum()) > 0


# -- partial captions


@pytest.fixture(scope="module")
def many():
  """A SynthSketch over every category and the instances of its photos (both splits)."""
  world = SynthSketch(seed=0, protocol="instance", categories=ALL_CATEGORIES, photos_per_category=3,
                      sketches_per_photo=1, test_fraction=0.34)
  items = list(world.split("train").photos) + list(world.split("test").photos)
  return world, items


def test_partial_caption_keep_one_is_the_full_caption(many):
  world, items = many
  rng = np.random.default_rng(0)
  for item in items:
    inst = world.instance(item)
    assert caption_lib.partial_caption(inst, rng, 1.0) == caption_lib.caption(inst)


def test_partial_caption_keep_zero_is_article_and_category(many):
  world, items = many
  rng = np.random.default_rng(0)
  for item in items:
    inst = world.instance(item)
    article = "an" if inst.category[0] in "aeiou" else "a"
    assert caption_lib.partial_caption(inst, rng, 0.0) == f"{article} {inst.category}"


@pytest.mark.parametrize("keep", [0.2, 0.5, 0.8])
def test_partial_caption_words_category_and_determinism(many, keep):
  world, items = many
  rng = np.random.default_rng(7)
  lengths, full_lengths = [], []
  for item in items:
    inst = world.instance(item)
    full = caption_lib.caption(inst)
    text = caption_lib.partial_caption(inst, rng, keep)
    words = _words(text)
    assert set(words) <= VOCAB, (text, set(words) - VOCAB)
    assert re.search(rf"\b{re.escape(inst.category)}\b", text), text
    assert words[0] == caption_lib.article(words[1]), text  # 'an orange ...', 'a striped ...'
    assert _content(text) <= _content(full), (text, full)  # only drops, never invents
    lengths.append(len(words))
    full_lengths.append(len(_words(full)))
    s = hash(item.key) % 2**32
    assert (caption_lib.partial_caption(inst, np.random.default_rng(s), keep)
            == caption_lib.partial_caption(inst, np.random.default_rng(s), keep))
  assert np.mean(lengths) < np.mean(full_lengths)


def test_source_caption_attributes_and_prompts(many):
  world, items = many
  for item in items[:40]:
    inst = world.instance(item)
    assert world.caption(item) == caption_lib.caption(inst)
    assert world.caption(item, rng=np.random.default_rng(3), keep=1.0) == caption_lib.caption(inst)
    assert (world.caption(item, rng=np.random.default_rng(3), keep=0.4)
            == caption_lib.partial_caption(inst, np.random.default_rng(3), 0.4))
    assert world.attributes(item) == {"colour": inst.colour, "texture": inst.texture, "place": inst.place}
  for category in ALL_CATEGORIES:
    prompts = SynthSketch.attribute_prompts(category)
    assert set(prompts) == {"colour", "texture", "place"}
    assert set(prompts["colour"]) == set(palette.COLOURS)
    assert set(prompts["texture"]) == set(palette.TEXTURES)
    assert set(prompts["place"]) == set(palette.PLACES)
    for attribute, by_value in prompts.items():
      for value, text in by_value.items():
        assert set(_words(text)) <= VOCAB, (category, text)
        assert re.search(rf"\b{re.escape(category)}\b", text), text
        named = palette.PLACES[value] if attribute == "place" else value
        assert named in text, (attribute, value, text)
  # Sources without attributes.
  assert base.Source.attribute_prompts("shoe") == {}


# -- photo_caption_loader(caption_keep)


@pytest.fixture(scope="module")
def two_cats():
  return SynthSketch(seed=0, protocol="instance", categories=("shoe", "cup"), photos_per_category=8)


def _captions(source, keep, seed=0, batches=6):
  tok = WordTokenizer(caption_lib.vocabulary(), 64)
  it = pipeline.photo_caption_loader(source, batch_size=4, image_size=32, tokenize=tok, seed=seed,
                                     num_workers=0, process_index=0, process_count=1, caption_keep=keep)
  out = []
  try:
    for _ in range(batches):
      b = next(it)
      assert b["photo"].shape == (4, 32, 32, 3)
      out.extend((tok.decode(t), source.categories[int(l)]) for t, l in zip(b["tokens"], b["label"]))
  finally:
    it.close()
  return out


def test_caption_loader_full_captions(two_cats):
  full = {}
  for p in two_cats.split("train").photos:
    full.setdefault(two_cats.categories[p.label], set()).add(two_cats.caption(p))
  got = _captions(two_cats, 1.0)
  assert len(got) == 24
  for text, category in got:
    assert text in full[category], (text, category)


def test_caption_loader_partial_captions(two_cats):
  train = two_cats.split("train").photos
  full_words = {}
  for p in train:
    full_words.setdefault(two_cats.categories[p.label], []).append(_content(two_cats.caption(p)))
  full_len = np.mean([len(_words(two_cats.caption(p))) for p in train])
  got = _captions(two_cats, 0.3)
  for text, category in got:
    assert category in _words(text), (text, category)
    # Every partial caption is a sub-caption of some photo of its category.
    assert any(_content(text) <= w for w in full_words[category]), text
  assert np.mean([len(_words(t)) for t, _ in got]) < full_len - 2
  assert sum(t not in {two_cats.caption(p) for p in train} for t, _ in got) >= len(got) // 2
  # Seeded: the same seed gives the same captions.
  assert _captions(two_cats, 0.3) == got


# -- ZeroShot attributes and caption retrieval, against oracle embeddings

_ZS_CATEGORIES = ("shoe", "cup", "car", "chair")


def _place_tokens(text: str) -> str:
  """Each place phrase as one token: 'under a blue sky' names a place, not the colour blue."""
  text = f" {text} "
  for place, phrase in palette.PLACES.items():
    text = text.replace(f" {phrase} ", f" place_{place} ")
  return text


class _Oracle:
  """Bag-of-words embeddings that know which photo is which.

  A photo's embedding is the binary word-presence vector of its full caption; a text's is the same of
  the text. Articles are dropped (else 'an orange shoe' and 'a red shoe' differ in an article the
  caption may not have) and place phrases become one token each (else 'a blue shoe' matches any
  photo 'under a blue sky'). `permute` maps words of the texts (a wrong oracle)."""

  def __init__(self, source, split, image_size, permute=None):
    words = set(caption_lib.vocabulary()) | set(clip_pretrain.template_words())
    words |= {f"place_{p}" for p in palette.PLACES}
    self.index = {w: i for i, w in enumerate(sorted(words - {"a", "an"}))}
    self.permute = permute or {}
    items = source.split(split).photos
    self.by_hash, self.captions = {}, {}
    for batch in pipeline.eval_batches(source, split, "photo", image_size=image_size, batch_size=16):
      for img, i in zip(batch["images"], batch["index"]):
        self.by_hash[self._hash(img)] = self.bag(source.caption(items[int(i)]))
    assert len(self.by_hash) == len(items)  # every test photo renders differently

  @staticmethod
  def _hash(img) -> str:
    return hashlib.sha1(np.ascontiguousarray(np.asarray(img, np.uint8)).tobytes()).hexdigest()

  def bag(self, text: str, permute=None) -> np.ndarray:
    v = np.zeros(len(self.index), np.float32)
    for w in _place_tokens(text).split():
      w = (permute or {}).get(w, w)
      if w in self.index:
        v[self.index[w]] = 1.0
    return v

  def embed_photo(self, params, images):
    del params
    return np.stack([self.by_hash.get(self._hash(im), np.zeros(len(self.index), np.float32)) for im in images])

  def embed_texts(self, params, texts):
    del params
    return np.stack([self.bag(t, self.permute) for t in texts])

  def fns(self):
    return {"embed_photo": self.embed_photo, "embed_texts": self.embed_texts}


@pytest.fixture(scope="module")
def zs_world():
  return SynthSketch(seed=0, protocol="instance", categories=_ZS_CATEGORIES, photos_per_category=20,
                     sketches_per_photo=1, test_fraction=0.5)


def _zero_shot(world, oracle, **kw):
  return ZeroShot(oracle.fns(), source=world, image_size=32, kinds=("photo",),
                  attributes=("colour", "texture", "place"), caption_retrieval=True, batch_size=8, **kw)


def test_zero_shot_with_an_oracle(zs_world):
  oracle = _Oracle(zs_world, "test", 32)
  got = _zero_shot(zs_world, oracle).run(None)
  assert set(got) == {"photo_zero_shot@1", "colour_zero_shot@1", "texture_zero_shot@1", "place_zero_shot@1",
                      "caption_photo_r@1", "caption_photo_chance"}
  assert list(got) == clip_pretrain.zero_shot_metric_names(
      {"kinds": ("photo",), "attributes": ("colour", "texture", "place"), "caption_retrieval": True})
  assert got["photo_zero_shot@1"] == 1.0
  assert got["colour_zero_shot@1"] == 1.0
  assert got["texture_zero_shot@1"] == 1.0
  assert got["place_zero_shot@1"] == 1.0
  assert got["caption_photo_r@1"] >= 0.8
  test = zs_world.split("test")
  sizes = {label: sum(p.label == label for p in test.photos) for label in {p.label for p in test.photos}}
  chex.assert_trees_all_close(got["caption_photo_chance"],
                              float(np.mean([1.0 / sizes[p.label] for p in test.photos])))
  assert got["caption_photo_chance"] == pytest.approx(0.1)  # 10 test photos per category


def test_zero_shot_caption_retrieval_ties_only_on_identical_captions(zs_world):
  """r@1 misses exactly the photos whose caption (as a bag of words) an earlier photo of the same
  category shares: argmax keeps the first of tied photos."""
  oracle = _Oracle(zs_world, "test", 32)
  test = zs_world.split("test").photos
  expected = []
  for label in sorted({p.label for p in test}):
    bags = [tuple(oracle.bag(zs_world.caption(p))) for p in test if p.label == label]
    expected.extend(bags.index(b) == i for i, b in enumerate(bags))
  got = _zero_shot(zs_world, oracle).run(None)
  assert got["caption_photo_r@1"] == pytest.approx(np.mean(expected))


def test_zero_shot_wrong_oracle_scores_zero(zs_world):
  colours = list(palette.COLOURS)
  shifted = dict(zip(colours, colours[1:] + colours[:1]))  # no colour maps to itself
  oracle = _Oracle(zs_world, "test", 32, permute=shifted)
  got = _zero_shot(zs_world, oracle).run(None)
  assert got["colour_zero_shot@1"] == 0.0
  assert got["texture_zero_shot@1"] == 1.0 and got["place_zero_shot@1"] == 1.0


def test_zero_shot_bad_options_raise(zs_world):
  fns = {"embed_photo": lambda p, x: x, "embed_texts": lambda p, t: t}
  with pytest.raises(ValueError, match="shape"):
    ZeroShot(fns, source=zs_world, image_size=32, attributes=("colour", "shape"))
  with pytest.raises(ValueError, match="embed_photo"):
    ZeroShot({"embed_texts": fns["embed_texts"]}, source=zs_world, image_size=32, kinds=(),
             attributes=("colour",))
  with pytest.raises(ValueError, match="embed_photo"):
    ZeroShot({"embed_texts": fns["embed_texts"]}, source=zs_world, image_size=32, kinds=(),
             caption_retrieval=True)
  with pytest.raises(ValueError, match="embed_sketch"):
    ZeroShot(fns, source=zs_world, image_size=32, kinds=("photo", "sketch"))
  with pytest.raises(ValueError, match="embed_texts"):
    ZeroShot({"embed_photo": fns["embed_photo"]}, source=zs_world, image_size=32)


# -- what the CLIP's weights are keyed by


def test_source_closure_of_clip_pretrain():
  root = os.path.dirname(os.path.abspath(experiment.__file__))
  files = {os.path.relpath(p, root) for p in experiment.source_closure("sgvu.tasks.clip_pretrain",
                                                                         clip_pretrain.NOT_WEIGHTS)}
  for need in ("train.py", "models/vit.py", "data/synth/world.py", "tasks/clip_pretrain.py", "losses.py",
               "data/pipeline.py", "tokenizers.py", "__init__.py", "tasks/__init__.py"):
    assert need in files, need
  for never in ("tasks/zs_sbir.py", "evaluators/zero_shot.py", "evaluators/__init__.py", "experiment.py",
                "metrics/retrieval.py"):
    assert never not in files, never
  assert all(os.path.isfile(os.path.join(root, f)) for f in files)
  everything = {os.path.relpath(p, root) for p in experiment.source_closure("sgvu.tasks.clip_pretrain")}
  assert files < everything and "evaluators/zero_shot.py" in everything


def test_module_version_is_stable_hex():
  v = experiment.module_version("sgvu.tasks.clip_pretrain", clip_pretrain.NOT_WEIGHTS)
  assert re.fullmatch(r"[0-9a-f]{16}", v)
  assert experiment.module_version("sgvu.tasks.clip_pretrain", clip_pretrain.NOT_WEIGHTS) == v
  experiment.module_version.cache_clear()
  assert experiment.module_version("sgvu.tasks.clip_pretrain", clip_pretrain.NOT_WEIGHTS) == v
  assert experiment.module_version("sgvu.tasks.clip_pretrain") != v


def _small() -> ml_collections.ConfigDict:
  c = blocks.clip_train_config(small=True)
  if "use_shipped" not in c:
    c.use_shipped = True
  return c


def _copy(c: ml_collections.ConfigDict, **changes) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict(c.to_dict())
  for k, v in changes.items():
    setattr(c, k, v)
  return c


def test_weights_digest_keys():
  c = _small()
  d = clip_pretrain.weights_digest(c)
  assert re.fullmatch(r"[0-9a-f]{12}", d)
  assert clip_pretrain.weights_digest(_copy(c)) == d
  assert clip_pretrain.weights_digest(_copy(c, num_steps=c.num_steps + 1)) != d
  assert clip_pretrain.weights_digest(_copy(c, caption_keep=0.9)) != d
  other_evals = blocks.evals_config(zero_shot={"type": "zero_shot", "kinds": ("photo",)})
  for key, value in (("log_every", 3), ("eval_every", 7), ("use_shipped", not c.use_shipped),
                     ("cache_dir", "/elsewhere"), ("checkpoint_every", 3), ("evals", other_evals)):
    assert clip_pretrain.weights_digest(_copy(c, **{key: value})) == d, key
  c2 = _copy(c)
  c2.data.synth_seed += 1
  assert clip_pretrain.weights_digest(c2) != d


# -- ensure_pretrained, ship, use_shipped (one tiny training for the whole file)


class _Sentinel(Exception):
  pass


def _no_training(*args, **kwargs):
  raise _Sentinel("train.fit called")


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
  c = _small()
  c.cache_dir = str(tmp_path_factory.mktemp("clip_cache"))
  directory = clip_pretrain.ensure_pretrained(c)
  return c, directory


@pytest.fixture
def shipped_dir(tmp_path, monkeypatch):
  path = str(tmp_path / "assets" / "clip_synth")
  monkeypatch.setattr(clip_pretrain, "SHIPPED_DIR", path)
  return path


def test_ensure_pretrained_trains_into_the_cache_once(pretrained, monkeypatch):
  c, directory = pretrained
  assert directory == clip_pretrain.cache_directory(c)
  assert directory.startswith(c.cache_dir)
  assert os.path.isfile(os.path.join(directory, clip_pretrain.DONE_FILE))
  assert os.path.isdir(os.path.join(directory, "clip"))
  s = clip_pretrain.summary(c, directory)
  assert s["source"] == "pretrained here (cache)" and s["digest"] == clip_pretrain.weights_digest(c)
  for name in clip_pretrain.zero_shot_metric_names(c.evals.zero_shot):
    assert 0.0 <= s[name] <= 1.0, name
  monkeypatch.setattr(train, "fit", _no_training)
  assert clip_pretrain.ensure_pretrained(_copy(c, log_every=1)) == directory  # cached: no training


def test_ship_and_use_shipped(pretrained, shipped_dir, tmp_path, monkeypatch):
  c, directory = pretrained
  clip_pretrain.ship(c, directory, command="x")
  with open(os.path.join(shipped_dir, clip_pretrain.PROVENANCE_FILE)) as f:
    prov = json.load(f)
  assert prov["digest"] == clip_pretrain.weights_digest(c) and prov["command"] == "x"
  assert os.path.isfile(os.path.join(shipped_dir, clip_pretrain.DONE_FILE))
  assert os.path.isdir(os.path.join(shipped_dir, "clip"))
  assert clip_pretrain.shipped_matches(c) == (True, "")

  monkeypatch.setattr(train, "fit", _no_training)
  fresh = _copy(c, cache_dir=str(tmp_path / "fresh_cache"), use_shipped=True)
  started = time.perf_counter()
  assert clip_pretrain.ensure_pretrained(fresh) == shipped_dir
  assert time.perf_counter() - started < 5.0
  assert clip_pretrain.summary(fresh, shipped_dir)["source"] == "shipped"

  with pytest.raises(_Sentinel):
    clip_pretrain.ensure_pretrained(_copy(fresh, use_shipped=False))

  other = _copy(fresh, num_steps=c.num_steps + 5)
  ok, why = clip_pretrain.shipped_matches(other)
  assert not ok and "config" in why
  with pytest.raises(_Sentinel):  # a shipped CLIP of another config is not used: it trains
    clip_pretrain.ensure_pretrained(other)

  assert prov["files"] == clip_pretrain.weights_files() and "train.py" in prov["files"]
  edited = {**prov["files"], "train.py": "0" * 16}  # as if train.py changed after shipping
  monkeypatch.setattr(clip_pretrain, "weights_files", lambda: edited)
  monkeypatch.setattr(experiment, "module_version", lambda *a, **k: "another-code")
  ok, why = clip_pretrain.shipped_matches(c)
  assert not ok and "another code (train.py)" in why


def test_the_registries_are_not_part_of_the_clips_code():
  files = clip_pretrain.weights_files()
  assert "tasks/registry.py" not in files and "data/registry.py" not in files
  assert "data/synth/world.py" in files and "tasks/clip_pretrain.py" in files


def test_shipped_matches_without_a_shipped_clip(shipped_dir):
  ok, why = clip_pretrain.shipped_matches(_small())
  assert not ok and "no CLIP is shipped" in why
