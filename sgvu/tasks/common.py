"""Pieces several tasks share: data sources from config, image normalisation,
embedding a whole split with a jitted encoder, results files."""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable, Mapping

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sgvu import data as data_lib
from sgvu import preprocess
from sgvu.data import pipeline

_MEAN = np.asarray(preprocess.OPENAI_CLIP_MEAN, np.float32) * 255.0
_STD = np.asarray(preprocess.OPENAI_CLIP_STD, np.float32) * 255.0


def normalize_images(images: jax.Array) -> jax.Array:
  """uint8 [..., 3] -> CLIP-normalised float32, on device."""
  return (images.astype(jnp.float32) - _MEAN) / _STD


def data_config(**overrides) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.dataset = "synth"
  c.root = ""  # real datasets: the local copy (see docs/datasets.md)
  c.image_size = 64
  c.num_workers = 0
  c.strict = False
  # Render every photo/sketch once into memory (finite, procedural or small data).
  c.materialize = True
  # SynthSketch world (ignored by real datasets).
  c.reader_options = ml_collections.ConfigDict()  # passed to the reader, e.g. {'max_per_class': 3000}
  c.synth_seed = 0
  c.photos_per_category = 40
  c.sketches_per_photo = 3
  c.update(overrides)
  return c


def make_source(c: ml_collections.ConfigDict, *, image_size: int | None = None,
                kinds: tuple[str, ...] = ("photo", "sketch"), **kwargs) -> data_lib.Source:
  """The configured dataset; with c.materialize and `image_size`, rendered once into memory."""
  if c.dataset == "synth":
    kwargs = dict(seed=c.synth_seed, photos_per_category=c.photos_per_category,
                  sketches_per_photo=c.sketches_per_photo, **kwargs)
    source = data_lib.get_source("synth", None, **kwargs)
  elif not c.root:
    raise ValueError(f"config.data.root is required for dataset {c.dataset!r} (the local copy; see docs/datasets.md)")
  else:
    source = data_lib.get_source(c.dataset, c.root, **{**c.reader_options.to_dict(), **kwargs})
  if c.materialize and image_size:
    pipeline.materialize(source, image_size, kinds=kinds, num_workers=2)
  return source


def pad_rows(x: np.ndarray, size: int, value=0) -> np.ndarray:
  """x padded along axis 0 to `size` rows of `value`: a short last batch keeps the compiled shape."""
  missing = size - len(x)
  if missing <= 0:
    return x
  return np.concatenate([x, np.full((missing,) + x.shape[1:], value, x.dtype)])


def embed_split(encode: Callable[[jax.Array], jax.Array], source: data_lib.Source, split: str, kind: str, *,
                image_size: int, batch_size: int, fraction: float = 1.0, strict: bool = False,
                desc: str = "") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Embeds every photo or sketch of a split: (embeddings [N, E], labels [N], item index [N]).

  `encode` maps uint8 [batch_size, S, S, 3] to [batch_size, E]; the last batch
  is padded so it compiles once.
  """
  embeds, labels, index = [], [], []
  t0, n_items = time.perf_counter(), len(getattr(source.split(split), "photos" if kind == "photo" else "sketches"))
  done = 0
  for batch in pipeline.eval_batches(source, split, kind, image_size=image_size, batch_size=batch_size,
                                     fraction=fraction, strict=strict):
    n = len(batch["labels"])
    embeds.append(np.asarray(encode(pad_rows(batch["images"], batch_size)))[:n])
    labels.append(batch["labels"])
    index.append(batch["index"])
    done += n
    if desc and (done == n_items or len(embeds) % 20 == 0):
      rate = done / max(time.perf_counter() - t0, 1e-9)
      logging.info("%s: embedded %d/%d %ss (%.0f/s, ETA %.0fs)", desc, done, n_items, kind, rate,
                   (n_items - done) / max(rate, 1e-9))
  if not embeds:
    raise data_lib.DataError(f"{source.name}/{split}: no {kind} could be loaded")
  return np.concatenate(embeds), np.concatenate(labels), np.concatenate(index)


def write_results(workdir: str, experiment: str, rows: list[Mapping[str, Any]], **extra) -> str:
  """WORKDIR/results.json: {"experiment", "rows": [{"method", "split", METRIC: fraction}], ...}."""
  path = os.path.join(workdir, "results.json")
  if jax.process_index() == 0:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
      json.dump({"experiment": experiment, "rows": list(rows), **extra}, f, indent=1)
    os.replace(tmp, path)  # never a half-written results file
  return path


def format_table(rows: list[Mapping[str, Any]], metrics: list[str]) -> str:
  head = ["method", "split"] + metrics
  lines = [head] + [[str(r.get("method")), str(r.get("split"))] +
                    [f"{r[m]:.4f}" if isinstance(r.get(m), float) else "-" for m in metrics] for r in rows]
  widths = [max(len(l[i]) for l in lines) for i in range(len(head))]
  fmt = lambda l: "| " + " | ".join(c.ljust(w) for c, w in zip(l, widths)) + " |"
  return "\n".join([fmt(lines[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [fmt(l) for l in lines[1:]])
