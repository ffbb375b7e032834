"""Variable-size targets (boxes per image, labels per box) as fixed shapes plus a mask.

jit needs static shapes, so a batch of images with different numbers of boxes
becomes boxes [B, max_len, 4] and mask [B, max_len] (True = a real box).
Losses and metrics weight by the mask, so their value does not depend on
max_len (see tests/test_train_contract.py).

An item longer than max_len is an error naming the item, never a silent
truncation: dropping boxes would change the loss and the detection metrics
without a trace. Choose max_len from the data (the most boxes any image has)
or filter/cap the targets in the reader, where the choice is visible.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def pad_to(item: Any, max_len: int, fill: Any = 0, *, dtype: Any = None,
           name: str = "item") -> tuple[np.ndarray, np.ndarray]:
  """One variable-length array [n, ...] -> (padded [max_len, ...], mask [max_len] bool), n <= max_len.

  For a per-record `map` before batching (grain); `name` is used in errors.
  """
  a = np.asarray(item, dtype=dtype)
  if a.ndim == 0:
    raise ValueError(f"{name}: a scalar has no length to pad; targets are arrays [n, ...]")
  n = a.shape[0]
  if n > max_len:
    raise ValueError(f"{name} has {n} entries, more than max_len={max_len}; raise max_len to at least {n} "
                     f"(padding never truncates)")
  padded = np.full((max_len,) + a.shape[1:], fill, dtype=a.dtype)
  padded[:n] = a
  mask = np.zeros((max_len,), dtype=bool)
  mask[:n] = True
  return padded, mask


def pad_targets(items: Sequence[Any], max_len: int, fill: Any = 0, *,
                dtype: Any = None) -> tuple[np.ndarray, np.ndarray]:
  """A batch of variable-length arrays -> (padded [B, max_len, ...], mask [B, max_len] bool).

  Every item is [n_i, ...] with the same trailing shape (e.g. boxes [n_i, 4]);
  `fill` fills the padding; raises naming the item (its index) when one is
  longer than max_len or its trailing shape differs.
  """
  if max_len < 0:
    raise ValueError(f"max_len={max_len} must be >= 0")
  if not len(items):
    raise ValueError("pad_targets: no items (the trailing shape and dtype come from them)")
  arrays = [np.asarray(x, dtype=dtype) for x in items]
  trailing = arrays[0].shape[1:] if arrays[0].ndim else None
  out_dtype = np.result_type(*arrays) if dtype is None else np.dtype(dtype)
  padded, masks = [], []
  for i, a in enumerate(arrays):
    if a.ndim and a.shape[1:] != trailing:
      raise ValueError(f"item {i} has shape {a.shape}; every item must be [n, *{trailing}] like item 0")
    p, m = pad_to(a.astype(out_dtype, copy=False), max_len, fill, name=f"item {i}")
    padded.append(p)
    masks.append(m)
  return np.stack(padded), np.stack(masks)


def masked_mean(values: Any, mask: Any, xnp: Any = np) -> Any:
  """Mean of `values` [B, M, ...] over the entries where mask [B, M] is True (0 when none is).

  Padded entries are excluded with a `where`, so even a NaN fill cannot leak in.
  `xnp` is numpy or jax.numpy (pass jnp inside a loss).
  """
  mask = xnp.asarray(mask, dtype=bool)
  while mask.ndim < values.ndim:
    mask = mask[..., None]
  mask = xnp.broadcast_to(mask, values.shape)
  total = xnp.sum(xnp.where(mask, values, 0))
  return total / xnp.maximum(xnp.sum(mask.astype(total.dtype)), 1)
