"""Pictures of the context-prediction table: t-SNE of sketch and photo features before / after the pretext, and
query sketches with their top 5. Both read the test embeddings the rows of config.picture_methods saved (seed 0)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI

import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
from PIL import Image, ImageDraw  # pylint: disable=g-import-not-at-top,wrong-import-position
from sklearn.manifold import TSNE  # pylint: disable=g-import-not-at-top,wrong-import-position
import threadpoolctl  # pylint: disable=g-import-not-at-top,wrong-import-position

from sgvu import experiment, fonts  # pylint: disable=g-import-not-at-top,wrong-import-position


TSNE_FILE, GRID_FILE = "context_tsne.png", "context_retrieval.png"
EMBEDDINGS_FILE = "embeddings.npz"  # what a picture row's seed-0 directory keeps: its test embeddings


def load_embeddings(workdir: str, method: str) -> dict[str, np.ndarray]:
  with np.load(os.path.join(experiment.row_dir(workdir, method, 0), EMBEDDINGS_FILE)) as f:
    return dict(f)


def _normalise(x: np.ndarray) -> np.ndarray:
  return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)


def draw_tsne(panels: dict[str, dict], class_names, path: str, seed: int = 0) -> None:
  """One t-SNE panel per method: colour = class, o = photo, x = sketch."""
  fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 5), squeeze=False)
  cmap = plt.get_cmap("tab10")
  for ax, (title, e) in zip(axes[0], panels.items()):
    x = np.concatenate([_normalise(e["photo_emb"]), _normalise(e["sketch_emb"])])
    labels = np.concatenate([e["photo_labels"], e["sketch_labels"]])
    n_photo = len(e["photo_emb"])
    # One OpenMP thread: on a loaded 2-core machine scikit-learn's threads made a 60-point t-SNE take 34 s (0.3 s).
    with threadpoolctl.threadpool_limits(1, "openmp"):
      xy = TSNE(n_components=2, perplexity=min(30.0, (len(x) - 1) / 3), init="pca",
                random_state=seed).fit_transform(x)
    order = {l: i for i, l in enumerate(np.unique(labels))}
    for domain, sl, marker in (("photo", slice(0, n_photo), "o"), ("sketch", slice(n_photo, None), "x")):
      colours = [cmap(order[l] % 10) for l in labels[sl]]
      ax.scatter(xy[sl, 0], xy[sl, 1], c=colours, marker=marker, s=12, linewidths=0.8, label=domain)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
  handles = [plt.Line2D([], [], marker="o", ls="", color="grey", label="photo"),
             plt.Line2D([], [], marker="x", ls="", color="grey", label="sketch")]
  handles += [plt.Line2D([], [], marker="s", ls="", color=cmap(i % 10), label=name) for i, name in enumerate(class_names)]
  fig.legend(handles=handles, loc="center right", fontsize=8)
  fig.tight_layout(rect=(0, 0, 0.86, 1))
  fig.savefig(path, dpi=110)
  plt.close(fig)


def draw_grid(e: dict, source, image_size: int, path: str, top: int = 5, cell: int = 72) -> None:
  """One query sketch per class (its first), then its top `top` photos of that class; its own photo in green."""
  sp = source.split("test")
  q, g = _normalise(e["sketch_emb"]), _normalise(e["photo_emb"])
  rows = []
  for label in np.unique(e["sketch_labels"]):
    n = int(np.flatnonzero(e["sketch_labels"] == label)[0])
    gallery = np.flatnonzero(e["photo_labels"] == label)
    order = gallery[np.argsort(-(g[gallery] @ q[n]))][:top]
    own = sp.sketches[int(e["sketch_index"][n])].photo
    rows.append((n, label, order, own))
  header, font = 18, fonts.label_font(11)
  canvas = Image.new("RGB", (cell * (top + 1) + 4 * top, header + cell * len(rows)), "white")
  draw = ImageDraw.Draw(canvas)
  draw.text((4, 2), "query", fill="black", font=font)
  draw.text((cell + 8, 2), f"top {top} among its class's photos (green: its own photo)", fill="black", font=font)
  for i, (n, label, order, own) in enumerate(rows):
    y = header + i * cell
    canvas.paste(_image(source, sp.sketches[int(e["sketch_index"][n])], image_size, cell), (0, y))
    draw.text((2, y + 2), source.categories[int(label)], fill="blue", font=font)
    for j, row in enumerate(order):
      item_index = int(e["photo_index"][row])
      x = (j + 1) * (cell + 4)
      canvas.paste(_image(source, sp.photos[item_index], image_size, cell), (x, y))
      if item_index == own:
        draw.rectangle([x, y, x + cell - 1, y + cell - 1], outline="lime", width=3)
  canvas.save(path)


def _image(source, item, image_size: int, cell: int) -> Image.Image:
  from sgvu.data import pipeline  # pylint: disable=g-import-not-at-top
  from sgvu.data.base import PhotoItem  # pylint: disable=g-import-not-at-top
  load = pipeline.load_photo if isinstance(item, PhotoItem) else pipeline.render_sketch
  return Image.fromarray(load(source, item, image_size)).resize((cell, cell))


def draw_all(config, data, workdir: str, rows: dict) -> None:
  from absl import logging  # pylint: disable=g-import-not-at-top
  names = list(config.picture_methods)
  panels = {n: load_embeddings(workdir, n) for n in names}
  classes = [data.eval_source.categories[int(l)] for l in np.unique(panels[names[-1]]["photo_labels"])]
  tsne = os.path.join(workdir, TSNE_FILE)
  draw_tsne({f"{n} (seed 0)": p for n, p in panels.items()}, classes, tsne)
  grid = os.path.join(workdir, GRID_FILE)
  draw_grid(panels[names[-1]], data.eval_source, config.data.image_size, grid)
  logging.info("pictures: %s, %s", tsne, grid)
