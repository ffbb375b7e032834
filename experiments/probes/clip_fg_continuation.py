"""Can the SynthSketch CLIP's pretraining signal give fine-grained ZS-SBIR instance detail at 48 px? (issue #10)

  python experiments/probes/clip_fg_continuation.py --variant shape --steps 300
  python experiments/probes/clip_fg_continuation.py --variant control --steps 300

Continues pretraining the shipped CLIP (photo-caption InfoNCE + the image-label term, as
sgvu.tasks.clip_pretrain) for --steps steps and scores, before and after, with no further training:
- fg_zs_sbir's test split (15 unseen categories x 40 photos, 1,800 sketches; each sketch among the photos of its
  own category; chance Acc@1 0.025): Acc@1 / Acc@5 of the pooled embedding, raw and domain-centred;
- zero-shot category accuracy on 20 held-out photos per category of the CLIP's own world.

Variants (the only difference between them is the batches and captions):
- control: the shipped recipe (random batches of the whole world, each attribute phrase kept with p 0.5);
- shape:   batches of 8 categories x 16 photos (the other photos in a batch are mostly of the same category,
           so only colour, texture, place and the instance's part options tell captions apart), part-option
           phrases always kept, and with probability 0.5 a shape-only caption ("a shoe with a high heel and
           laces"), which only the part options can match.
Photos come from a fixed pool (75 categories x --per_category) rendered once, to keep the probe at minutes.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments import clip_pretrain as clip_experiment
from experiments import fg_zs_sbir
from experiments.probes.fg_instance_detail import accuracy, load
from sgvu import clip_io, preprocess, sharding, tokenizers, train
from sgvu import data as data_lib
from sgvu.data import configured
from sgvu.data.synth import caption as caption_lib
from sgvu.data.synth import catalog
from sgvu.models.clip import CLIP
from sgvu.tasks import clip_pretrain


def shape_caption(inst, rng, shape_only: float, keep: float = 0.5) -> str:
  """Part-option phrases always; the other attributes kept with `keep`, or none (prob. shape_only)."""
  if rng.random() < shape_only:
    cat = catalog.get(inst.category)
    phrases = [cat.options[k][v] for k, v in sorted(inst.options.items()) if cat.options[k][v]]
    text = f"{caption_lib.article(inst.category)} {inst.category}"
    return text + (" with " + " and ".join(phrases) if phrases else "")
  text = caption_lib.partial_caption(inst, rng, keep)
  cat = catalog.get(inst.category)
  phrases = [cat.options[k][v] for k, v in sorted(inst.options.items()) if cat.options[k][v]]
  if phrases and " with " not in text:  # partial_caption dropped them all: put them back
    head, _, tail = text.partition(" on ") if " on " in text else (text, "", "")
    text = head + " with " + " and ".join(phrases) + (" on " + tail if tail else "")
  return text


_SOURCE = None


def _render(args):
  index, size = args
  item = _SOURCE.split("train").photos[index]
  return _SOURCE.load_photo(item, size)


def _init(source):
  global _SOURCE
  _SOURCE = source


def photo_pool(source, per_category: int, size: int):
  sp = source.split("train")
  by_cat = {}
  for i, p in enumerate(sp.photos):
    by_cat.setdefault(int(p.label), []).append(i)
  chosen = [i for c in sorted(by_cat) for i in by_cat[c][:per_category]]
  with multiprocessing.get_context("spawn").Pool(2, initializer=_init, initargs=(source,)) as pool:
    images = np.stack(pool.map(_render, [(i, size) for i in chosen], chunksize=64))
  labels = np.asarray([int(sp.photos[i].label) for i in chosen], np.int32)
  return images, labels, [sp.photos[i] for i in chosen]


def batches(source, images, labels, items, tokenizer, variant: str, batch_size: int, seed: int):
  rng = np.random.default_rng(seed)
  cats = np.unique(labels)
  by_cat = {int(c): np.flatnonzero(labels == c) for c in cats}
  while True:
    if variant == "shape":
      picked = rng.choice(cats, 8, replace=False)
      rows = np.concatenate([rng.choice(by_cat[int(c)], batch_size // 8, replace=False) for c in picked])
      texts = [shape_caption(source.instance(items[r]), rng, shape_only=0.5) for r in rows]
    else:
      rows = rng.choice(len(images), batch_size, replace=False)
      texts = [caption_lib.partial_caption(source.instance(items[r]), rng, 0.5) for r in rows]
    yield {"photo": images[rows], "tokens": np.asarray(tokenizer(texts), np.int32), "label": labels[rows]}


class ContinuedPretraining(clip_pretrain.CLIPPretrainTask):
  def __init__(self, config, source, tokenizer, params):
    super().__init__(config, source, tokenizer)
    self.start = params

  def pretrained(self):
    return train.flatten(self.start)


def option_match(q, g, q_labels, g_labels, q_options, g_options) -> tuple[float, float]:
  """(share of queries whose top photo in their category has the query's part options, chance of that)."""
  s = np.where(q_labels[:, None] == g_labels[None, :], q @ g.T, -np.inf)
  same = (q_options[:, None] == g_options[None, :]) & (q_labels[:, None] == g_labels[None, :])
  hit = same[np.arange(len(q)), np.argmax(s, 1)]
  chance = same.sum(1) / (q_labels[:, None] == g_labels[None, :]).sum(1)
  return float(hit.mean()), float(chance.mean())


def fg_scores(params, cfg, fg_data, tokenizer=None) -> str:
  """FG Acc@K of the pooled embedding, and how often the top photo merely has the query's part options, for
  sketch queries and for shape-only caption queries ("a shoe with a high heel and laces")."""
  model = CLIP(cfg)
  enc = jax.jit(lambda p, im: model.apply({"params": p}, preprocess.normalize_images(im), method=CLIP.encode_image))
  emb = lambda ims: np.concatenate([np.asarray(enc(params, jnp.asarray(ims[i:i + 128]))) for i in range(0, len(ims), 128)])
  (photos, pl, _), (sketches, sl, _), own, (p_opt, s_opt, p_shape) = fg_data
  po, so = emb(photos), emb(sketches)
  unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
  out = (f"raw {accuracy(so, po, sl, pl, own)} | domain-centred "
         f"{accuracy(so - so.mean(0), po - po.mean(0), sl, pl, own)}")
  hit, chance = option_match(unit(so), unit(po), sl, pl, s_opt, p_opt)
  out += f" | sketch->photo options {hit:.3f} (chance {chance:.3f})"
  if tokenizer is not None:
    txt = np.asarray(model.apply({"params": params}, jnp.asarray(tokenizer(p_shape)), method=CLIP.encode_text))
    hit, chance = option_match(unit(txt), unit(po), pl, pl, p_opt, p_opt)
    out += f" | shape caption->photo options {hit:.3f} (chance {chance:.3f})"
  return out


def zero_shot(params, cfg, tokenizer, held_out) -> float:
  model = CLIP(cfg)
  images, labels, categories = held_out
  texts = [clip_pretrain.TEMPLATE.format(data_lib.category_text(c)) for c in categories]
  txt = np.asarray(model.apply({"params": params}, jnp.asarray(tokenizer(texts)), method=CLIP.encode_text))
  enc = jax.jit(lambda p, im: model.apply({"params": p}, preprocess.normalize_images(im), method=CLIP.encode_image))
  img = np.concatenate([np.asarray(enc(params, jnp.asarray(images[i:i + 256]))) for i in range(0, len(images), 256)])
  return float(np.mean(np.argmax(img @ txt.T, 1) == labels))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--variant", choices=("control", "shape"), default="shape")
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--lr", type=float, default=1e-4)
  parser.add_argument("--per_category", type=int, default=96)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  t0 = time.perf_counter()

  c = clip_experiment.get_config().clip_train
  clip_dir = os.path.join(clip_pretrain.ensure_pretrained(c), "clip")
  cfg, params = clip_io.load_clip(clip_dir)
  tokenizer = tokenizers.load_tokenizer(clip_dir)
  size = cfg.vision.image_size
  source = configured.source_from_config(c.data, kinds=("photo",), protocol="instance",
                                         test_fraction=c.test_fraction)
  fg_config = fg_zs_sbir.get_config()
  fg_source = configured.source_from_config(fg_config.data, materialize=False, protocol="zero_shot")
  split = fg_source.split("test")
  (photos, pl, pi), (sketches, sl, si) = load(fg_source, "photo", size), load(fg_source, "sketch", size)
  row = {int(i): n for n, i in enumerate(pi)}
  own = np.asarray([row[int(split.sketches[int(i)].photo)] for i in si])
  options = lambda item: repr(sorted(fg_source.instance(item).options.items()))
  p_opt = np.asarray([options(split.photos[int(i)]) for i in pi])
  s_opt = np.asarray([options(split.sketches[int(i)]) for i in si])
  p_shape = [shape_caption(fg_source.instance(split.photos[int(i)]), np.random.default_rng(0), shape_only=1.0)
             for i in pi]
  fg_data = ((photos, pl, pi), (sketches, sl, si), own, (p_opt, s_opt, p_shape))
  test_ims, test_labels, _ = load(source, "photo", size)
  held_out = (test_ims, test_labels, source.categories)
  print(f"before: FG {fg_scores(params, cfg, fg_data, tokenizer)} | photo zero-shot {zero_shot(params, cfg, tokenizer, held_out):.4f}",
        flush=True)

  images, labels, items = photo_pool(source, args.per_category, size)
  print(f"pool: {len(images)} photos in {time.perf_counter() - t0:.0f}s", flush=True)
  c.optim.lr = args.lr
  c.optim.warmup_steps = 20
  c.num_steps = args.steps
  task = ContinuedPretraining(c, source, tokenizer, params)
  setup = train.build(task, c)
  state = train.initial_state(task, setup, args.seed)
  data = batches(source, images, labels, items, tokenizer, args.variant, c.batch_size, args.seed)
  for step in range(1, args.steps + 1):
    batch = sharding.to_global(next(data), setup.batch_sharding)
    with jax.set_mesh(setup.mesh):
      state, metrics = setup.step(state, batch)
    if step % 50 == 0 or step == args.steps:
      p = train.merge_params(state.params, state.frozen)
      m = {k: round(float(v), 3) for k, v in jax.device_get(metrics).items()}
      print(f"step {step}: {m} | FG {fg_scores(p, cfg, fg_data, tokenizer)} | photo zero-shot "
            f"{zero_shot(p, cfg, tokenizer, held_out):.4f} | {time.perf_counter() - t0:.0f}s", flush=True)


if __name__ == "__main__":
  main()
