"""The sketch + text duet for fine-grained retrieval (seed 002): a sketch as a pseudo-word token.

Sketch -> CLIP image tower V -> visual-to-word converter C_v2w -> pseudo-word token s^w; the query is the
frozen text tower over [P^L ; s^w ; the user's words], P^L three learned prompt tokens. Training needs no
text (the seed's point): the triplet on [P^L ; s^w], compositionality with Delta = p+ - s through C_v2w as a
second token ([P^L ; s^w ; Delta^w]), the neutral-text regulariser, the region-aware triplet, the UNet
reconstruction and the text-text prompt loss. Trained: V's LayerNorms, C_v2w, P^L, G. At test the words
("red striped * on a sandy beach", with * where the sketch's token goes) find one photo among the photos of
its category. Baselines and ablations are rows of METHODS, all in one table on the same data.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sgvu import configs, evaluators, experiment, losses, preprocess, train
from sgvu.data import composed, composed_pipeline, pipeline
from sgvu.evaluators import composed as composed_eval  # noqa: F401  (its tables hash the evaluator)
from sgvu.models import duet as duet_models
from sgvu.tasks import clip_pretrain, composed_common, composed_pictures
from sgvu.tasks.base import Task
from sgvu.tasks.composed_common import fills


@dataclasses.dataclass(frozen=True)
class Method:
  kind: str  # 'sketch-only' | 'text-only' | 'b-clip' | 'pic2word' | 'ours'
  comp: bool = True  # compositionality with Delta = p+ - s
  reg: bool = True  # neutral-text regulariser
  rt: bool = True  # region-aware triplet
  rec: bool = True  # UNet reconstruction
  tt: bool = True  # text-text prompt loss

  @property
  def trains(self) -> bool:
    return self.kind not in ("text-only", "b-clip")


METHODS = {
    "sketch-only": Method("sketch-only"), "text-only": Method("text-only"), "b-clip": Method("b-clip"),
    "pic2word": Method("pic2word"), "ours": Method("ours"),
    "ours-no-comp": Method("ours", comp=False), "ours-no-reg": Method("ours", reg=False),
    "ours-no-rt": Method("ours", rt=False), "ours-no-rec": Method("ours", rec=False),
    "ours-no-tt": Method("ours", tt=False),
}
METRICS = ["Acc@1", "Acc@10"]


class DuetTask(Task):
  """One row: V (CLIP image tower), T (frozen text tower), C_v2w, P^L, G as one params tree."""

  def __init__(self, config, method: Method, towers: composed_common.Towers, clip_params, source, categories):
    super().__init__(config)
    self.method, self.towers, self.source, self.categories = method, towers, source, tuple(categories)
    self.clip = {"img": clip_params["img"], "txt": clip_params["txt"]}
    self.image_size = towers.cfg.vision.image_size
    self.width = towers.cfg.text.width
    d = config.duet
    self.v2w = duet_models.VisualToWord(self.width, hidden=d.v2w_hidden, dropout=d.v2w_dropout)
    self.decoder = duet_models.UNetDecoder(self.image_size, width=d.decoder_width)
    self.logit_scale = float(np.exp(np.asarray(clip_params["logit_scale"])))

  # -- params
  def init_params(self, rng):
    k1, k2 = jax.random.split(rng)
    e = self.towers.cfg.embed_dim
    params = dict(self.clip)
    params["c_v2w"] = self.v2w.init(k1, jnp.zeros((1, e)), deterministic=True)["params"]
    x = jnp.zeros((1, self.image_size, self.image_size, 3))
    params["G"] = self.decoder.init(k2, x, jnp.zeros((1, e)))["params"]
    # P^L starts as the handcrafted prompt's token embeddings (overwritten by pretrained() as well).
    params["prompts"] = self._handcrafted_prompt(self.clip["txt"])
    return params

  def _handcrafted_prompt(self, txt_params) -> jax.Array:
    tokens, _ = self.towers.tokenize([self.config.duet.prompt_init])
    ids = [int(t) for t in tokens[0] if t not in (self.towers.tokenizer.bos_token_id,
                                                  self.towers.tokenizer.eos_token_id,
                                                  self.towers.tokenizer.pad_token_id)]
    rows = jnp.take(jnp.asarray(txt_params["token_embedding"]), jnp.asarray(ids), axis=0)
    n = self.config.duet.num_prompts
    return jnp.concatenate([rows, jnp.tile(rows[-1:], (max(n - len(ids), 0), 1))])[:n]

  def pretrained(self):
    return {**train.flatten({"img": self.clip["img"], "txt": self.clip["txt"]}),
            "prompts": np.asarray(self._handcrafted_prompt(self.clip["txt"]))}

  def is_trainable(self, path):
    kind = self.method.kind
    if kind == "sketch-only":
      return composed_common.layernorm_or(())(path)
    if kind == "pic2word":
      return path.startswith("c_v2w/")
    if kind == "ours":
      return composed_common.layernorm_or((r"c_v2w/.*", r"prompts", r"G/.*"))(path)
    return False

  # -- encoders
  def embed_image(self, params, images):
    return self.towers.image(params["img"], preprocess.normalize_images(images))

  def embed_regions(self, params, images):
    """([B, E] embeddings, [B, P, E] patch tokens in the joint space) from one tower pass."""
    return self.towers.embed_and_patches(params["img"], preprocess.normalize_images(images))

  def pseudo_word(self, params, embeds, rng=None):
    """[B, E] image embeddings -> [B, 1, W] pseudo-word tokens."""
    det = rng is None
    out = self.v2w.apply({"params": params["c_v2w"]}, losses.l2_normalize(embeds), deterministic=det,
                         rngs=None if det else {"dropout": rng})
    return out[:, None]

  def query(self, params, template: str, sketch_word, extra=None):
    n = sketch_word.shape[0]
    tokens, kinds = self.towers.template(template, n)
    prompts = params["prompts"] if "#" in template else None
    return self.towers.slotted(params["txt"], tokens, kinds,
                               fills(self.width, prompts=prompts, sketch=sketch_word, extra=extra))

  # -- training
  def loss_fn(self, params, batch, rng):
    m, d = self.method, self.config.duet
    sk = self.embed_image(params, batch["sketch"])
    if m.kind == "ours" and m.rt:  # one tower pass gives both the embedding and the region tokens
      ph, regions_p = self.embed_regions(params, batch["photo"])
      ng, regions_n = self.embed_regions(params, batch["neg_photo"])
    else:
      ph = self.embed_image(params, batch["photo"])
      ng = None if m.kind == "pic2word" else self.embed_image(params, batch["neg_photo"])
    if m.kind == "sketch-only":
      loss = losses.triplet(sk, ph, ng, d.margin)
      return loss, {"triplet": loss}
    if m.kind == "pic2word":  # photos only: "a photo of *" with * = C_v2w(V(photo)) against V(photo)
      word = self.pseudo_word(params, ph, rng)
      text = self.query(params, d.pic2word_template, word)
      loss = losses.infonce(ph, text, self.logit_scale)
      return loss, {"contrastive": loss}
    rngs = jax.random.split(rng, 3)
    word = self.pseudo_word(params, sk, rngs[0])
    q = self.query(params, "### *", word)
    terms = {"triplet": losses.triplet(q, ph, ng, d.margin)}
    if m.comp:
      delta = self.pseudo_word(params, losses.l2_normalize(ph) - losses.l2_normalize(sk), rngs[1])
      terms["comp"] = d.comp_weight * losses.triplet(self.query(params, "### * +", word, delta), ph, ng, d.margin)
    if m.reg:
      choice = jax.random.randint(rngs[2], (), 0, len(d.neutral_texts))
      neutral = jax.lax.switch(choice, [lambda w, t=t: self.query(params, f"### * {t}", w) for t in d.neutral_texts],
                               word)  # only the drawn text's branch runs
      terms["reg"] = d.reg_weight * duet_models.neutral_regulariser(neutral, q)
    if m.rt:
      sim_p = duet_models.region_similarity(q, regions_p, d.region_temperature)
      sim_n = duet_models.region_similarity(q, regions_n, d.region_temperature)
      terms["rt"] = d.rt_weight * jnp.mean(jax.nn.relu(sim_n - sim_p + d.margin))
    if m.rec:
      recon = self.decoder.apply({"params": params["G"]}, batch["sketch"].astype(jnp.float32) / 255.0, q)
      terms["rec"] = d.rec_weight * duet_models.reconstruction_loss(recon, batch["photo"].astype(jnp.float32) / 255.0)
    if m.tt:
      terms["tt"] = d.tt_weight * duet_models.text_text_loss(q, self.query(params, d.pic2word_template, word))
    return sum(terms.values()), terms

  def train_iterator(self, batch_size, seed):
    return pipeline.pair_loader(self.source.photo_source, "train", batch_size=batch_size,
                                image_size=self.image_size, pairing="instance", seed=seed,
                                num_workers=self.config.data.num_workers, strict=self.config.data.strict)

  # -- evaluation
  def words_with_name(self, texts, labels):
    return ["a " + t.replace(composed.PLACEHOLDER, self.categories[int(l)]) for t, l in zip(texts, labels)]

  def embed_queries(self, params, sketches, texts, labels):
    m, d = self.method, self.config.duet
    if m.kind == "text-only":
      return np.asarray(self._text(params, self.words_with_name(texts, labels)))
    sk = self._embed_image_jit(params, sketches)
    if m.kind == "sketch-only":
      return np.asarray(sk)
    if m.kind == "b-clip":
      tx = self._text(params, self.words_with_name(texts, labels))
      return np.asarray(losses.l2_normalize(sk) + losses.l2_normalize(tx))
    prefix = "### a " if m.kind == "ours" else d.pic2word_template.replace("*", "").strip() + " a "
    tokens, kinds = self.towers.tokenize([prefix + t for t in texts])
    return np.asarray(self._slotted_jit(params, sk, jnp.asarray(tokens), jnp.asarray(kinds)))

  def _text(self, params, texts):
    tokens, _ = self.towers.tokenize(texts)
    return self._text_jit(params, jnp.asarray(tokens))

  @property
  def _embed_image_jit(self):
    return _jitted(self, "image", lambda p, x: self.embed_image(p, x))

  @property
  def _text_jit(self):
    return _jitted(self, "text", lambda p, t: self.towers.text(p["txt"], t))

  @property
  def _slotted_jit(self):
    def fn(p, sk, tokens, kinds):
      word = self.pseudo_word(p, sk)
      prompts = p["prompts"] if self.method.kind == "ours" else None
      return self.towers.slotted(p["txt"], tokens, kinds, fills(self.width, prompts=prompts, sketch=word))
    return _jitted(self, "slotted", fn)

  def predict_fns(self):
    return {"embed_queries": self.embed_queries,
            "embed_images": lambda p, x: np.asarray(self._embed_image_jit(p, x)),
            "score": lambda p, q, g: np.asarray(losses.l2_normalize(jnp.asarray(q)) @
                                                losses.l2_normalize(jnp.asarray(g)).T)}


def _jitted(task, name, fn):
  cache = task.__dict__.setdefault("_jit_cache", {})
  if name not in cache:
    cache[name] = jax.jit(fn)
  return cache[name]


def validate(config: ml_collections.ConfigDict) -> None:
  unknown = [m for m in config.methods if m not in METHODS]
  if unknown or not config.methods:
    raise ValueError(f"config.methods: unknown {unknown} (or empty); valid: {sorted(METHODS)}")
  configs.check_choice(config, "data.dataset", ["synth_instances", "shoev2_duet", "chairv2_duet"])
  clip_pretrain.validate_clip_init(composed_common.clip_view(config))
  configs.validate_train(config.duet_train)
  evaluators.validate(config.evals)
  if len(config.duet.neutral_texts) < 1:
    raise ValueError("config.duet.neutral_texts: give at least one neutral text")
  configs.check_positive(config, "duet.num_prompts", "duet.margin", "eval_batch_size")


def table(config: ml_collections.ConfigDict, workdir: str) -> experiment.Table:
  """Seed 002's table: every row of config.methods trained (if it trains) and scored on the test split."""
  clip_cfg, clip_params, tokenizer = composed_common.load_clip(config)
  towers = composed_common.Towers(clip_cfg, tokenizer)
  image_size = clip_cfg.vision.image_size
  source = composed_common.make_source(config)
  if config.data.materialize and hasattr(source, "photo_source"):
    pipeline.materialize(source.photo_source, image_size, splits=("train",), num_workers=2)
  arrays = {"test": composed_pipeline.materialize_split(source, "test", image_size, strict=config.data.strict,
                                                        max_queries=config.get("max_test_queries") or None)}

  def run_row(name: str, seed: int, directory: str) -> dict:
    method = METHODS[name]
    task = DuetTask(config, method, towers, clip_params, source, source.categories)
    evals = evaluators.build(config.evals, task.predict_fns(), arrays=arrays, batch_size=config.eval_batch_size)
    if method.trains:
      tc = composed_common.row_train_config(config.duet_train, name, seed, dict(config.duet.steps),
                                            dict(config.duet.lrs))
      setup = train.build(task, tc)
      params, records = train.fit(task, tc, directory, setup=setup, evaluate=lambda p: evaluators.run_all(evals, p))
      result, trainable = records[-1], setup.num_trainable
    else:
      params = train.unflatten(task.pretrained())
      result, trainable = evaluators.run_all(evals, params), 0
    if seed == 0 and name == config.grid_method:
      composed_pictures.draw(config, task.predict_fns(), params, arrays["test"], workdir, within_category=True,
                             name=name)
    return {**{k: v for k, v in result.items() if k != "step"}, "trainable_params": int(trainable)}

  clip = clip_pretrain.clip_extra(composed_common.clip_view(config))["clip"]
  test = arrays["test"]
  per_category = float(np.mean([np.sum(test.image_labels == l) for l in test.labels]))
  validation = bool(config.data.reader_options.get("holdout_every", 0))
  return experiment.Table(
      name=config.name, split="val" if validation else "test", metrics=METRICS, methods=tuple(config.methods), run_row=run_row,
      settings=lambda name: {"config": config, "method": name}, trains=lambda name: METHODS[name].trains,
      seeds=config.seeds, gallery_size=int(round(per_category)),
      description=(f"{len(test)} sketch+text queries ({'held-out seen' if validation else 'unseen'} categories), "
                   f"each among the {per_category:.0f} photos of its category "
                   f"({config.data.dataset}; CLIP {clip.get('source')})"),
      smoke_test=config.get("smoke_test", False), extra={"clip": clip, "chance": {
          "Acc@1": 1 / per_category, "Acc@10": min(10 / per_category, 1.0)}},
      fingerprint=experiment.table_fingerprint(config), code=experiment.code_version(config.task),
      baseline="b-clip")



def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  started = time.perf_counter()
  return experiment.run(table(config, workdir), workdir, started=started)
