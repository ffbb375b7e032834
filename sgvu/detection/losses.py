"""Training targets and losses of the sketch-guided two-stage detector (CMA; Tripathi et al., ECCV 2020, seed 000).

Targets (static shapes, per image; vmap over the batch):
  rpn_targets   anchors -> 256 sampled anchors (up to 50% FG: IoU >= 0.7 with any box, BG < 0.3), box targets.
  sample_rois   proposals + ground truth -> 128 RoIs (up to 25% FG: IoU >= 0.5 with any box), labels
                (1 = matched to a box of the queried category) and box targets (ROI_BOX_WEIGHTS coding).
Losses (scalars; each a mean over its valid items, 0 when there are none; padded entries never count):
  rpn_losses, region_cross_entropy, region_box_loss, margin_ranking_loss, and `cma_losses` (all of them,
  weighted, on `CMA.train_forward`'s output).

Following the release (faster-rcnn.pytorch), the FG quota of the RoI sample counts RoIs matched to ANY
object, and those matched to a non-query object are labelled 0 (hard negatives); box regression trains
only on RoIs labelled 1. RPN targets are class-agnostic over every object.
"""

from __future__ import annotations

import functools
from typing import Mapping

import jax
import jax.numpy as jnp
import optax

from sgvu.detection import boxes as box_ops
from sgvu.detection import targets

ROI_BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)  # the region head's box coding (the release's 1 / (0.1, 0.1, 0.2, 0.2))
RPN_BETA = 1.0 / 9.0  # smooth-L1 transition of the RPN box loss (the release's sigma = 3: beta = 1 / sigma^2)
ROI_BETA = 1.0  # ... of the region box loss (sigma = 1)
# Weights of `cma_losses`: the release multiplies the margin-ranking loss by 3, the others by 1.
WEIGHTS = {"rpn_cls": 1.0, "rpn_box": 1.0, "region_cls": 1.0, "region_box": 1.0, "margin": 3.0}
Array = jax.Array


def masked_mean(values: Array, mask: Array) -> Array:
  """Mean of `values` where `mask` (broadcast), 0 when nothing is masked in; masked-out values may be inf/NaN."""
  mask = jnp.broadcast_to(mask, values.shape)
  return jnp.sum(jnp.where(mask, values, 0.0)) / jnp.maximum(jnp.sum(mask), 1).astype(values.dtype)


def smooth_l1(x: Array, beta: float) -> Array:
  """Elementwise 0.5 x^2 / beta for |x| < beta, |x| - 0.5 beta otherwise (beta > 0)."""
  ax = jnp.abs(x)
  return jnp.where(ax < beta, 0.5 * jnp.square(x) / beta, ax - 0.5 * beta)


# ------------------------------------------------------------------------------------------ targets

def rpn_targets(anchors: Array, gt_boxes: Array, gt_valid: Array, rng: Array, num: int = 256,
                fg_fraction: float = 0.5, fg_iou: float = 0.7, bg_iou: float = 0.3) -> dict[str, Array]:
  """One image: anchors [A, 4], gt_boxes [G, 4], gt_valid [G] -> sampled [A] bool (at most `num`), fg [A] bool
  (sampled and FG), box_targets [A, 4] (encode of the matched box; 0 where not fg).

  Matching is torchvision's (`targets.match_anchors`, each box's best anchors are FG too); anchors
  crossing the image border take part (torchvision), where faster-rcnn.pytorch ignores them.
  """
  labels, matched = targets.match_anchors(anchors, gt_boxes, gt_valid, high=fg_iou, low=bg_iou)
  sampled = targets.sample_balanced(labels, rng, num, fg_fraction)
  fg = sampled & (labels == targets.FG)
  t = box_ops.encode(jnp.where(fg[:, None], gt_boxes[matched], anchors), anchors)  # finite everywhere
  return dict(sampled=sampled, fg=fg, box_targets=jnp.where(fg[:, None], t, 0.0))


def sample_rois(proposals: Array, proposal_valid: Array, gt_boxes: Array, gt_valid: Array, gt_query: Array,
                rng: Array, num: int = 128, fg_fraction: float = 0.25, fg_iou: float = 0.5) -> dict[str, Array]:
  """One image: the RoI minibatch of the second stage, drawn from proposals [P, 4] (proposal_valid [P]) and the
  valid ground truth gt_boxes [G, 4] (gt_valid [G]; gt_query [G] bool: the queried category's boxes).

  Up to num * fg_fraction FG (IoU >= fg_iou with any valid box), the rest BG (IoU < fg_iou), at random.
  Returns rois [num, 4], roi_valid [num] (False: padding, too few candidates), roi_fg [num],
  roi_labels [num] int32 (1: FG matched to a query box, else 0), roi_box_targets [num, 4] (ROI_BOX_WEIGHTS
  coding of the matched box; 0 where the label is not 1). No gradient flows through the sample.
  """
  cand = jax.lax.stop_gradient(jnp.concatenate([proposals, gt_boxes], axis=0))
  cand_valid = jnp.concatenate([proposal_valid, gt_valid], axis=0)
  labels, matched = targets.match_anchors(cand, gt_boxes, gt_valid, high=fg_iou, low=fg_iou,
                                          allow_low_quality=False)
  labels = jnp.where(cand_valid, labels, targets.IGNORE)
  idx, ok = targets.balanced_indices(labels, rng, num, fg_fraction)
  i = jnp.maximum(idx, 0)
  rois = jnp.where(ok[:, None], cand[i], 0.0)
  fg = ok & (labels[i] == targets.FG)
  positive = fg & gt_query[matched[i]]
  unit = jnp.array([0.0, 0.0, 1.0, 1.0], rois.dtype)  # stands in where there is no target (keeps encode finite)
  t = box_ops.encode(jnp.where(positive[:, None], gt_boxes[matched[i]], unit),
                     jnp.where(positive[:, None], rois, unit), ROI_BOX_WEIGHTS)
  return dict(rois=rois, roi_valid=ok, roi_fg=fg, roi_labels=positive.astype(jnp.int32),
              roi_box_targets=jnp.where(positive[:, None], t, 0.0))


# ------------------------------------------------------------------------------------------ losses

def rpn_losses(rpn_logits: Array, rpn_deltas: Array, anchors: Array, gt_boxes: Array, gt_valid: Array, rng: Array,
               num: int = 256, fg_fraction: float = 0.5, fg_iou: float = 0.7, bg_iou: float = 0.3
               ) -> tuple[Array, Array]:
  """(objectness, box) losses of the RPN: rpn_logits [B, A], rpn_deltas [B, A, 4], anchors [A, 4], gt [B, G, 4].

  Objectness: sigmoid BCE, mean over the sampled anchors of the batch. Box: smooth-L1 (beta 1/9) summed over
  the 4 coordinates, mean over the FG anchors of the batch (the release divides by all sampled anchors
  instead, a constant factor ~ fg share that the loss weight absorbs).
  """
  rngs = jax.random.split(rng, rpn_logits.shape[0])
  assign = functools.partial(rpn_targets, num=num, fg_fraction=fg_fraction, fg_iou=fg_iou, bg_iou=bg_iou)
  t = jax.vmap(assign, in_axes=(None, 0, 0, 0))(anchors, gt_boxes, gt_valid, rngs)
  bce = optax.sigmoid_binary_cross_entropy(rpn_logits, t["fg"].astype(rpn_logits.dtype))
  box = jnp.sum(smooth_l1(rpn_deltas - t["box_targets"], RPN_BETA), axis=-1)
  return masked_mean(bce, t["sampled"]), masked_mean(box, t["fg"])


def region_cross_entropy(logits: Array, labels: Array, valid: Array) -> Array:
  """Softmax cross-entropy of logits [..., 2] (query category vs background), labels [...] in {0, 1}: valid mean."""
  return masked_mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels), valid)


def region_box_loss(deltas: Array, box_targets: Array, positive: Array) -> Array:
  """Class-agnostic smooth-L1 (beta 1) of deltas [..., 4] vs targets, summed over coordinates, mean over positive."""
  return masked_mean(jnp.sum(smooth_l1(deltas - box_targets, ROI_BETA), axis=-1), positive)


def margin_ranking_terms(scores: Array, labels: Array, valid: Array, m_pos: float = 0.7, m_neg: float = 0.3
                         ) -> tuple[Array, Array]:
  """Per image, the sum of the paper's margin-ranking loss and how many terms it has: scores, labels, valid [B, R].

  Seed 000 (Tripathi et al., "Proposal Scoring"), with a_k = theta(g_m(p_k); g'_m(s)) the score of RoI k
  for the sketch s and y_k in {0, 1} its label:

    L(R, s) = sum_k { y_k max(m+ - a_k, 0) + (1 - y_k) max(a_k - m-, 0) + L_MR^k }
    L_MR^k  = sum_{l=k+1} { 1[y_l = y_k] max(|a_k - a_l| - m-, 0) + 1[y_l != y_k] max(m+ - |a_k - a_l|, 0) }

  with m+ = 0.7, m- = 0.3. Read literally: the unary terms push positives' scores above m+ and negatives'
  below m-; L_MR^k runs over l = k+1 .. |R|, i.e. every unordered pair once; pairs of equal labels pay when
  their scores differ by more than m-, pairs of different labels when they differ by less than m+. (One of
  the seed's slide versions closes the brace before L_MR^k, leaving k unbound; we read it inside the sum.)
  Only valid RoIs take part, as k or as l. Returns (L [B], number of terms n + n (n - 1) / 2 [B]).
  """
  a, y = scores, labels.astype(bool)
  v = valid.astype(bool)
  unary = jnp.where(y, jax.nn.relu(m_pos - a), jax.nn.relu(a - m_neg))
  unary = jnp.sum(jnp.where(v, unary, 0.0), axis=-1)
  diff = jnp.abs(a[:, :, None] - a[:, None, :])  # [B, k, l]
  same = y[:, :, None] == y[:, None, :]
  pair = jnp.where(same, jax.nn.relu(diff - m_neg), jax.nn.relu(m_pos - diff))
  r = a.shape[-1]
  upper = jnp.triu(jnp.ones((r, r), bool), k=1)  # l > k
  take = upper & v[:, :, None] & v[:, None, :]
  pairwise = jnp.sum(jnp.where(take, pair, 0.0), axis=(1, 2))
  n = jnp.sum(v, axis=-1).astype(a.dtype)
  return unary + pairwise, n + n * (n - 1) / 2


def margin_ranking_loss(scores: Array, labels: Array, valid: Array, m_pos: float = 0.7, m_neg: float = 0.3,
                        reduction: str = "mean") -> Array:
  """The seed's margin-ranking loss (see `margin_ranking_terms`) of scores [B, R] in [0, 1] (probabilities).

  reduction 'sum': the mean over the B queries of L(R, s) exactly as written (its scale grows ~ R^2);
  'mean' (default): L divided by its number of terms, i.e. the mean of the paper's terms over the batch,
  so the weight does not depend on the RoI count. 0 with no valid RoI.
  """
  total, count = margin_ranking_terms(scores, labels, valid, m_pos, m_neg)
  if reduction == "sum":
    return jnp.mean(total)
  if reduction == "mean":
    return jnp.sum(total) / jnp.maximum(jnp.sum(count), 1.0)
  raise ValueError(f"reduction {reduction!r}; valid: ['mean', 'sum']")


def cma_losses(outputs: Mapping[str, Array], gt_boxes: Array, gt_valid: Array, rng: Array,
               weights: Mapping[str, float] | None = None, *, rpn_batch: int = 256, rpn_fg_fraction: float = 0.5,
               rpn_fg_iou: float = 0.7, rpn_bg_iou: float = 0.3, margin_reduction: str = "mean"
               ) -> tuple[Array, dict[str, Array]]:
  """The weighted total and every term, from `CMA.train_forward`'s outputs and the ground truth it was given.

  gt_boxes [B, G, 4], gt_valid [B, G]: every object (RPN targets). Region terms use the sampled RoIs:
  cross-entropy over valid RoIs, box loss over RoIs labelled 1, margin ranking over valid RoIs with
  a_k = roi_scores (the softmax probability of the query class, as the release). `weights` defaults to WEIGHTS;
  the RPN settings come from `CMAConfig.rpn_target_kwargs()`.
  """
  w = dict(WEIGHTS, **(weights or {}))
  unknown = sorted(set(w) - set(WEIGHTS))
  if unknown:
    raise ValueError(f"unknown loss weights {unknown}; valid: {sorted(WEIGHTS)}")
  rpn_cls, rpn_box = rpn_losses(outputs["rpn_logits"], outputs["rpn_deltas"], outputs["anchors"], gt_boxes,
                                gt_valid, rng, rpn_batch, rpn_fg_fraction, rpn_fg_iou, rpn_bg_iou)
  valid, labels = outputs["roi_valid"], outputs["roi_labels"]
  terms = {
      "rpn_cls": rpn_cls, "rpn_box": rpn_box,
      "region_cls": region_cross_entropy(outputs["roi_logits"], labels, valid),
      "region_box": region_box_loss(outputs["roi_box_deltas"], outputs["roi_box_targets"], valid & (labels == 1)),
      "margin": margin_ranking_loss(outputs["roi_scores"], labels, valid, reduction=margin_reduction),
  }
  total = sum(w[k] * v for k, v in terms.items())
  return total, dict(terms, loss=total)
