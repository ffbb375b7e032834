"""Stage (a) of the embedded world: a small CLIP pretrained on SynthSketch
photo-caption pairs with CLIP's InfoNCE. It never sees a sketch, so it plays
the part of web-pretrained CLIP for the sketch tasks.

Photos come from a SynthSketch world with its own seed (other instances than
the retrieval benchmarks) covering all categories, as web data would.
The result is cached by a hash of its config and reused by every experiment.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sgvu import clip_io, configs, evaluators, experiment, losses, preprocess, train
from sgvu import data as data_lib
from sgvu.data import configured, pipeline
from sgvu.data import synth
from sgvu.models.clip import CLIP, MODEL_PRESETS, get_preset
from sgvu.tasks.base import Task
from sgvu.tokenizers import WordTokenizer

TEMPLATE = "a photo of a {}"
DONE_FILE = "PRETRAIN_DONE"


def template_words() -> list[str]:
  return sorted(set(WordTokenizer.split(TEMPLATE.format(""))))


def synth_tokenizer(context_length: int) -> WordTokenizer:
  category_words = {w for c in synth.ALL_CATEGORIES for w in WordTokenizer.split(data_lib.category_text(c))}
  vocab = sorted(set(synth.SynthSketch.vocabulary()) | set(template_words()) | category_words)
  return WordTokenizer(vocab, context_length)


def synth_clip_config(preset: str, tokenizer: WordTokenizer):
  """The preset with its text vocabulary sized to SynthSketch's closed vocabulary."""
  cfg = get_preset(preset)
  return cfg.replace(text=dataclasses.replace(cfg.text, vocab_size=tokenizer.vocab_size,
                                              eos_token_id=tokenizer.eos_token_id, pool="eos"))


class CLIPPretrainTask(Task):
  """InfoNCE on (photo, caption) batches."""

  def __init__(self, config, source, tokenizer):
    super().__init__(config)
    self.clip_cfg = synth_clip_config(config.model, tokenizer)
    self.model = CLIP(self.clip_cfg)
    self.source, self.tokenizer = source, tokenizer
    self.image_size = self.clip_cfg.vision.image_size
    self.class_tokens = jnp.asarray(tokenizer([TEMPLATE.format(data_lib.category_text(c))
                                               for c in source.categories]))

  def init_params(self, rng):
    images = jnp.zeros((1, self.image_size, self.image_size, 3))
    tokens = jnp.zeros((1, self.clip_cfg.text.context_length), jnp.int32)
    return self.model.init(rng, images, tokens)["params"]

  def loss_fn(self, params, batch, rng):
    # Caption augmentation: with probability template_prob a photo's caption is
    # "a photo of a [category]". Full captions alone let InfoNCE match on colour,
    # texture and place words and never learn what the object is.
    use_template = jax.random.bernoulli(rng, self.config.template_prob, batch["label"].shape)
    tokens = jnp.where(use_template[:, None], self.class_tokens[batch["label"]], batch["tokens"])
    img, txt, scale = self.model.apply({"params": params}, preprocess.normalize_images(batch["photo"]), tokens)
    loss = losses.infonce(img, txt, scale)
    logits = losses.l2_normalize(img) @ losses.l2_normalize(txt).T
    acc = jnp.mean(jnp.argmax(logits, -1) == jnp.arange(logits.shape[0]))
    return loss, {"batch_acc": acc, "temperature": scale}

  def train_iterator(self, batch_size, seed):
    return pipeline.photo_caption_loader(self.source, "train", batch_size=batch_size, image_size=self.image_size,
                                         tokenize=self.tokenizer, seed=seed,
                                         num_workers=self.config.data.num_workers)

  def predict_fns(self):
    """Zero-shot evaluation: uint8 photos/sketches -> image embeddings; texts -> text embeddings."""
    encode_image = jax.jit(lambda p, im: self.model.apply({"params": p}, preprocess.normalize_images(im),
                                                          method=CLIP.encode_image))
    encode_text = jax.jit(lambda p, t: self.model.apply({"params": p}, t, method=CLIP.encode_text))
    return {"embed_photo": encode_image, "embed_sketch": encode_image,
            "embed_texts": lambda p, texts: encode_text(p, jnp.asarray(self.tokenizer(list(texts))))}


def class_text_embeddings(model: CLIP, params, tokenizer, categories) -> np.ndarray:
  texts = [TEMPLATE.format(data_lib.category_text(c)) for c in categories]
  fn = jax.jit(lambda p, t: model.apply({"params": p}, t, method=CLIP.encode_text))
  return np.asarray(fn(params, jnp.asarray(tokenizer(texts))))


def _world_version() -> str:
  """Hash of the SynthSketch generator's code: a changed world invalidates cached CLIPs."""
  folder = os.path.dirname(synth.__file__)
  h = hashlib.sha256()
  for name in sorted(os.listdir(folder)):
    if name.endswith(".py"):
      with open(os.path.join(folder, name), "rb") as f:
        h.update(name.encode() + f.read())
  return h.hexdigest()


def cache_directory(config: ml_collections.ConfigDict) -> str:
  weights_relevant = {k: v for k, v in config.to_dict().items() if k not in ("cache_dir", "log_every", "evals")}
  key = json.dumps(weights_relevant, sort_keys=True, default=str) + _world_version()
  digest = hashlib.sha256(key.encode()).hexdigest()[:12]
  root = config.cache_dir or os.environ.get("SGVU_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "sgvu")
  return os.path.join(root, "clip_synth", f"{config.model.replace('/', '')}-{digest}")


def validate(config: ml_collections.ConfigDict) -> None:
  c = config.clip_train if "clip_train" in config else config
  configs.check_choice(c, "model", MODEL_PRESETS)
  configs.check_choice(c, "data.dataset", ["synth"])
  configs.validate_train(c)
  evaluators.validate(c.evals, "config.clip_train.evals")


def validate_clip_init(config: ml_collections.ConfigDict, needed_for: str = "") -> None:
  """model.clip_init names existing weights, or is '' on SynthSketch (this module pretrains them)."""
  if not config.model.clip_init:
    if config.data.dataset != "synth":
      raise ValueError(f"config.model.clip_init is required for dataset {config.data.dataset!r}{needed_for} "
                       "('hf:/path/to/clip' or a convert_clip directory)")
    validate(config)
  elif config.model.clip_init.startswith("hf:") and not os.path.isdir(config.model.clip_init[3:]):
    raise ValueError(f"config.model.clip_init={config.model.clip_init!r}: no such directory")


def ensure_pretrained(config: ml_collections.ConfigDict) -> str:
  """Returns a directory holding the pretrained synth CLIP (clip_io converted format + word tokenizer).

  Trains it (resumably) the first time; later calls reuse the cache.
  """
  directory = cache_directory(config)
  if os.path.exists(os.path.join(directory, DONE_FILE)):
    logging.info("pretrained SynthSketch CLIP: reusing %s", directory)
    return directory
  logging.info("pretrained SynthSketch CLIP: training into %s (cached for later runs)", directory)
  tokenizer = synth_tokenizer(get_preset(config.model).text.context_length)
  source = configured.source_from_config(config.data, image_size=get_preset(config.model).vision.image_size,
                              kinds=("photo",), protocol="instance", test_fraction=0.2)
  task = CLIPPretrainTask(config, source, tokenizer)
  evals = evaluators.build(config.evals, task.predict_fns(), source=source, image_size=task.image_size)
  params, evals = train.fit(task, config, os.path.join(directory, "train"),
                            evaluate=lambda p: evaluators.run_all(evals, p))
  out = os.path.join(directory, "clip")
  if jax.process_index() == 0:
    clip_io.save_converted(out, task.clip_cfg, jax.device_get(params))
    tokenizer.save(out)
    with open(os.path.join(directory, DONE_FILE), "w") as f:
      json.dump({"evals": evals}, f)
  return directory


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """`python -m sgvu.main --config=experiments/clip_pretrain.py`: pretrain (or reuse) and report zero-shot accuracy."""
  started = time.perf_counter()
  c = config.clip_train

  def run_row(name: str, seed: int, directory: str) -> dict:
    del name, seed, directory  # the CLIP lives in the shared cache, keyed by its own config
    clip_dir = ensure_pretrained(c)
    with open(os.path.join(clip_dir, DONE_FILE)) as f:
      final = json.load(f)["evals"][-1]
    return {**{k: v for k, v in final.items() if k != "step"}, "clip_dir": os.path.join(clip_dir, "clip")}

  metrics_names = ["zero_shot_acc"] + [f"{k}_zero_shot_acc" for spec in c.evals.values()
                                       for k in spec.get("kinds", ("photo",)) if k != "photo"]
  return experiment.run(experiment.Table(
      name=config.name, split="test", metrics=metrics_names, methods=("clip-synth",), run_row=run_row,
      settings=lambda name: {"clip_train": c}, trains=lambda name: False,
      description=f"SynthSketch CLIP ({c.model}), zero-shot over held-out photos",
      smoke_test=config.get("smoke_test", False), fingerprint=experiment.table_fingerprint(config)),
      workdir, started=started)
