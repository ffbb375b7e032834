"""Is there instance-level detail for fine-grained ZS-SBIR in the shipped SynthSketch CLIP? (issue #10)

  python experiments/probes/fg_instance_detail.py [--pairs docs/images/fg_pairs.png]

On fg_zs_sbir's test split (15 unseen categories x 40 photos, 1,800 sketches; each sketch retrieves among the
photos of its own category: chance Acc@1 = 0.025), with no training at all, it prints Acc@1 / Acc@5 of
- the frozen CLIP image tower's features: the pooled embedding (the table's `frozen` row), the CLS token before the
  projection, the mean patch token, all patch tokens in place (spatial), patch tokens pooled to 2x2 / 3x3 grids;
  each raw and domain-centred (the mean sketch feature and the mean photo feature subtracted: the domain gap as a
  constant offset);
- a classical reference: spatial-pyramid HOG of the sketch against that of the photo's Canny edge map (the context
  table's `hog-pyramid` row), at 48 px (the CLIP's resolution) and 96 px.
--pairs also draws six test photos (every 20th) at 128 px beside three of their sketches.
"""

from __future__ import annotations

import argparse
import os

import jax
import jax.numpy as jnp
import numpy as np

from experiments import fg_zs_sbir
from sgvu import clip_io, preprocess
from sgvu.data import configured, edges, pipeline
from sgvu.models import hog_pyramid
from sgvu.models.vit import VisionTransformer
from sgvu.tasks import clip_pretrain


def load(source, kind: str, size: int):
  ims, labels, index = [], [], []
  for b in pipeline.eval_batches(source, "test", kind, image_size=size, batch_size=128):
    ims.append(b["images"])
    labels.append(b["labels"])
    index.append(b["index"])
  return np.concatenate(ims), np.concatenate(labels), np.concatenate(index)


def accuracy(q, g, q_labels, g_labels, own, ks=(1, 5)) -> str:
  """Acc@K of each query's own photo among the photos of its category (cosine)."""
  q = q / np.linalg.norm(q, axis=1, keepdims=True)
  g = g / np.linalg.norm(g, axis=1, keepdims=True)
  s = np.where(q_labels[:, None] == g_labels[None, :], q @ g.T, -np.inf)
  rank = (s > s[np.arange(len(q)), own][:, None]).sum(1)
  return "  ".join(f"Acc@{k} {np.mean(rank < k):.4f}" for k in ks)


def grid_pool(tokens: np.ndarray, grid: int, cells: int) -> np.ndarray:
  x = tokens[:, 1:1 + grid * grid].reshape(len(tokens), grid, grid, -1)
  s = grid // cells
  x = x[:, :s * cells, :s * cells].reshape(len(tokens), cells, s, cells, s, -1).mean((2, 4))
  return x.reshape(len(tokens), -1)


def draw_pairs(source, path: str, size: int = 128) -> None:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  split = source.split("test")
  rows = []
  for j in range(0, 120, 20):
    sketches = [s for s in split.sketches if s.photo == j][:3]
    rows.append(np.concatenate([pipeline.load_photo(source, split.photos[j], size)]
                               + [pipeline.render_sketch(source, s, size) for s in sketches], axis=1))
  Image.fromarray(np.concatenate(rows, axis=0)).save(path)
  print(f"wrote {path}")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--pairs", default=None, help="PNG: test photos beside their sketches")
  args = parser.parse_args()
  config = fg_zs_sbir.get_config()
  source = configured.source_from_config(config.data, materialize=False, protocol="zero_shot")
  split = source.split("test")
  if args.pairs:
    draw_pairs(source, args.pairs)
  cfg, params = clip_io.load_clip(os.path.join(clip_pretrain.ensure_pretrained(config.clip_train), "clip"))
  vit = VisionTransformer(cfg.vision)
  forward = jax.jit(lambda im: vit.apply({"params": params["img"]}, preprocess.normalize_images(im),
                                         return_tokens=True))
  size = cfg.vision.image_size
  (photos, pl, pi), (sketches, sl, si) = load(source, "photo", size), load(source, "sketch", size)
  row = {int(i): n for n, i in enumerate(pi)}
  own = np.asarray([row[int(split.sketches[int(i)].photo)] for i in si])
  embed = lambda ims: [np.concatenate(x) for x in zip(*[map(np.asarray, forward(jnp.asarray(ims[i:i + 128])))
                                                         for i in range(0, len(ims), 128)])]
  (po, pt), (so, st) = embed(photos), embed(sketches)
  grid = int(round((pt.shape[1] - 1) ** 0.5))
  print(f"{len(sketches)} sketches, {len(photos)} photos of {len(np.unique(pl))} unseen categories; chance Acc@1 "
        f"{1 / np.bincount(pl).max():.3f}; CLIP at {size} px, {grid}x{grid} patch tokens")
  features = {"pooled embedding (the `frozen` row)": (so, po), "CLS token before the projection": (st[:, 0], pt[:, 0]),
              "mean patch token": (st[:, 1:].mean(1), pt[:, 1:].mean(1)),
              "all patch tokens in place": (st[:, 1:].reshape(len(st), -1), pt[:, 1:].reshape(len(pt), -1)),
              "patch tokens pooled 2x2": (grid_pool(st, grid, 2), grid_pool(pt, grid, 2)),
              "patch tokens pooled 3x3": (grid_pool(st, grid, 3), grid_pool(pt, grid, 3))}
  for name, (q, g) in features.items():
    print(f"  {name:40s} raw: {accuracy(q, g, sl, pl, own)}   domain-centred: "
          f"{accuracy(q - q.mean(0), g - g.mean(0), sl, pl, own)}")
  for hog_size in (48, 96):
    (p, _, _), (s, _, _) = load(source, "photo", hog_size), load(source, "sketch", hog_size)
    cell = hog_size // 6
    g = hog_pyramid.hog_pyramid(edges.edge_maps(p, sigma=1.5), levels=(1, 2, 4), orientations=9, cell=cell)
    q = hog_pyramid.hog_pyramid(s, levels=(1, 2, 4), orientations=9, cell=cell)
    print(f"  HOG pyramid, sketch vs photo edges, {hog_size} px   {accuracy(q, g, sl, pl, own)}")


if __name__ == "__main__":
  main()
