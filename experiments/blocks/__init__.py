"""Config blocks shared by experiments/*.py: plain ml_collections, so importing a config never imports JAX.

Every experiment config is a `get_config(arg)` assembled from these blocks, imported one way:

  from experiments import blocks

  def get_config(arg: str = ""):
    c = blocks.experiment("zs_sbir", "zs_sbir", arg)  # task, name, seeds, smoke_test; checks the variant
    c.methods = (...)
    return blocks.add_zs_sbir(c, arg)

Variants: '' (the full run) and 'small' (a smoke test: seconds to minutes, for tests; its numbers mean
nothing). Each training stage's settings are one `train_config()` block named `<stage>_train`:
`clip_train` (the SynthSketch CLIP, with its model/data keys), `zs_train`, `fg_train`, `head_train`, `rl_train`.

The blocks live in five modules, all re-exported here: `common` (the keys every experiment has, training /
optimizer / data blocks, the SynthSketch CLIP), `retrieval` (zero-shot, fine-grained and on-the-fly SBIR),
`localization`, `context` (unsupervised SBIR by context prediction) and `composed` (sketch+text retrieval).
"""

# pylint: disable=unused-import  (re-exports: configs use `blocks.<name>`)
from experiments.blocks.common import VARIANTS, add_clip, check_variant, clip_train_config, data_config, \
    evals_config, experiment, optim_config, train_config
from experiments.blocks.context import CONTEXT_CLASSES, CONTEXT_METHODS, CONTEXT_VAL_CLASSES, \
    SKETCHY_CONTEXT_CLASSES, add_context, add_context_voc_sketchy
from experiments.blocks.localization import add_localization, add_localization_paper
from experiments.blocks.retrieval import ON_THE_FLY_METHODS, ON_THE_FLY_PAPER_METHODS, ON_THE_FLY_REWARDS, \
    ZS_PAPER_METHODS, add_fg_sbir, add_on_the_fly, add_qmul, add_zs_sbir, add_zs_sbir_paper, zs_evals
from experiments.blocks.composed import CSTBIR_METHODS, DUET_METHODS, add_cstbir, add_cstbir_paper, add_duet, \
    add_duet_paper
