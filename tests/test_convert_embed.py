"""convert_clip -> load_clip round trip, the embed CLI, and their errors.

Checkpoints here are written in transformers' layout straight from numpy
(no torch); numerical parity with PyTorch is in test_clip_parity.py.
"""

import json
import sys

import jax
import numpy as np
import pytest
from PIL import Image
from safetensors.numpy import save_file

from sgvu import clip_io, preprocess
from sgvu.models import CLIP, get_preset
from sgvu.tools import convert_clip, embed

CFG = get_preset("tiny")


def _hf_config(cfg):
  v, t = cfg.vision, cfg.text
  return {"model_type": "clip", "projection_dim": cfg.embed_dim,
          "vision_config": {"image_size": v.image_size,
                            "patch_size": v.patch_size,
                            "hidden_size": v.width,
                            "num_hidden_layers": v.layers,
                            "num_attention_heads": v.heads,
                            "intermediate_size": v.mlp_dim},
          "text_config": {"vocab_size": t.vocab_size,
                          "max_position_embeddings": t.context_length,
                          "hidden_size": t.width,
                          "num_hidden_layers": t.layers,
                          "num_attention_heads": t.heads,
                          "intermediate_size": t.mlp_dim,
                          "eos_token_id": t.eos_token_id}}


def _write_hf(directory, tensors=None, config=None):
  directory.mkdir(parents=True, exist_ok=True)
  if tensors is None:
    rng = np.random.default_rng(0)
    tensors = {k: rng.normal(size=s).astype(np.float32)
               for k, s in clip_io.hf_tensor_shapes(CFG).items()}
  (directory / "config.json").write_text(json.dumps(config or _hf_config(CFG)))
  save_file(tensors, str(directory / "model.safetensors"))
  return directory, tensors


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
  d, _ = _write_hf(tmp_path_factory.mktemp("ckpt") / "hf")
  # The tiny preset pools at eos 2 like the word tokenizer: use one.
  (d / "word_tokenizer.json").write_text(json.dumps(
      {"vocab": ["red", "cat", "dog", "sketch"], "context_length": 16}))
  return d


def _images(directory, n=3, size=(40, 48)):
  rng = np.random.default_rng(1)
  paths = []
  for i in range(n):
    path = directory / f"im{i}.png"
    Image.fromarray(rng.integers(0, 256, size + (3,), np.uint8)).save(path)
    paths.append(str(path))
  return paths


def test_hf_mapping_layouts(hf_dir):
  cfg, params = clip_io.load_clip("hf:" + str(hf_dir))
  assert cfg.text.pool == "argmax"  # eos_token_id 2: transformers' legacy rule
  assert cfg == CFG.replace(text=cfg.text)
  tensors = clip_io.read_hf_tensors(str(hf_dir))
  q = tensors["vision_model.encoder.layers.1.self_attn.q_proj.weight"]
  v = tensors["vision_model.encoder.layers.1.self_attn.v_proj.bias"]
  attn = params["img"]["block_1"]["attn"]
  heads, head_dim = CFG.vision.heads, CFG.vision.width // CFG.vision.heads
  # q_proj row (h * head_dim + k) is the output feature of head h, dim k.
  np.testing.assert_array_equal(attn["qkv_kernel"][:, 0, 1, 3],
                                q[1 * head_dim + 3])
  np.testing.assert_array_equal(attn["qkv_bias"][2].reshape(-1), v)
  patch = tensors["vision_model.embeddings.patch_embedding.weight"]
  np.testing.assert_array_equal(params["img"]["patch_embed"]["kernel"][2, 5],
                                patch[:, :, 2, 5].T)
  np.testing.assert_array_equal(params["txt"]["proj"],
                                tensors["text_projection.weight"].T)


def test_convert_roundtrip_and_cli(hf_dir, tmp_path, capsys):
  out = tmp_path / "converted"
  assert convert_clip.main(["--hf_dir", str(hf_dir), "--out", str(out)]) == 0
  assert "word_tokenizer.json" in capsys.readouterr().out
  assert (out / "clip_config.json").exists() and (out / "params").is_dir()
  assert (out / "word_tokenizer.json").exists()
  cfg_hf, params_hf = clip_io.load_clip("hf:" + str(hf_dir))
  cfg_c, params_c = clip_io.load_clip(str(out))
  assert cfg_c == cfg_hf
  assert jax.tree.structure(params_c) == jax.tree.structure(params_hf)
  jax.tree.map(np.testing.assert_array_equal, params_c, params_hf)

  # embed gives the same numbers from either directory, and its numbers are
  # the model's own on the preprocessed pixels.
  paths = _images(tmp_path)
  texts = ["red cat", "Sketch, dog!"]
  results = []
  for d in (hf_dir, out):
    npz = tmp_path / f"{d.name}.npz"
    assert embed.main(["--clip", str(d), "--images", *paths, "--texts",
                       *texts, "--out", str(npz), "--batch_size", "2"]) == 0
    results.append(np.load(npz))
  for key in ("image_embeds", "text_embeds"):
    np.testing.assert_allclose(results[0][key], results[1][key], atol=1e-6)
  assert results[0]["image_embeds"].shape == (3, CFG.embed_dim)
  assert results[0]["text_embeds"].shape == (2, CFG.embed_dim)
  assert list(results[0]["texts"]) == texts
  pixels = preprocess.load_images(paths, preprocess.ClipPreprocess.for_size(32))
  direct = CLIP(cfg_hf).apply({"params": params_hf}, pixels,
                              method=CLIP.encode_image)
  np.testing.assert_allclose(results[0]["image_embeds"], direct, atol=1e-5)
  ids = np.array([[1, 3, 4, 2] + [0] * 12, [1, 6, 5, 2] + [0] * 12], np.int32)
  direct_txt = CLIP(cfg_hf).apply({"params": params_hf}, ids,
                                  method=CLIP.encode_text)
  np.testing.assert_allclose(results[0]["text_embeds"], direct_txt, atol=1e-5)


def test_mapping_errors_name_the_tensor(tmp_path):
  shapes = clip_io.hf_tensor_shapes(CFG)
  tensors = {k: np.zeros(s, np.float32) for k, s in shapes.items()}
  key = "text_model.encoder.layers.0.mlp.fc1.bias"
  missing = {k: v for k, v in tensors.items() if k != key}
  with pytest.raises(ValueError, match=f"missing \\['{key}'\\]"):
    clip_io.hf_to_params(CFG, missing)
  extra = dict(tensors, **{"vision_model.extra.weight": np.zeros(2)})
  with pytest.raises(ValueError, match="unmapped \\['vision_model.extra"):
    clip_io.hf_to_params(CFG, extra)
  bad = dict(tensors, **{key: np.zeros(7, np.float32)})
  with pytest.raises(ValueError, match=f"tensor {key} has shape \\(7,\\)"):
    clip_io.hf_to_params(CFG, bad)
  ok = dict(tensors, **{"text_model.embeddings.position_ids":
                        np.arange(CFG.text.context_length)[None]})
  clip_io.hf_to_params(CFG, ok)  # legacy buffer is ignored
  d, _ = _write_hf(tmp_path / "bad", tensors=bad)
  with pytest.raises(ValueError, match=str(d)):
    clip_io.load_clip(str(d))


def test_load_errors(tmp_path, monkeypatch):
  with pytest.raises(FileNotFoundError, match="expected 'hf:/path"):
    clip_io.load_clip(str(tmp_path))
  with pytest.raises(FileNotFoundError, match="config.json not found"):
    clip_io.load_clip("hf:" + str(tmp_path))
  (tmp_path / "config.json").write_text(json.dumps(_hf_config(CFG)))
  with pytest.raises(FileNotFoundError, match="no model.safetensors"):
    clip_io.load_clip(str(tmp_path))
  (tmp_path / "pytorch_model.bin").write_bytes(b"x")
  monkeypatch.setitem(sys.modules, "torch", None)  # as if not installed
  with pytest.raises(ImportError, match="convert it to model.safetensors"):
    clip_io.load_clip(str(tmp_path))
  (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
  with pytest.raises(ValueError, match="model_type 'bert'"):
    clip_io.load_clip(str(tmp_path))


def test_embed_bad_images_name_the_file(hf_dir, tmp_path, capsys):
  good = _images(tmp_path, n=1)
  corrupt = tmp_path / "corrupt.png"
  corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really")
  missing = tmp_path / "missing.jpg"
  for bad in (corrupt, missing):
    code = embed.main(["--clip", str(hf_dir), "--images", *good, str(bad),
                       "--out", str(tmp_path / "e.npz")])
    assert code == 2
    assert str(bad) in capsys.readouterr().err
  with pytest.raises(preprocess.ImageError, match="missing.jpg"):
    preprocess.load_image(str(missing))
  with pytest.raises(SystemExit):
    embed.main(["--clip", str(hf_dir), "--out", str(tmp_path / "e.npz")])
