"""Detection building blocks with static shapes (jit/vmap-able): box algebra and anchors (`boxes`),
greedy NMS (`nms`), RoIAlign (`roi_align`), and anchor/proposal/set-prediction target assignment (`targets`).

Boxes are (x1, y1, x2, y2) float arrays in input-image pixels, where pixel i covers [i, i + 1)
(torchvision's convention: width = x2 - x1, no +1). Variable-size sets are padded to a fixed
size and carry a `valid` mask, so one compiled function serves every image.
"""
