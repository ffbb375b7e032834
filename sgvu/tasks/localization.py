"""Sketch-guided object localization (seed 000): one table of the CMA rows and the ViT variant.

  python -m sgvu.main --config=experiments/localization.py

Given a scene image and a sketch of a category, box every instance of that category, including categories
never seen in training. Rows and models: sgvu/tasks/localization_models.py. Each (row, seed) trains on
queries of seen categories (`data.train_split`), then scores one query per (test image, category present)
on the seen and the unseen categories with pycocotools (sgvu/evaluators/localization.py), writing
  WORKDIR/<row>/seed<k>/detections_<seen|unseen>.json   COCO results of that row and seed
  WORKDIR/gt_<seen|unseen>.json                         COCO ground truth (the same for every row)
and, once every row is done, WORKDIR/localization_examples.png: query sketches beside their images with the
ground-truth boxes (green) and each row's three best boxes (red, brightest first; seed 0).
"""

from __future__ import annotations

import json
import os
import time

from absl import logging
import jax
import ml_collections
from sgvu import configs, evaluators, experiment, train
from sgvu.evaluators import localization as _evaluator  # noqa: F401  found by name; imported so tables hash it
from sgvu.tasks import localization_models as models
from sgvu.tasks import localization_pictures
from sgvu.tasks.localization_models import METHODS

EXAMPLES_FILE = "localization_examples.png"


def make_source(config: ml_collections.ConfigDict, num_sketches: int):
  """The dataset of config.data with `num_sketches` sketches per query. The readers are imported here, not
  through sgvu.data.registry (left out of code hashes), so that a table's fingerprint covers its data."""
  from sgvu.data import coco_localization, registry, synth_localization, voc_localization  # pylint: disable=g-import-not-at-top
  readers = {"synth": synth_localization.SynthLocalization, "coco": coco_localization.COCOLocalization,
             "voc": voc_localization.VOCLocalization}
  d = config.data
  options = dict(d.options.to_dict(), num_query_sketches=num_sketches, sketch_size=d.sketch_size, queries=d.queries)
  if d.dataset == "synth":  # render only the splits this run uses (training, and what the evaluator scores)
    keep = options.pop("materialize", False)
    source = registry.construct("synth", readers["synth"], **options)
    return source.materialize((d.train_split,) + tuple(config.evals.localization.splits.values())) if keep else source
  if d.get("tfds_data_dir"):  # the TFDS copy of the same folders (sgvu.tools.build_tfds)
    return registry.get_tfds_localization_source(d.dataset, d.tfds_data_dir, **options)
  return registry.construct(d.dataset, readers[d.dataset], d.root, **options)


def train_config(config: ml_collections.ConfigDict, method: models.LocMethod, seed: int) -> ml_collections.ConfigDict:
  base = config.cma_train if method.model == "cma" else config.vit_train
  c = ml_collections.ConfigDict(base.to_dict())
  c.seed = base.seed + seed
  return c


def evaluator_options(config: ml_collections.ConfigDict) -> dict:
  d = config.data
  return dict(short_side=d.short_side, max_side=d.max_side, max_boxes=d.max_boxes, batch_size=config.eval_batch_size,
              strict=d.strict)


def train_and_evaluate(config, name: str, source, directory: str, gt_dir: str, seed: int = 0) -> dict:
  """Trains (or resumes) row `name` in `directory` and scores it: metrics, trainable parameters, final losses."""
  task = models.make_task(config, name, source)
  check_frozen_params(task, task.frozen_patterns)
  tc = train_config(config, task.method, seed)
  setup = train.build(task, tc)
  logging.info("localization %s: %s trainable parameters", name, f"{setup.num_trainable:,}")
  state, _ = train.fit(task, tc, directory, setup=setup, return_state=True)
  variables = jax.device_get(train.variables(state))
  evals = evaluators.build(config.evals, task.predict_fns(), source=source, output_dir=directory, gt_dir=gt_dir,
                           **evaluator_options(config))
  result = evaluators.run_all(evals, variables)
  last = _last_losses(directory)
  return {**result, **{f"final {k}": v for k, v in last.items()}, "trainable_params": setup.num_trainable,
          "steps": tc.num_steps}


def check_frozen_params(task, patterns) -> None:
  """Every config.frozen_params.<model> regex must name parameters of the row's model (a typo would freeze nothing)."""
  if not patterns:
    return
  from sgvu.tasks.base import regex_matcher  # pylint: disable=g-import-not-at-top
  paths = list(train.flatten(jax.eval_shape(task.init_variables, jax.random.key(0))["params"]))
  idle = [p for p in patterns if not any(regex_matcher((p,))(path) for path in paths)]
  if idle:
    raise ValueError(f"config.frozen_params.{task.method.model} {idle} match no parameter of {type(task.model).__name__} "
                     f"(e.g. {paths[:3]})")


def _last_losses(directory: str) -> dict[str, float]:
  """The last logged training losses (metrics.jsonl), so a row that did not learn shows it."""
  last = {}
  try:
    with open(os.path.join(directory, "metrics.jsonl")) as f:
      for line in f:
        record = json.loads(line)
        if "eval" not in record:
          last = {k: v for k, v in record.items() if k not in ("step", "steps_per_s", "lr") and isinstance(v, float)}
  except OSError:
    pass
  return last


# --------------------------------------------------------------------------------------------- validation

def validate(config: ml_collections.ConfigDict) -> None:
  from sgvu.data import registry  # pylint: disable=g-import-not-at-top
  unknown = [m for m in config.methods if m not in METHODS]
  if unknown or not config.methods:
    raise ValueError(f"config.methods has unknown {unknown or '(empty)'}; valid: {sorted(METHODS)}")
  d = config.data
  configs.check_choice(config, "data.dataset", registry.LOCALIZATION_DATASETS)
  configs.check_choice(config, "data.queries", ("each", "one"))
  configs.check_choice(config, "data.train_split", ("train",))
  copy = d.get("tfds_data_dir")  # a TFDS copy holds the images and the query sketches
  if d.dataset == "synth" and copy:
    raise ValueError(f"config.data.tfds_data_dir={copy!r}: synth is generated and has no TFDS copy; leave it ''")
  if d.dataset != "synth" and not d.root and not copy:
    raise ValueError(f"config.data.root is required for dataset {d.dataset!r} (see docs/localization.md)")
  if d.dataset != "synth" and not d.options.get("sketch_root") and not copy:
    raise ValueError(f"config.data.options.sketch_root (the QuickDraw <class>.ndjson folder) is required for "
                     f"dataset {d.dataset!r} (see docs/localization.md)")
  configs.check_positive(config, "data.short_side", "data.max_side", "data.max_boxes", "data.sketch_size",
                         "eval_batch_size")
  if d.short_side > d.max_side:
    raise ValueError(f"config.data.short_side={d.short_side} > data.max_side={d.max_side}")
  configs.check_choice(config, "loss.margin_reduction", ("mean", "sum"))
  configs.check_positive(config, "loss.rpn_cls", "loss.rpn_box", "loss.region_cls", "loss.region_box",
                         "loss.margin_weight", allow_zero=True)
  for name in config.methods:  # every row's model config builds (named errors before any compute)
    method = METHODS[name]
    try:
      if method.model == "cma":
        cfg = models.cma_config(config, method)
        if d.max_side % cfg.feature_stride:
          raise ValueError(f"data.max_side={d.max_side} is not a multiple of cma.feature_stride {cfg.feature_stride}")
      else:
        models.locformer_config(config, method)
    except (TypeError, ValueError) as e:
      raise ValueError(f"row {name!r}: {e}") from None
  evaluators.validate(config.evals)
  configs.validate_train(config.cma_train)
  configs.validate_train(config.vit_train)
  if config.model.get("init") and not os.path.isfile(config.model.init):
    raise FileNotFoundError(f"config.model.init={config.model.init!r} is not a file")


# --------------------------------------------------------------------------------------------- the table

def table(config: ml_collections.ConfigDict, workdir: str) -> experiment.Table:
  sources = {}

  def source_for(name: str):
    k = METHODS[name].num_sketches
    if k not in sources:
      sources[k] = make_source(config, k)
    return sources[k]

  spec = config.evals.localization
  metrics = [f"{split} {m}" for split in spec.splits.keys() for m in spec.metrics]

  def run_row(name: str, seed: int, directory: str) -> dict:
    return train_and_evaluate(config, name, source_for(name), directory, workdir, seed)

  def pictures(rows: dict) -> None:
    path = os.path.join(workdir, EXAMPLES_FILE)
    localization_pictures.draw_examples(config, source_for(next(iter(rows))), workdir, list(rows), path)
    logging.info("examples: %s", path)

  desc = (f"{config.data.dataset}, COCO AP (pycocotools) of one query per (test image, category present), "
          f"seen / unseen categories")
  return experiment.Table(
      name=config.name, split="test", metrics=metrics, methods=tuple(config.methods), run_row=run_row,
      settings=lambda name: {"config": config, "method": name}, seeds=config.seeds, description=desc,
      smoke_test=config.get("smoke_test", False), fingerprint=experiment.table_fingerprint(config),
      code=experiment.code_version(config.task), pictures=pictures,
      baseline="faster-rcnn" if "faster-rcnn" in config.methods else "")


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  started = time.perf_counter()
  return experiment.run(table(config, workdir), workdir, started=started)
