"""Unsupervised SBIR by cross-domain context prediction (seed 003) blocks."""

from __future__ import annotations

import ml_collections

from experiments.blocks.common import data_config, evals_config, optim_config, train_config

CONTEXT_METHODS = ("random-init", "classifier", "hog-pyramid", "supervised-triplet", "pretext-photo", "pretext-edge",
                   "ours", "ours-init-none", "ours-init-lower", "ours-no-bn")
# The seed's 10 Sketchy classes where SynthSketch has them (airplane, bicycle, car, cat, chair); for cow, dog,
# horse, motorcycle and sheep, five SynthSketch categories of the same kinds (animals, a vehicle).
CONTEXT_CLASSES = ("airplane", "bicycle", "car", "cat", "chair", "rabbit", "bird", "turtle", "truck", "snail")
# Ten other categories for choosing settings (experiments/sweeps/context_val.sh): never the evaluation classes.
CONTEXT_VAL_CLASSES = ("bus", "train", "shoe", "teapot", "guitar", "fish", "butterfly", "snake", "cup", "lamp")


def add_context(c: ml_collections.ConfigDict, arg: str) -> ml_collections.ConfigDict:
  """Data, pretext geometry, trunk, HOG, the three training stages and the per-class evaluator."""
  small = arg == "small"
  c.methods = CONTEXT_METHODS
  # Every category's training photos feed the pretext (unlabelled) and, minus the evaluation classes, the
  # classifier; the evaluation classes' test photos (other instances) and their sketches are the retrieval set.
  c.data = data_config(image_size=64, photos_per_category=80, sketches_per_photo=1)
  c.data.test_fraction = 0.5  # 40 test photos per class: Acc@5 / Acc@10 chance 0.125 / 0.25
  c.data.eval_classes = CONTEXT_CLASSES
  c.pretext = ml_collections.ConfigDict()
  c.pretext.patch, c.pretext.gap, c.pretext.jitter = 20, 1, 1  # a 3x3 grid spans 64 px
  c.pretext.sigma = 1.5  # Canny's Gaussian
  c.pretext.eval_pairs = 2000  # held-out pairs scored for pretext_acc
  c.model = ml_collections.ConfigDict()
  c.model.widths = (24, 48, 64, 64, 48)
  c.model.stride1 = 2
  c.model.fc6_grid = 2  # fc6 reads a 2x2 map of pool5 (AlexNet's reads 6x6): the feature keeps the layout
  c.model.fc6, c.model.fc7 = 256, 256
  c.model.dropout = 0.0
  c.model.dtype = "float32"
  c.hog = ml_collections.ConfigDict({"levels": (1, 2, 4), "orientations": 9, "cell": 8})
  c.triplet_margin = 0.2
  adam = lambda lr: optim_config(name="adam", lr=lr, schedule="cosine", warmup_steps=20)
  c.pretext_train = train_config(batch_size=64, num_steps=400, optim=adam(1e-3), log_every=100)
  c.triplet_train = train_config(batch_size=16, num_steps=200, optim=adam(3e-4), log_every=50)
  c.classifier_train = train_config(batch_size=64, num_steps=600, optim=adam(1e-3), log_every=100)
  c.classifier_crop = 32  # the classifier sees random 32-px crops of the 64-px photos
  c.evals = evals_config(retrieval={"type": "per_class_retrieval", "ks": (5, 10)})
  c.picture_methods = ("classifier", "ours")  # t-SNE before / after the pretext; the grid of the last
  if small:
    c.data.photos_per_category = 8
    c.data.eval_classes = CONTEXT_CLASSES[:3]
    c.model.widths = (8, 8, 8, 8, 8)
    c.model.fc6, c.model.fc7 = 16, 16
    c.pretext.eval_pairs = 64
    for stage in (c.pretext_train, c.triplet_train, c.classifier_train):
      stage.num_steps, stage.batch_size, stage.log_every = 4, 8, 2
      stage.optim.warmup_steps = 1
  return c


# The seed's 10 Sketchy classes, spelt as Sketchy's class folders (the per-class metrics carry these names).
SKETCHY_CONTEXT_CLASSES = ("airplane", "bicycle", "car_(sedan)", "cat", "chair", "cow", "dog", "horse", "motorcycle",
                           "sheep")


def add_context_voc_sketchy(c: ml_collections.ConfigDict, arg: str) -> ml_collections.ConfigDict:
  """Real data: the pretext on PASCAL VOC 2012 photos, retrieval on the seed's 10 Sketchy classes.

  The rows and the evaluator are add_context's. Sketchy's zero-shot split holds the 10 classes out: their photos
  are the galleries (and the held-out pretext pairs); the other 115 classes' labelled photos train the classifier
  (the ImageNet stand-in) and their sketch-photo pairs the supervised triplet row. `small`: add_context's tiny
  trunk and 4 steps a stage (tests/test_context_real.py runs it on fixture files).
  """
  small = arg == "small"
  add_context(c, arg)
  c.pretext_data = ml_collections.ConfigDict()
  c.pretext_data.root = ""  # required: --config.pretext_data.root=/path/to/VOC2012 (JPEGImages/, ImageSets/Main/)
  c.pretext_data.tfds_data_dir = ""  # or the copy build_tfds --dataset=voc2012_images made (then root is not needed)
  c.pretext_data.split = "train"  # the ids of ImageSets/Main/<split>.txt: train (5,717 images) | val | trainval
  c.pretext_data.max_images = 0  # 0: every image of the split
  c.data.dataset = "sketchy"
  c.data.root = ""  # required: --config.data.root=/path/to/Sketchy (the 256x256/ folder of the release)
  # Only Sketchy's own photos (100 a class): the gallery each sketch's own photo is ranked in, as in the seed.
  c.data.reader_options = ml_collections.ConfigDict({"extended": False})
  c.data.eval_classes = SKETCHY_CONTEXT_CLASSES
  del c.data.test_fraction  # the split is by class (Sketchy's zero-shot split), not by instance
  c.data.num_workers = 0 if small else 8  # processes rendering Sketchy into memory, once
  if small:
    return c
  # Real photos carry detail SynthSketch's do not: 96 px images, 30 px patches, a wider trunk. Our choice, sized
  # for one accelerator; not tuned on validation classes.
  c.data.image_size = 96
  c.pretext.patch, c.pretext.gap, c.pretext.jitter = 30, 2, 1  # a 3x3 grid spans 96 px
  c.classifier_crop = 48
  c.model.widths = (32, 64, 96, 96, 64)
  c.model.fc6, c.model.fc7 = 512, 512
  for stage, steps, batch in ((c.pretext_train, 4000, 128), (c.classifier_train, 4000, 128),
                              (c.triplet_train, 2000, 64)):
    stage.num_steps, stage.batch_size, stage.log_every, stage.checkpoint_every = steps, batch, 200, 1000
  return c
