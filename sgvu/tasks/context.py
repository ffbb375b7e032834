"""Unsupervised SBIR by cross-domain context prediction (seed 003): one table, a per-class table, pictures.

  python -m sgvu.main --config=experiments/context.py                          # SynthSketch
  python -m sgvu.main --config=experiments/context_voc_sketchy.py \
      --config.pretext_data.root=/data/VOC2012 --config.data.root=/data/Sketchy   # VOC 2012 pretext, Sketchy

A trunk learns where a patch of a photo lies relative to a patch of the photo's Canny edge map (8 ways), without
any label; its fc6 then embeds sketches and photos for nearest-neighbour retrieval. Rows (context_models.METHODS):
baselines (random init, the classifier trunk, HOG spatial pyramid, the supervised triplet network), the pretext in
one domain (photo, edge) and across domains (ours), and the seed's ablations (initialisation, BatchNorm).
Metrics: Acc@5 / Acc@10 of a sketch's own photo among the photos of its class, the mean over the evaluation classes
(sgvu/evaluators/per_class_retrieval.py), and the held-out pretext accuracy of the pretext rows. Writes
  WORKDIR/context_tables.json       per-class Acc@K and pretext accuracy, mean and std over seeds
  WORKDIR/context_data.json         photo counts of the pretext, the classifier and the held-out pairs, and how
                                    many pretext photos could not be read (skipped)
  WORKDIR/context_tsne.png          t-SNE of sketch and photo features: classifier trunk vs ours (seed 0)
  WORKDIR/context_retrieval.png     one query sketch per class and its top 5 (ours, seed 0; own photo in green)
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

from absl import logging
import jax
import ml_collections
import numpy as np

from sgvu import configs, evaluators, experiment, train
from sgvu.data import configured, edges as edges_lib, pipeline, registry, voc_images
from sgvu.evaluators import per_class_retrieval as _evaluator  # noqa: F401  found by name; imported so tables hash it
from sgvu.tasks import context_models as models
from sgvu.tasks import context_pictures as pictures
from sgvu.tasks.context_models import METHODS

TABLES_FILE = "context_tables.json"
DATA_FILE = "context_data.json"  # how many pretext / classifier / held-out photos, unreadable pretext photos
EMBEDDINGS_FILE, TSNE_FILE, GRID_FILE = pictures.EMBEDDINGS_FILE, pictures.TSNE_FILE, pictures.GRID_FILE


# --------------------------------------------------------------------------------------------- data

class Data:
  """Arrays every row uses, built once per table: pretext photos (+ edges), classifier photos, eval source.

  SynthSketch (data.dataset 'synth'): the evaluation classes' instances, split in two, are the eval source; the
  pretext reads every category's training photos, the classifier those of the non-evaluation categories.
  Real data (data.dataset 'sketchy', experiments/context_voc_sketchy.py): the pretext reads PASCAL VOC 2012 photos
  (config.pretext_data); Sketchy's zero-shot split puts the evaluation classes in 'test' (all their photos: the
  gallery) and the other classes in 'train', whose labelled photos train the classifier and whose sketch-photo
  pairs train the triplet row.
  """

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    d, size = config.data, config.data.image_size
    self.pretext_skipped = 0  # VOC images that could not be read
    if is_real(config):
      self.eval_source = _real_eval_source(d)
      pd = config.pretext_data
      if pd.get("tfds_data_dir"):  # the copy build_tfds --dataset=voc2012_images made: same ids, pixels, skips
        voc = registry.get_tfds_voc_images(pd.tfds_data_dir, pd.split, max_images=pd.max_images or None)
      else:
        voc = voc_images.VOCImages(pd.root, pd.split, max_images=pd.max_images or None)
      self.photos, self.pretext_skipped = voc.load_all(size)
      # No evaluation class here: those are all in the test split.
      self.classifier_photos, self.classifier_labels = _images(self.eval_source, "train", "photo", size)
    else:
      self.eval_source = configured.source_from_config(
          d, image_size=size, kinds=("photo", "sketch"), protocol="instance", categories=tuple(d.eval_classes),
          test_fraction=d.test_fraction, materialize=True)
      pretext_source = configured.source_from_config(d, protocol="instance", test_fraction=d.test_fraction,
                                                     materialize=False)
      if d.materialize:  # its training photos only
        pipeline.materialize(pretext_source, size, splits=("train",), kinds=("photo",), num_workers=2)
      # Pretext and classifier: training photos only (the evaluation's test photos are other instances).
      self.photos, labels = _images(pretext_source, "train", "photo", size)
      names = np.asarray(pretext_source.categories)[labels]
      self.classifier_photos = self.photos[~np.isin(names, list(d.eval_classes))]
      self.classifier_labels = labels[~np.isin(names, list(d.eval_classes))]
    sigma = config.pretext.sigma
    self.edges = edges_lib.edge_maps(self.photos, sigma=sigma)
    # Held-out pretext pairs: the evaluation classes' test photos.
    self.test_photos, _ = _images(self.eval_source, "test", "photo", size)
    self.test_edges = edges_lib.edge_maps(self.test_photos, sigma=sigma)
    logging.info("context data: %d pretext photos (+ edges; %d unreadable skipped), %d classifier photos of %d "
                 "classes, %d held-out photos", len(self.photos), self.pretext_skipped, len(self.classifier_photos),
                 len(np.unique(self.classifier_labels)), len(self.test_photos))

  def summary(self) -> dict:
    """What the rows were built from (WORKDIR/context_data.json)."""
    return {"pretext_photos": len(self.photos), "pretext_skipped": int(self.pretext_skipped),
            "classifier_photos": len(self.classifier_photos),
            "classifier_classes": int(len(np.unique(self.classifier_labels))), "heldout_photos": len(self.test_photos)}

  def triplets(self):
    """(sketches, photos, photo row of each sketch, photo labels) of the eval source's training split: SynthSketch's
    evaluation classes' training instances, or Sketchy's other classes. Sketches without their photo are left out."""
    size = self.config.data.image_size
    sp = self.eval_source.split("train")
    photos, labels, photo_index = _images(self.eval_source, "train", "photo", size, with_index=True)
    sketches, _, sketch_index = _images(self.eval_source, "train", "sketch", size, with_index=True)
    row = {int(i): n for n, i in enumerate(photo_index)}
    own_item = [sp.sketches[int(i)].photo for i in sketch_index]
    keep = [n for n, p in enumerate(own_item) if p is not None and int(p) in row]
    own = np.asarray([row[int(own_item[n])] for n in keep], np.int64)
    return sketches[keep], photos, own, labels


def is_real(config: ml_collections.ConfigDict) -> bool:
  """VOC 2012 pretext + Sketchy retrieval (experiments/context_voc_sketchy.py), rather than SynthSketch."""
  return config.data.dataset != "synth"


def _real_eval_source(d: ml_collections.ConfigDict):
  """Sketchy with the evaluation classes as its 'test' split (the zero-shot split's `unseen`), rendered once."""
  source = configured.source_from_config(d, unseen=tuple(d.eval_classes), materialize=False)
  found = source.split("test").categories
  missing = [c for c in d.eval_classes if c not in found]
  if missing:  # exact folder names: the per-class metrics are named after them
    raise ValueError(f"config.data.eval_classes {missing}: no such class folder in {d.dataset} under "
                     f"{d.root!r}; its classes: {list(source.categories)}")
  if d.materialize:
    pipeline.materialize(source, d.image_size, num_workers=d.num_workers)
  return source


def _images(source, split: str, kind: str, size: int, with_index: bool = False):
  """Every readable image of a split as uint8 [N, size, size, 3] with labels (and item indices)."""
  images, labels, index = [], [], []
  for batch in pipeline.eval_batches(source, split, kind, image_size=size, batch_size=256):
    images.append(batch["images"])
    labels.append(batch["labels"])
    index.append(batch["index"])
  if not images:
    raise ValueError(f"{source.name}/{split}: no {kind} could be loaded")
  out = (np.concatenate(images), np.concatenate(labels).astype(np.int64))
  return out + (np.concatenate(index),) if with_index else out


# --------------------------------------------------------------------------------------------- the classifier

def classifier_weights(config, data: Data, workdir: str, batchnorm: bool) -> dict[str, np.ndarray]:
  """The trunk trained as a photo classifier of the non-evaluation classes (the ImageNet stand-in), once per
  table and setting: cached in WORKDIR/pretrained/ under a fingerprint of what it depends on."""
  settings = {"classifier_train": config.classifier_train, "model": config.model, "data": config.data,
              "batchnorm": batchnorm}
  directory = os.path.join(workdir, "pretrained", f"classifier-{'bn' if batchnorm else 'nobn'}-"
                           f"{experiment.fingerprint(settings, 0, experiment.code_version(config.task))}")
  path = os.path.join(directory, "weights.npz")
  if os.path.exists(path):
    with np.load(path) as f:
      return dict(f)
  task = models.ClassifierTask(config, batchnorm, data.classifier_photos, data.classifier_labels)
  state, _ = train.fit(task, config.classifier_train, directory, return_state=True)
  weights = models.flat_variables(jax.device_get(train.variables(state)))
  if jax.process_index() == 0:
    np.savez(path + ".tmp.npz", **weights)
    os.replace(path + ".tmp.npz", path)  # never a half-written file that reads as done
  return weights


# --------------------------------------------------------------------------------------------- one row

def train_and_evaluate(config, name: str, data: Data, directory: str, workdir: str, seed: int) -> dict:
  method = METHODS[name]
  weights = classifier_weights(config, data, workdir, method.batchnorm) if method.init != "none" else None
  extra, variables = {}, {}
  if method.kind == "hog":
    predict = models.hog_predict_fns(config)
  else:
    if method.kind == "triplet":
      task = models.TripletTask(config, method, *data.triplets(), init_weights=weights)
      tc = _train_config(config.triplet_train, seed)
    elif method.kind == "pretext":
      task = models.PretextTask(config, method, data.photos, data.edges, init_weights=weights)
      tc = _train_config(config.pretext_train, seed)
    else:  # random, classifier: an initialisation only (the classifier's = all of its trunk)
      as_pretext = dataclasses.replace(METHODS["ours"], init=method.init, batchnorm=method.batchnorm)
      task = models.PretextTask(config, as_pretext, data.photos, data.edges, init_weights=weights)
      tc = _train_config(config.pretext_train, seed, steps=0)
    setup = train.build(task, tc)
    state = (train.fit(task, tc, directory, setup=setup, return_state=True)[0] if tc.num_steps
             else train.initial_state(task, setup, tc.seed))
    variables = jax.device_get(train.variables(state))
    predict = task.predict_fns()
    extra["trainable_params"] = setup.num_trainable
    if method.kind == "pretext":
      extra["pretext_acc"] = models.pretext_accuracy(task, variables, data.test_photos, data.test_edges,
                                                     config.pretext.eval_pairs)
  evals = evaluators.build(config.evals, predict, source=data.eval_source, image_size=config.data.image_size)
  result = evaluators.run_all(evals, variables)
  if seed == 0 and name in (config.picture_methods or ()):
    _save_embeddings(directory, predict, variables, data)
  return {**result, **extra}


def _train_config(base: ml_collections.ConfigDict, seed: int, steps: int | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict(base.to_dict())
  c.seed = base.seed + seed
  if steps is not None:
    c.num_steps = steps
  return c


def _save_embeddings(directory: str, predict, variables, data: Data) -> None:
  from sgvu import batching  # pylint: disable=g-import-not-at-top
  out = {}
  for kind in ("sketch", "photo"):
    fn = predict[f"embed_{kind}"]
    emb, labels, index = batching.embed_split(lambda im, fn=fn: fn(variables, im), data.eval_source, "test", kind,
                                              image_size=data.config.data.image_size, batch_size=128)
    out.update({f"{kind}_emb": emb, f"{kind}_labels": labels, f"{kind}_index": index})
  os.makedirs(directory, exist_ok=True)
  np.savez(os.path.join(directory, EMBEDDINGS_FILE), **out)


# --------------------------------------------------------------------------------------------- validation

def validate(config: ml_collections.ConfigDict) -> None:
  from sgvu.data.synth import catalog  # pylint: disable=g-import-not-at-top
  unknown = [m for m in config.methods if m not in METHODS]
  if unknown or not config.methods:
    raise ValueError(f"config.methods has unknown {unknown or '(empty)'}; valid: {sorted(METHODS)}")
  d = config.data
  configs.check_choice(config, "data.dataset", ["synth", "sketchy"])
  if is_real(config):
    _validate_real(config)
  else:
    if "pretext_data" in config:
      raise ValueError("config.pretext_data (VOC 2012 pretext photos) is read only with data.dataset='sketchy'; "
                       "SynthSketch's pretext reads its own training photos")
    bad = [c for c in d.eval_classes if c not in catalog.ALL_CATEGORIES]
    if bad or len(set(d.eval_classes)) != len(d.eval_classes) or not d.eval_classes:
      raise ValueError(f"config.data.eval_classes: unknown or repeated {bad or list(d.eval_classes)}; "
                       f"valid: SynthSketch categories {list(catalog.ALL_CATEGORIES)}")
  configs.check_positive(config, "data.image_size", "pretext.patch", "pretext.eval_pairs", "model.fc6", "model.fc7")
  g = models.geometry(config)  # raises on a bad patch / gap / jitter
  if g.span > d.image_size:
    raise ValueError(f"config.pretext: a 3x3 grid of {g.patch}-px patches with gap {g.gap} and jitter {g.jitter} "
                     f"spans {g.span} px > data.image_size {d.image_size}")
  models.net_config(config, True)  # raises naming a bad model key
  for name in ("pretext_train", "triplet_train", "classifier_train"):
    configs.validate_train(config[name])
  evaluators.validate(config.evals)
  unknown = [m for m in (config.picture_methods or ()) if m not in config.methods]
  if unknown:
    raise ValueError(f"config.picture_methods {unknown} are not in config.methods")


def _validate_real(config: ml_collections.ConfigDict) -> None:
  """The two local copies the real-data table reads, named by key with the layout each must have."""
  from sgvu.data import sketchy  # pylint: disable=g-import-not-at-top
  d = config.data
  if "pretext_data" not in config:
    raise ValueError(f"config.pretext_data (the VOC 2012 pretext photos) is required with data.dataset={d.dataset!r}")
  copies = (("data.root", d.root, "Sketchy", sketchy.LAYOUT),
            ("pretext_data.root", config.pretext_data.root, "PASCAL VOC 2012 (the VOC2012 folder)", voc_images.LAYOUT))
  for key, root, name, layout in copies:
    if key == "data.root" and d.get("tfds_data_dir"):
      continue  # Sketchy from its TFDS copy
    if key == "pretext_data.root" and config.pretext_data.get("tfds_data_dir"):
      continue  # VOC 2012 from its TFDS copy
    if not root:
      raise ValueError(f"config.{key} is required: the local copy of {name}, laid out as\n{layout}\n"
                       f"e.g. --config.{key}=/data/... (docs/context.md)")
    if not os.path.isdir(root):
      raise ValueError(f"config.{key}={root!r}: no such directory; expected {name} laid out as\n{layout}")
  configs.check_choice(config, "pretext_data.split", voc_images.SPLITS)
  configs.check_positive(config, "pretext_data.max_images", allow_zero=True)  # 0: every image of the split
  if len(set(d.eval_classes)) != len(d.eval_classes) or not d.eval_classes:
    raise ValueError(f"config.data.eval_classes: empty or repeated {list(d.eval_classes)}")


# --------------------------------------------------------------------------------------------- tables

def table(config: ml_collections.ConfigDict, workdir: str) -> experiment.Table:
  cache = {}

  def data() -> Data:
    if "data" not in cache:
      cache["data"] = Data(config)
      if jax.process_index() == 0:
        os.makedirs(workdir, exist_ok=True)
        with open(os.path.join(workdir, DATA_FILE), "w") as f:
          json.dump(cache["data"].summary(), f, indent=1)
    return cache["data"]

  def run_row(name: str, seed: int, directory: str) -> dict:
    return train_and_evaluate(config, name, data(), directory, workdir, seed)

  ks = tuple(config.evals.retrieval.ks)
  data_name = "VOC 2012 pretext, Sketchy" if is_real(config) else "SynthSketch"
  desc = (f"{data_name}, Acc@K of a sketch's own photo among the photos of its class, mean over "
          f"{len(config.data.eval_classes)} classes")
  return experiment.Table(
      name=config.name, split="test", metrics=[f"Acc@{k}" for k in ks], methods=tuple(config.methods),
      run_row=run_row, settings=lambda name: {"config": config, "method": name}, seeds=config.seeds,
      trains=lambda name: METHODS[name].trains, description=desc, smoke_test=config.get("smoke_test", False),
      fingerprint=experiment.table_fingerprint(config), code=experiment.code_version(config.task),
      pictures=lambda rows: draw_pictures(config, data(), workdir, rows),
      baseline="random-init" if "random-init" in config.methods else "")


def per_seed_results(workdir: str, methods, seeds: int) -> dict[str, list[dict]]:
  """Each row's result.json per seed (the runner keeps only the table metrics' spread)."""
  out = {}
  for m in methods:
    runs = []
    for s in range(seeds if METHODS[m].trains else 1):
      path = os.path.join(experiment.row_dir(workdir, m, s), experiment.RESULT_FILE)
      if os.path.exists(path):
        with open(path) as f:
          runs.append(json.load(f))
    out[m] = runs
  return out


def extra_tables(config, workdir: str) -> dict:
  """Per-class Acc@K and pretext accuracy (mean, std over seeds) of every row, printed and saved."""
  runs = per_seed_results(workdir, config.methods, config.seeds)
  classes, ks = list(config.data.eval_classes), tuple(config.evals.retrieval.ks)
  stat = lambda m, key: (lambda v: (float(np.mean(v)), float(np.std(v))) if v else None)(
      [r[key] for r in runs[m] if isinstance(r.get(key), (int, float))])
  per_class = {m: {f"Acc@{k} {c}": stat(m, f"Acc@{k} {c}") for k in ks for c in classes} for m in config.methods}
  pretext = {m: stat(m, "pretext_acc") for m in config.methods if METHODS[m].kind == "pretext"}
  k = ks[0]
  lines = [f"\nper class, Acc@{k} (mean over seeds):", "| class | " + " | ".join(config.methods) + " |",
           "|---|" + "---|" * len(config.methods)]
  for c in classes + ["mean"]:
    key = f"Acc@{k}" if c == "mean" else f"Acc@{k} {c}"
    cells = [(lambda s: f"{s[0]:.3f}" if s else "-")(stat(m, key)) for m in config.methods]
    lines.append(f"| {c} | " + " | ".join(cells) + " |")
  lines += ["\nheld-out pretext accuracy (8 positions, chance 0.125):"]
  lines += [f"  {m}: {s[0]:.4f} ± {s[1]:.4f}" for m, s in pretext.items() if s]
  print("\n".join(lines) + "\n")
  out = {"per_class": per_class, "pretext_acc": pretext, "classes": classes}
  if jax.process_index() == 0:
    with open(os.path.join(workdir, TABLES_FILE), "w") as f:
      json.dump(out, f, indent=1)
  return out


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  started = time.perf_counter()
  result = experiment.run(table(config, workdir), workdir, started=started)
  extra_tables(config, workdir)
  return result


def draw_pictures(config, data: Data, workdir: str, rows: dict) -> None:
  for name in config.picture_methods or ():
    if name not in rows:
      return
  pictures.draw_all(config, data, workdir, rows)
