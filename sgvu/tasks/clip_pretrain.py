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
import shutil
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
    # Caption augmentation: with probability template_prob a photo's caption is "a photo of a
    # [category]"; the others are partial captions (caption_keep). Full captions alone let InfoNCE
    # match on colour, texture and place words and never learn what the object is.
    use_template = jax.random.bernoulli(rng, self.config.template_prob, batch["label"].shape)
    tokens = jnp.where(use_template[:, None], self.class_tokens[batch["label"]], batch["tokens"])
    img, txt, scale = self.model.apply({"params": params}, preprocess.normalize_images(batch["photo"]), tokens)
    loss = losses.infonce(img, txt, scale)
    metrics = {"temperature": scale}
    if self.config.class_loss_weight:
      # Image-label contrast (as UniCL): every photo against all 75 "a photo of a [category]" texts.
      # Captions name the category too, but in a batch of 128 the other captions rarely share it, so
      # InfoNCE alone teaches category slowly; this term gives it every step.
      class_txt = self.model.apply({"params": params}, self.class_tokens, method=CLIP.encode_text)
      class_loss = losses.text_classification(img, class_txt, batch["label"], scale)
      loss = loss + self.config.class_loss_weight * class_loss
      metrics["class_loss"] = class_loss
    # Identical captions in a batch (two "a photo of a cup") embed identically, so plain InfoNCE
    # already treats them alike; the accuracy counts a photo matched to any of them as right.
    same_text = jnp.all(tokens[:, None, :] == tokens[None, :, :], axis=-1)
    logits = losses.l2_normalize(img) @ losses.l2_normalize(txt).T
    metrics["batch_acc"] = jnp.mean(same_text[jnp.arange(logits.shape[0]), jnp.argmax(logits, -1)])
    return loss, metrics

  def train_iterator(self, batch_size, seed):
    return pipeline.photo_caption_loader(self.source, "train", batch_size=batch_size, image_size=self.image_size,
                                         tokenize=self.tokenizer, seed=seed,
                                         num_workers=self.config.data.num_workers,
                                         caption_keep=self.config.caption_keep)

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


def zero_shot_metric_names(spec) -> list[str]:
  """The metrics a zero_shot evaluator spec reports, in table order."""
  return ([f"{k}_zero_shot@1" for k in spec.get("kinds", ("photo",))] +
          [f"{a}_zero_shot@1" for a in spec.get("attributes", ())] +
          (["caption_photo_r@1", "caption_photo_chance"] if spec.get("caption_retrieval") else []))


# What the CLIP's weights depend on: this module's static imports, minus code that only scores,
# reports or runs tables (a change there must not force an 80-minute pretraining).
NOT_WEIGHTS = ("sgvu.evaluators", "sgvu.metrics", "sgvu.experiment")
# Keys of clip_train that do not change the weights.
NOT_WEIGHTS_KEYS = ("cache_dir", "log_every", "evals", "eval_every", "checkpoint_every", "use_shipped")
SHIPPED_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "clip_synth")
PROVENANCE_FILE = "PROVENANCE.json"


def weights_key(config: ml_collections.ConfigDict) -> dict:
  """What the pretrained weights are a function of: the config and the code that trains them."""
  return {"config": {k: v for k, v in config.to_dict().items() if k not in NOT_WEIGHTS_KEYS},
          "code": experiment.module_version(__name__, NOT_WEIGHTS)}


def weights_files() -> dict[str, str]:
  """sha256 (16 hex) of each file whose code the weights depend on, by path under sgvu/: kept in the
  provenance so a mismatch can name the files that changed."""
  return experiment.file_hashes(experiment.source_closure(__name__, NOT_WEIGHTS + experiment.REGISTRIES + experiment.OUTPUT_ONLY))


def weights_digest(config: ml_collections.ConfigDict) -> str:
  return hashlib.sha256(json.dumps(weights_key(config), sort_keys=True, default=str).encode()).hexdigest()[:12]


def cache_directory(config: ml_collections.ConfigDict) -> str:
  root = config.cache_dir or os.environ.get("SGVU_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "sgvu")
  return os.path.join(root, "clip_synth", f"{config.model.replace('/', '')}-{weights_digest(config)}")


def read_provenance(directory: str | None = None) -> dict | None:
  path = os.path.join(directory or SHIPPED_DIR, PROVENANCE_FILE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def shipped_matches(config: ml_collections.ConfigDict) -> tuple[bool, str]:
  """(whether the CLIP shipped in sgvu/assets is the one `config` would train, why not)."""
  shipped = read_provenance()
  if shipped is None:
    return False, f"no CLIP is shipped ({SHIPPED_DIR})"
  if shipped["digest"] != weights_digest(config):
    key = weights_key(config)
    what = "code" if shipped["key"]["code"] != key["code"] else "config"
    if what == "code" and "files" in shipped:
      now = weights_files()
      changed = sorted(f for f in set(now) | set(shipped["files"]) if now.get(f) != shipped["files"].get(f))
      what += " (" + ", ".join(changed[:6]) + (", ..." if len(changed) > 6 else "") + ")"
    return False, (f"the shipped CLIP was trained with another {what} (shipped {shipped['digest']}, "
                   f"this run {weights_digest(config)})")
  return True, ""


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
  """Returns a directory holding the pretrained synth CLIP (`clip/`: clip_io converted format + word
  tokenizer; DONE_FILE: its zero-shot evals).

  In order: the local cache of this exact config and code; the CLIP shipped in sgvu/assets when it
  was trained by this config and code (config.use_shipped); else trains it (resumably) into the cache.
  """
  directory = cache_directory(config)
  if os.path.exists(os.path.join(directory, DONE_FILE)):
    logging.info("pretrained SynthSketch CLIP: reusing %s", directory)
    return directory
  if config.use_shipped:
    matches, why = shipped_matches(config)
    if matches:
      logging.info("pretrained SynthSketch CLIP: using the one shipped in %s", SHIPPED_DIR)
      return SHIPPED_DIR
    logging.warning("pretrained SynthSketch CLIP: %s; pretraining it here (about 80 min on 2 CPU cores)", why)
  logging.info("pretrained SynthSketch CLIP: training into %s (cached for later runs)", directory)
  started = time.perf_counter()
  tokenizer = synth_tokenizer(get_preset(config.model).text.context_length)
  source = configured.source_from_config(config.data, image_size=get_preset(config.model).vision.image_size,
                                         kinds=("photo",), protocol="instance", test_fraction=config.test_fraction)
  task = CLIPPretrainTask(config, source, tokenizer)
  evals = evaluators.build(config.evals, task.predict_fns(), source=source, image_size=task.image_size)
  params, evals = train.fit(task, config, os.path.join(directory, "train"),
                            evaluate=lambda p: evaluators.run_all(evals, p))
  out = os.path.join(directory, "clip")
  if jax.process_index() == 0:
    clip_io.save_converted(out, task.clip_cfg, jax.device_get(params))
    tokenizer.save(out)
    with open(os.path.join(directory, DONE_FILE), "w") as f:
      json.dump({"evals": evals, "wall_s": round(time.perf_counter() - started, 1)}, f)
  return directory


def summary(config: ml_collections.ConfigDict, directory: str | None = None) -> dict:
  """The CLIP's figures for results.json: its final zero-shot evals and where it came from."""
  directory = directory or ensure_pretrained(config)
  with open(os.path.join(directory, DONE_FILE)) as f:
    done = json.load(f)
  final = {k: v for k, v in done["evals"][-1].items() if k != "step"} if done["evals"] else {}
  return {**final, "source": "shipped" if directory == SHIPPED_DIR else "pretrained here (cache)",
          "digest": weights_digest(config), "pretrain_wall_s": done.get("wall_s")}


def clip_extra(config: ml_collections.ConfigDict, uses_clip: bool = True) -> dict:
  """results.json's "clip" entry for an experiment that starts from a CLIP."""
  if not uses_clip:
    return {}
  if config.model.clip_init:
    return {"clip": {"source": config.model.clip_init}}
  return {"clip": summary(config.clip_train)}


def ship(config: ml_collections.ConfigDict, directory: str, command: str) -> None:
  """Copies a pretrained CLIP into sgvu/assets (replacing the one there) with its provenance."""
  if os.path.exists(SHIPPED_DIR):
    shutil.rmtree(SHIPPED_DIR)
  shutil.copytree(os.path.join(directory, "clip"), os.path.join(SHIPPED_DIR, "clip"))
  shutil.copy(os.path.join(directory, DONE_FILE), SHIPPED_DIR)
  with open(os.path.join(SHIPPED_DIR, PROVENANCE_FILE), "w") as f:
    json.dump({"digest": weights_digest(config), "key": weights_key(config), "files": weights_files(),
               "command": command}, f, indent=1, sort_keys=True, default=str)
  logging.info("shipped the CLIP of %s to %s", directory, SHIPPED_DIR)


def seeded(c: ml_collections.ConfigDict, seed: int) -> ml_collections.ConfigDict:
  """clip_train for training seed `seed` (0: the config's own seed)."""
  c = ml_collections.ConfigDict(c.to_dict())
  c.seed = c.seed + seed
  return c


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """`python -m sgvu.main --config=experiments/clip_pretrain.py`: pretrain (or reuse) one CLIP per seed,
  report their zero-shot figures; with config.ship, copy seed 0's into sgvu/assets first."""
  started = time.perf_counter()
  c = config.clip_train
  if config.get("ship", False):
    ship(c, ensure_pretrained(c), command="python -m sgvu.main --config=experiments/clip_pretrain.py --config.ship=True")

  def run_row(name: str, seed: int, directory: str) -> dict:
    del name, directory  # the CLIPs live in the shared cache, keyed by their own config
    cs = seeded(c, seed)
    clip_dir = ensure_pretrained(cs)
    return {**summary(cs, clip_dir), "clip_dir": os.path.join(clip_dir, "clip")}

  metrics_names = [name for spec in c.evals.values() for name in zero_shot_metric_names(spec)]
  return experiment.run(experiment.Table(
      name=config.name, split="test", metrics=metrics_names, methods=("clip-synth",), run_row=run_row,
      settings=lambda name: {"clip_train": weights_key(c)}, seeds=config.get("seeds") or 1,
      description=f"SynthSketch CLIP ({c.model}), zero-shot over held-out photos (chance: photo/sketch "
                  "1/75, colour 1/11, texture 1/4, place 1/8)",
      smoke_test=config.get("smoke_test", False), fingerprint=experiment.table_fingerprint(config),
      code=experiment.code_version(config.task)),
      workdir, started=started)
