"""Set-prediction losses (DETR / Deformable DETR) for one-class localization: each of Q predictions
is a logit ("the queried category" vs not) and a box; Hungarian matching pairs predictions with
the ground truth, then sigmoid focal + L1 + GIoU losses.

Boxes are normalised (cx, cy, w, h) in [0, 1] (`normalize_boxes` converts xyxy pixels). Ground
truth comes padded: gt_boxes [B, G, 4] with gt_valid [B, G] bool (for localization, the sample's
`is_query` mask: padding and boxes of other categories are not targets).

Defaults are Deformable DETR's, which LocFormer's release keeps: matching cost and loss weights
class 2, L1 5, GIoU 2; focal alpha 0.25, gamma 2; the class cost is the focal-loss difference
between "object" and "no object"; every loss is summed and divided by the number of valid gt
boxes in the batch (at least 1).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from sgvu.detection import boxes as box_ops
from sgvu.detection import targets


@dataclasses.dataclass(frozen=True)
class SetLossConfig:
  """Weights of the matching cost (`cost_*`) and of the loss terms (`*_weight`)."""
  cost_class: float = 2.0
  cost_l1: float = 5.0
  cost_giou: float = 2.0
  class_weight: float = 2.0
  l1_weight: float = 5.0
  giou_weight: float = 2.0
  focal_alpha: float = 0.25
  focal_gamma: float = 2.0
  aux_weight: float = 1.0  # each earlier decoder layer's loss (DETR: 1, with its own matching)


def normalize_boxes(boxes_xyxy: jax.Array, image_hw: tuple[int, int]) -> jax.Array:
  """[..., 4] (x1, y1, x2, y2) pixels of an image of image_hw = (height, width) -> normalised cxcywh."""
  h, w = image_hw
  return box_ops.xyxy_to_cxcywh(boxes_xyxy / jnp.asarray([w, h, w, h], boxes_xyxy.dtype))


def sigmoid_focal_loss(logits: jax.Array, targets_: jax.Array, alpha: float = 0.25,
                       gamma: float = 2.0) -> jax.Array:
  """Elementwise focal loss (Lin et al. 2017) of logits against {0, 1} targets, same shape.

  -alpha_t (1 - p_t)^gamma log(p_t), alpha_t = alpha for positives, 1 - alpha for negatives
  (alpha < 0: no weighting, torchvision's convention).
  """
  t = targets_.astype(logits.dtype)
  p = jax.nn.sigmoid(logits)
  ce = t * -jax.nn.log_sigmoid(logits) + (1 - t) * -jax.nn.log_sigmoid(-logits)  # stable BCE
  p_t = p * t + (1 - p) * (1 - t)
  loss = ce * (1 - p_t) ** gamma
  if alpha >= 0:
    loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
  return loss


def pairwise_box_terms(boxes: jax.Array, gt_boxes: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(L1 [..., Q, G]: sum over the 4 cxcywh coordinates of |pred - gt|, GIoU [..., Q, G])."""
  l1 = jnp.abs(boxes[..., :, None, :] - gt_boxes[..., None, :, :]).sum(-1)
  giou = jnp.vectorize(box_ops.pairwise_giou, signature="(q,k),(g,k)->(q,g)")(
      box_ops.cxcywh_to_xyxy(boxes), box_ops.cxcywh_to_xyxy(gt_boxes))
  return l1, giou


def matching_cost(logits: jax.Array, l1: jax.Array, giou: jax.Array,
                  config: SetLossConfig = SetLossConfig()) -> jax.Array:
  """Deformable DETR's cost [..., Q, G] from logits [..., Q] and the pairwise L1 / GIoU terms."""
  p = jax.nn.sigmoid(logits)
  a, g = config.focal_alpha, config.focal_gamma
  pos = a * (1 - p) ** g * -jnp.log(p + 1e-8)
  neg = (1 - a) * p ** g * -jnp.log(1 - p + 1e-8)
  return (config.cost_class * (pos - neg)[..., None] + config.cost_l1 * l1
          - config.cost_giou * giou)


def set_prediction_loss(logits: jax.Array, boxes: jax.Array, gt_boxes: jax.Array,
                        gt_valid: jax.Array,
                        config: SetLossConfig = SetLossConfig()) -> dict[str, jax.Array]:
  """Hungarian-matched focal + L1 + GIoU loss of one prediction set.

  Args:
    logits: [B, Q]; boxes: [B, Q, 4] normalised cxcywh predictions.
    gt_boxes: [B, G, 4] normalised cxcywh; gt_valid: [B, G] bool (padding False).

  Returns scalars {"loss" (weighted sum), "focal", "l1", "giou" (unweighted, each summed over
  the batch / num_boxes), "num_boxes"} and "gt_for_query" [B, Q] int32 (-1: no object).
  Finite with no valid gt: every prediction is then a negative and the box terms are 0.
  """
  gt_valid = gt_valid.astype(bool)
  l1, giou = pairwise_box_terms(boxes, gt_boxes)  # [B, Q, G] each, with gradients
  gt_for_query, _ = targets.hungarian_match(matching_cost(logits, l1, giou, config), gt_valid)
  matched = gt_for_query >= 0  # [B, Q]
  col = jnp.maximum(gt_for_query, 0)[..., None]
  pair_l1 = jnp.take_along_axis(l1, col, axis=-1)[..., 0]
  pair_giou = jnp.take_along_axis(giou, col, axis=-1)[..., 0]
  # DETR divides by the number of target boxes (all-reduced over the batch), at least 1.
  num_boxes = jnp.maximum(jnp.sum(gt_valid).astype(jnp.float32), 1.0)
  focal = sigmoid_focal_loss(logits, matched, config.focal_alpha, config.focal_gamma).sum() / num_boxes
  l1_loss = jnp.where(matched, pair_l1, 0.0).sum() / num_boxes
  giou_loss = jnp.where(matched, 1.0 - pair_giou, 0.0).sum() / num_boxes
  loss = config.class_weight * focal + config.l1_weight * l1_loss + config.giou_weight * giou_loss
  return {"loss": loss, "focal": focal, "l1": l1_loss, "giou": giou_loss, "num_boxes": num_boxes,
          "gt_for_query": gt_for_query}


def locformer_loss(outputs: dict[str, jax.Array], gt_boxes: jax.Array, gt_valid: jax.Array,
                   config: SetLossConfig = SetLossConfig()) -> dict[str, jax.Array]:
  """`set_prediction_loss` of a LocFormer's final predictions plus aux_weight x that of each earlier
  decoder layer ("aux_logits" [L - 1, B, Q], "aux_boxes" [L - 1, B, Q, 4]; each matched anew,
  as DETR). Returns the final layer's terms, "loss" the total and "aux_loss" the auxiliary part."""
  out = set_prediction_loss(outputs["logits"], outputs["boxes"], gt_boxes, gt_valid, config)
  aux = jnp.zeros((), jnp.float32)
  if "aux_logits" in outputs:
    per_layer = jax.vmap(lambda lg, bx: set_prediction_loss(lg, bx, gt_boxes, gt_valid, config)["loss"])
    aux = config.aux_weight * per_layer(outputs["aux_logits"], outputs["aux_boxes"]).sum()
  return {**out, "loss": out["loss"] + aux, "aux_loss": aux}
