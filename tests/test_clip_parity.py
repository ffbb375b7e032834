"""Numerical parity of sgvu's CLIP with PyTorch transformers' CLIPModel.

A small random CLIPModel (all biases and LayerNorms perturbed so that they
matter) is saved with a tiny BPE tokenizer; sgvu's embed path must reproduce
get_image_features / get_text_features to 1e-4 in float32.
"""

import json
import shutil

import jax
import numpy as np
import pytest
from PIL import Image

from sgvu import clip_io, preprocess
from sgvu.models import CLIP
from sgvu.tools import embed

LETTERS = "abcdefghijklmnopqrstuvwxyz"
MERGES = ["a t</w>", "c at</w>", "p h", "o t", "ph ot", "phot o</w>",
          "o f</w>", "s k", "sk e", "t c", "ske tc", "sketc h</w>"]
TEXTS = ["a photo of a cat.", "a sketch of a cat", "photo",
         "a very very long sketch of a photo of a cat that will be cut"]
ATOL = 1e-4


def _vocab():
  tokens = list(LETTERS) + [c + "</w>" for c in LETTERS]
  tokens += [m.replace(" ", "") for m in MERGES]
  tokens += [".", ".</w>", "<|startoftext|>", "<|endoftext|>"]
  return {t: i for i, t in enumerate(tokens)}


def _random_clip(eos_token_id, seed=0, vision_layers=2, text_layers=3):
  import torch
  from transformers import CLIPConfig, CLIPModel
  vocab = _vocab()
  cfg = CLIPConfig(
      text_config=dict(vocab_size=len(vocab), hidden_size=48,
                       intermediate_size=64, num_hidden_layers=text_layers,
                       num_attention_heads=4, max_position_embeddings=16,
                       eos_token_id=eos_token_id,
                       bos_token_id=vocab["<|startoftext|>"],
                       pad_token_id=vocab["<|endoftext|>"]),
      vision_config=dict(image_size=32, patch_size=8, hidden_size=32,
                         intermediate_size=40, num_hidden_layers=vision_layers,
                         num_attention_heads=2),
      projection_dim=24)
  torch.manual_seed(seed)
  model = CLIPModel(cfg).eval()
  with torch.no_grad():
    for name, p in model.named_parameters():
      if name.endswith("bias") or "norm" in name or "layrnorm" in name:
        p.add_(0.5 * torch.randn_like(p))
      elif name == "logit_scale":
        p.fill_(3.0)
      else:  # larger weights make mistakes (transposes, heads) visible
        p.mul_(3.0)
  return model


def _features(output):
  # transformers 5 returns a ModelOutput whose pooler_output holds the
  # projected features; v4 returned the tensor itself.
  import torch
  if isinstance(output, torch.Tensor):
    return output.detach().numpy()
  return output.pooler_output.detach().numpy()


@pytest.fixture(scope="module")
def hf_checkpoint(tmp_path_factory):
  from transformers import CLIPImageProcessor
  d = tmp_path_factory.mktemp("hf_clip")
  model = _random_clip(eos_token_id=_vocab()["<|endoftext|>"])
  model.save_pretrained(str(d))
  (d / "vocab.json").write_text(json.dumps(_vocab()))
  (d / "merges.txt").write_text("#version: 0.2\n" + "\n".join(MERGES) + "\n")
  CLIPImageProcessor(size={"shortest_edge": 32},
                     crop_size={"height": 32, "width": 32}).save_pretrained(
                         str(d))
  rng = np.random.default_rng(0)
  paths = []
  for i in range(3):
    pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    path = d / f"img{i}.png"
    Image.fromarray(pixels).save(path)
    paths.append(str(path))
  return d, model, paths


def test_embed_cli_matches_transformers(hf_checkpoint, tmp_path):
  import torch
  from transformers import CLIPImageProcessor, CLIPTokenizer
  d, model, paths = hf_checkpoint
  out = tmp_path / "e.npz"
  assert embed.main(["--clip", str(d), "--images", *paths, "--texts", *TEXTS,
                     "--out", str(out), "--batch_size", "2"]) == 0
  got = np.load(out)
  assert got["image_embeds"].shape == (3, 24)
  assert got["text_embeds"].shape == (len(TEXTS), 24)

  processor = CLIPImageProcessor.from_pretrained(str(d))
  pixels = processor([Image.open(p) for p in paths],
                     return_tensors="pt")["pixel_values"]
  tok = CLIPTokenizer.from_pretrained(str(d))
  text_in = tok(TEXTS, padding="max_length", max_length=16, truncation=True,
                return_tensors="pt")
  with torch.no_grad():
    ref_img = _features(model.get_image_features(pixel_values=pixels))
    ref_txt = _features(model.get_text_features(**text_in))
  assert ref_img.shape == (3, 24) and ref_txt.shape == (len(TEXTS), 24)
  # The features are O(1-10), so 1e-4 is a tight bound.
  assert np.abs(ref_img).max() > 0.5
  np.testing.assert_allclose(got["image_embeds"], ref_img, atol=ATOL, rtol=0)
  np.testing.assert_allclose(got["text_embeds"], ref_txt, atol=ATOL, rtol=0)


def test_logit_scale_and_pixels_parity(hf_checkpoint):
  import torch
  from transformers import CLIPImageProcessor
  d, model, paths = hf_checkpoint
  cfg, params = clip_io.load_clip("hf:" + str(d))
  assert float(params["logit_scale"]) == pytest.approx(3.0)
  ours = preprocess.load_images(
      paths, preprocess.ClipPreprocess.from_dir(str(d), 32))
  theirs = CLIPImageProcessor.from_pretrained(str(d))(
      [Image.open(p) for p in paths], return_tensors="np")["pixel_values"]
  np.testing.assert_allclose(ours, theirs.transpose(0, 2, 3, 1), atol=1e-5)


def test_preprocess_resize_and_crop_match_transformers(tmp_path):
  from transformers import CLIPImageProcessor
  rng = np.random.default_rng(1)
  processor = CLIPImageProcessor(size={"shortest_edge": 32},
                                 crop_size={"height": 32, "width": 32})
  ours = preprocess.ClipPreprocess.for_size(32)
  for h, w in [(50, 37), (37, 90), (64, 64), (20, 33)]:
    image = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    theirs = processor(image, return_tensors="np")["pixel_values"][0]
    np.testing.assert_allclose(ours(image), theirs.transpose(1, 2, 0),
                               atol=1e-5, err_msg=f"size {h}x{w}")


def test_legacy_eos_2_pools_at_argmax():
  import torch
  model = _random_clip(eos_token_id=2, seed=1, vision_layers=1, text_layers=2)
  tensors = {k: v.detach().numpy() for k, v in model.state_dict().items()}
  cfg = clip_io.CLIPConfig.from_hf(model.config.to_dict())
  assert cfg.text.pool == "argmax"
  params = clip_io.hf_to_params(cfg, tensors)
  # Rows whose highest id is not at the position of id 2.
  ids = np.array([[61, 2, 40, 7, 62, 0, 0, 0],
                  [5, 59, 2, 2, 1, 3, 4, 6]], np.int32)
  with torch.no_grad():
    ref = _features(model.get_text_features(
        input_ids=torch.from_numpy(ids).long()))
  ours = CLIP(cfg).apply({"params": params}, ids, method=CLIP.encode_text)
  np.testing.assert_allclose(np.asarray(ours), ref, atol=ATOL, rtol=0)


def test_pytorch_bin_checkpoint_loads_like_safetensors(hf_checkpoint, tmp_path):
  import torch
  d, model, _ = hf_checkpoint
  shutil.copyfile(d / "config.json", tmp_path / "config.json")
  torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
  _, from_bin = clip_io.load_clip("hf:" + str(tmp_path))
  _, from_safetensors = clip_io.load_clip("hf:" + str(d))
  jax.tree.map(np.testing.assert_array_equal, from_bin, from_safetensors)
