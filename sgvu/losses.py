"""Losses shared by the tasks. Pure functions of arrays; batch-mean scalars."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def l2_normalize(x: jax.Array, eps: float = 1e-6) -> jax.Array:
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)


def cosine_distance(a: jax.Array, b: jax.Array) -> jax.Array:
  """1 - cos(a, b) along the last axis."""
  return 1.0 - jnp.sum(l2_normalize(a) * l2_normalize(b), axis=-1)


def triplet(anchor: jax.Array, positive: jax.Array, negative: jax.Array, margin: float) -> jax.Array:
  """max(0, d(a, p) - d(a, n) + margin) with d = 1 - cosine (seed 004's release)."""
  return jnp.mean(jax.nn.relu(cosine_distance(anchor, positive) - cosine_distance(anchor, negative) + margin))


def infonce(img: jax.Array, txt: jax.Array, logit_scale: jax.Array, positives: jax.Array | None = None) -> jax.Array:
  """CLIP's symmetric contrastive loss; row i of img matches row i of txt.

  positives [B, B] bool (optional, symmetric, true on the diagonal): pairs that also match, e.g.
  identical captions in one batch; the target spreads evenly over them instead of calling them negatives.
  """
  logits = logit_scale * l2_normalize(img) @ l2_normalize(txt).T
  if positives is None:
    labels = jnp.arange(logits.shape[0])
    return 0.5 * (optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
                  + optax.softmax_cross_entropy_with_integer_labels(logits.T, labels).mean())
  p = positives.astype(logits.dtype)
  return 0.5 * (optax.softmax_cross_entropy(logits, p / jnp.sum(p, 1, keepdims=True)).mean()
                + optax.softmax_cross_entropy(logits.T, p.T / jnp.sum(p.T, 1, keepdims=True)).mean())


def text_classification(features: jax.Array, class_text: jax.Array, targets: jax.Array,
                        logit_scale: jax.Array) -> jax.Array:
  """Cross-entropy of features against class text embeddings (e.g. "a photo of a [category]").

  targets index the rows of `class_text`.
  """
  logits = logit_scale * l2_normalize(features) @ l2_normalize(class_text).T
  return optax.softmax_cross_entropy_with_integer_labels(logits, targets).mean()


def shuffle_patches(images: jax.Array, perm: jax.Array, grid: int) -> jax.Array:
  """Cuts [B, H, W, C] images into grid x grid patches and reorders them by perm [B, grid*grid]."""
  b, h, w, c = images.shape
  ph, pw = h // grid, w // grid
  patches = images[:, :ph * grid, :pw * grid].reshape(b, grid, ph, grid, pw, c)
  patches = patches.transpose(0, 1, 3, 2, 4, 5).reshape(b, grid * grid, ph, pw, c)
  patches = jnp.take_along_axis(patches, perm[:, :, None, None, None], axis=1)
  out = patches.reshape(b, grid, grid, ph, pw, c).transpose(0, 1, 3, 2, 4, 5)
  return out.reshape(b, grid * ph, grid * pw, c)


def relative_distance_divergence(anchor: jax.Array, positive: jax.Array, negative: jax.Array,
                                 labels: jax.Array, num_classes: int, temperature: float = 0.1) -> jax.Array:
  """f-divergence term of seed 004 (fine-grained ZS-SBIR), KL form.

  For every sketch, the relative distance (d(a, n) - d(a, p)) is turned into a
  soft histogram over bins; per category the histograms are averaged. The loss
  is the mean KL divergence of each category's distribution from the mean over
  categories, so that the sketch-photo margin is distributed alike across
  categories and a margin learnt on seen ones transfers to unseen ones.
  """
  rel = cosine_distance(anchor, negative) - cosine_distance(anchor, positive)  # [B], in [-2, 2]
  centers = jnp.linspace(-1.0, 1.0, 16)
  soft = jax.nn.softmax(-jnp.square(rel[:, None] - centers[None]) / temperature, axis=-1)  # [B, bins]
  onehot = jax.nn.one_hot(labels, num_classes)  # [B, K]
  counts = onehot.sum(0)  # [K]
  per_class = (onehot.T @ soft) / jnp.maximum(counts[:, None], 1.0)  # [K, bins]
  present = (counts > 0).astype(soft.dtype)
  mean = (present[:, None] * per_class).sum(0) / jnp.maximum(present.sum(), 1.0)
  eps = 1e-6
  kl = jnp.sum(per_class * (jnp.log(per_class + eps) - jnp.log(mean + eps)[None]), axis=-1)
  return jnp.sum(present * kl) / jnp.maximum(present.sum(), 1.0)
