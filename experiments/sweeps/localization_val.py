"""Learning rates of the localization rows, chosen on the validation scenes (seen categories only).

  python experiments/sweeps/localization_val.py [--methods=cma,vit] [--lrs=3e-4,1e-3,3e-3] [--steps=N]

Trains each (row, learning rate) once (seed 0) on experiments/localization.py's training scenes and scores
COCO AP on its `val` scenes (100 held-out scenes, queries of seen categories); the test scenes and the unseen
categories are never looked at. Prints one line per point; docs/localization.md keeps the result.
"""

import sys

from absl import app, flags, logging

from experiments import localization as loc_config
from sgvu.tasks import localization

_METHODS = flags.DEFINE_list("methods", ["cma", "vit"], "Rows to sweep.")
_LRS = flags.DEFINE_list("lrs", ["3e-4", "1e-3", "3e-3"], "Learning rates.")
_STEPS = flags.DEFINE_integer("steps", 0, "Training steps (0: the config's).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/val/localization", "Where the points go.")


def main(argv):
  del argv
  config = loc_config.get_config()
  config.evals.localization.splits = {"val": "val"}
  if _STEPS.value:
    config.cma_train.num_steps = config.vit_train.num_steps = _STEPS.value
  localization.validate(config)
  sources = {}
  lines = []
  for name in _METHODS.value:
    method = localization.METHODS[name]
    if method.num_sketches not in sources:
      sources[method.num_sketches] = localization.make_source(config, method.num_sketches)
    for lr in _LRS.value:
      train = config.cma_train if method.model == "cma" else config.vit_train
      train.optim.lr = float(lr)
      directory = f"{_WORKDIR.value}/{name}_lr{lr}_steps{train.num_steps}"
      r = localization.train_and_evaluate(config, name, sources[method.num_sketches], directory, directory)
      lines.append(f"{name} lr {lr} steps {train.num_steps}: val AP {r['val AP']:.4f} AP@50 {r['val AP@50']:.4f} "
                   f"final loss {r['final loss']:.3f}")
      logging.info(lines[-1])
  print("\n".join(lines))


if __name__ == "__main__":
  sys.path.insert(0, ".")
  app.run(main)
