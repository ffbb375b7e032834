"""CLIP image preprocessing (as transformers' CLIPImageProcessor does it).

RGB -> resize the shortest side to `resize_to` (PIL bicubic on uint8) ->
centre crop `crop_size` -> /255 -> (x - mean) / std. Output float32
[H, W, 3] (channels last, what sgvu's VisionTransformer takes).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Sequence

import numpy as np
from PIL import Image

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
PREPROCESSOR_FILE = "preprocessor_config.json"

_RESAMPLE = {0: Image.Resampling.NEAREST, 1: Image.Resampling.LANCZOS,
             2: Image.Resampling.BILINEAR, 3: Image.Resampling.BICUBIC,
             4: Image.Resampling.BOX, 5: Image.Resampling.HAMMING}


class ImageError(ValueError):
  """An image file that is missing or cannot be decoded (names the file)."""


@dataclasses.dataclass(frozen=True)
class ClipPreprocess:
  resize_to: int  # shortest side after resizing
  crop_size: tuple[int, int]  # (height, width)
  mean: tuple[float, float, float] = OPENAI_CLIP_MEAN
  std: tuple[float, float, float] = OPENAI_CLIP_STD
  resample: int = 3  # PIL code, 3 = bicubic (transformers' convention)
  do_resize: bool = True
  do_center_crop: bool = True

  @classmethod
  def for_size(cls, image_size: int) -> "ClipPreprocess":
    return cls(resize_to=image_size, crop_size=(image_size, image_size))

  @classmethod
  def from_dir(cls, directory: str, image_size: int) -> "ClipPreprocess":
    """Reads preprocessor_config.json if present, else OpenAI's defaults."""
    file = os.path.join(directory, PREPROCESSOR_FILE)
    if not os.path.exists(file):
      return cls.for_size(image_size)
    try:
      with open(file) as f:
        d = json.load(f)
      size, crop = d.get("size", image_size), d.get("crop_size", image_size)
      if isinstance(size, dict):
        size = size.get("shortest_edge", size.get("height"))
      if isinstance(crop, dict):
        crop = (crop["height"], crop["width"])
      elif isinstance(crop, int):
        crop = (crop, crop)
      if d.get("do_rescale", True) is False or d.get("do_normalize",
                                                     True) is False:
        raise ValueError("do_rescale/do_normalize false is not supported")
      mean = tuple(float(x) for x in d.get("image_mean", OPENAI_CLIP_MEAN))
      std = tuple(float(x) for x in d.get("image_std", OPENAI_CLIP_STD))
      out = cls(resize_to=int(size), crop_size=(int(crop[0]), int(crop[1])),
                mean=mean, std=std, resample=int(d.get("resample", 3)),
                do_resize=bool(d.get("do_resize", True)),
                do_center_crop=bool(d.get("do_center_crop", True)))
    except (ValueError, KeyError, TypeError) as e:
      raise ValueError(f"{file}: unsupported preprocessor config: {e}") from e
    if out.crop_size != (image_size, image_size):
      raise ValueError(f"{file}: crop_size {out.crop_size} does not match the "
                       f"model's image_size {image_size}")
    return out

  def __call__(self, image: Image.Image) -> np.ndarray:
    image = image.convert("RGB")
    if self.do_resize:
      w, h = image.size
      short, long = (w, h) if w <= h else (h, w)
      new_long = int(self.resize_to * long / short)
      size = ((self.resize_to, new_long) if w <= h
              else (new_long, self.resize_to))  # PIL wants (w, h)
      if size != image.size:
        image = image.resize(size, resample=_RESAMPLE[self.resample])
    x = np.asarray(image, np.float32)
    if self.do_center_crop:
      x = center_crop(x, self.crop_size)
    x = x / 255.0
    return ((x - np.asarray(self.mean, np.float32))
            / np.asarray(self.std, np.float32)).astype(np.float32)


def center_crop(x: np.ndarray, crop: tuple[int, int]) -> np.ndarray:
  """Centre crop [H, W, C], zero-padding first if the image is smaller."""
  ch, cw = crop
  h, w = x.shape[:2]
  if h < ch or w < cw:
    pad_h, pad_w = max(ch - h, 0), max(cw - w, 0)
    x = np.pad(x, ((pad_h // 2, pad_h - pad_h // 2),
                   (pad_w // 2, pad_w - pad_w // 2), (0, 0)))
    h, w = x.shape[:2]
  top, left = (h - ch) // 2, (w - cw) // 2
  return x[top:top + ch, left:left + cw]


def load_image(path: str) -> Image.Image:
  """Opens and fully decodes an image, raising ImageError naming the file."""
  if not os.path.isfile(path):
    raise ImageError(f"{path}: image file not found")
  try:
    with Image.open(path) as im:
      im.load()
      return im.copy()
  except Exception as e:  # PIL raises several types for bad data
    raise ImageError(f"{path}: cannot decode image ({e})") from e


def load_images(paths: Sequence[str], preprocess: ClipPreprocess) -> np.ndarray:
  """[N, H, W, 3] float32 model inputs for image files."""
  h, w = preprocess.crop_size
  if not paths:
    return np.zeros((0, h, w, 3), np.float32)
  return np.stack([preprocess(load_image(p)) for p in paths])


_MEAN_255 = np.asarray(OPENAI_CLIP_MEAN, np.float32) * 255.0
_STD_255 = np.asarray(OPENAI_CLIP_STD, np.float32) * 255.0


def normalize_images(images):
  """uint8 [..., 3] -> CLIP-normalised float32 (jnp inside jit, numpy outside)."""
  import jax.numpy as jnp  # local: this module stays importable without JAX start-up
  return (images.astype(jnp.float32) - _MEAN_255) / _STD_255
