"""Reading CLIP weights: transformers checkpoints and sgvu's converted format.

* `load_hf(dir)`: a transformers `CLIPModel` directory (config.json +
  model.safetensors, sharded safetensors, or pytorch_model.bin when torch is
  installed) -> (CLIPConfig, params). No torch needed for safetensors.
* `save_converted(out, cfg, params)` / `load_converted(dir)`: an orbax
  checkpoint of plain arrays (`out/params`) + `out/clip_config.json`.
* `load_clip(spec)`: 'hf:/path', a converted directory, or (detected) an HF
  directory.

`params` is the inner tree of `CLIP(cfg)` (what `variables['params']` holds),
plain unboxed arrays: use `CLIP(cfg).apply({'params': params}, ...)`.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sgvu.models.clip import CLIP, CLIPConfig

CONFIG_FILE = "clip_config.json"
PARAMS_DIR = "params"
# Buffers some transformers versions save; they carry no weights.
IGNORED_HF_KEYS = ("vision_model.embeddings.position_ids",
                   "text_model.embeddings.position_ids")
# Sub-config defaults of transformers' CLIPVisionConfig / CLIPTextConfig,
# which save_pretrained may leave out of config.json.
HF_VISION_DEFAULTS = dict(hidden_size=768, intermediate_size=3072,
                          num_hidden_layers=12, num_attention_heads=12,
                          image_size=224, patch_size=32,
                          hidden_act="quick_gelu", layer_norm_eps=1e-5)
HF_TEXT_DEFAULTS = dict(vocab_size=49408, hidden_size=512,
                        intermediate_size=2048, num_hidden_layers=12,
                        num_attention_heads=8, max_position_embeddings=77,
                        hidden_act="quick_gelu", layer_norm_eps=1e-5,
                        eos_token_id=2)

Params = dict[str, Any]


# ----------------------------------------------------------------- HF config
def read_hf_config(directory: str) -> CLIPConfig:
  file = os.path.join(directory, "config.json")
  try:
    with open(file) as f:
      hf = json.load(f)
  except FileNotFoundError:
    raise FileNotFoundError(f"{file} not found: not a transformers "
                            f"checkpoint directory") from None
  except ValueError as e:
    raise ValueError(f"{file}: invalid JSON ({e})") from e
  if hf.get("model_type", "clip") != "clip":
    raise ValueError(f"{file}: model_type {hf.get('model_type')!r} is not "
                     f"'clip'")
  hf = dict(hf)
  for sub, defaults in (("vision_config", HF_VISION_DEFAULTS),
                        ("text_config", HF_TEXT_DEFAULTS)):
    given = hf.get(sub) or hf.get(sub + "_dict")  # older files: *_config_dict
    if given is None:
      raise ValueError(f"{file}: no {sub}; is this a CLIPModel checkpoint?")
    hf[sub] = {**defaults, **given}
  hf.setdefault("projection_dim", 512)
  try:
    return CLIPConfig.from_hf(hf)
  except ValueError as e:
    raise ValueError(f"{file}: {e}") from None


# --------------------------------------------------------------- HF tensors
def read_hf_tensors(directory: str) -> dict[str, np.ndarray]:
  """All tensors of a checkpoint directory as float32 numpy arrays."""
  from safetensors.numpy import load_file
  single = os.path.join(directory, "model.safetensors")
  index = single + ".index.json"
  binary = os.path.join(directory, "pytorch_model.bin")
  if os.path.exists(single):
    files = [single]
  elif os.path.exists(index):
    with open(index) as f:
      shards = sorted(set(json.load(f)["weight_map"].values()))
    files = [os.path.join(directory, s) for s in shards]
  elif os.path.exists(binary):
    return _read_torch_bin(binary)
  else:
    raise FileNotFoundError(
        f"{directory}: no model.safetensors, model.safetensors.index.json or "
        f"pytorch_model.bin")
  tensors = {}
  for file in files:
    try:
      tensors.update(load_file(file))
    except Exception as e:  # safetensors raises its own error types
      raise ValueError(f"{file}: cannot read safetensors ({e})") from e
  return {k: np.asarray(v, np.float32) for k, v in tensors.items()}


def _read_torch_bin(file: str) -> dict[str, np.ndarray]:
  try:
    import torch  # optional; only for legacy .bin checkpoints
  except ImportError:
    raise ImportError(
        f"{file}: reading pytorch_model.bin needs torch, which is not "
        f"installed; convert it to model.safetensors (e.g. save_pretrained "
        f"with safe_serialization=True on a machine with torch)") from None
  state = torch.load(file, map_location="cpu", weights_only=True)
  return {k: v.float().numpy() for k, v in state.items()}


# ----------------------------------------------------------------- mapping
Rule = tuple[tuple[tuple[str, tuple[int, ...]], ...],
             Callable[..., np.ndarray]]


def _hf_rules(cfg: CLIPConfig) -> dict[tuple[str, ...], Rule]:
  """Flax param path -> ((HF key, HF shape), ...), transform to Flax layout."""
  rules: dict[tuple[str, ...], Rule] = {}
  same = lambda x: x
  transpose = lambda x: x.T

  def add(path, keys_shapes, fn=same):
    rules[tuple(path.split("/"))] = (tuple(keys_shapes), fn)

  def norm(path, key, width):
    add(path + "/scale", [(key + ".weight", (width,))])
    add(path + "/bias", [(key + ".bias", (width,))])

  def tower(flax, hf, c):
    d, h = c.width, c.heads
    k = d // h
    for i in range(c.layers):
      src, dst = f"{hf}.encoder.layers.{i}", f"{flax}/block_{i}"
      qkv = [f"{src}.self_attn.{n}_proj" for n in "qkv"]
      add(f"{dst}/attn/qkv_kernel", [(n + ".weight", (d, d)) for n in qkv],
          lambda *w: np.stack([x.T.reshape(d, h, k) for x in w], axis=1))
      add(f"{dst}/attn/qkv_bias", [(n + ".bias", (d,)) for n in qkv],
          lambda *b: np.stack([x.reshape(h, k) for x in b]))
      add(f"{dst}/attn/out_kernel", [(f"{src}.self_attn.out_proj.weight",
                                      (d, d))],
          lambda w: w.T.reshape(h, k, d))
      add(f"{dst}/attn/out_bias", [(f"{src}.self_attn.out_proj.bias", (d,))])
      norm(f"{dst}/ln_1", f"{src}.layer_norm1", d)
      norm(f"{dst}/ln_2", f"{src}.layer_norm2", d)
      add(f"{dst}/mlp/fc1/kernel", [(f"{src}.mlp.fc1.weight", (c.mlp_dim, d))],
          transpose)
      add(f"{dst}/mlp/fc1/bias", [(f"{src}.mlp.fc1.bias", (c.mlp_dim,))])
      add(f"{dst}/mlp/fc2/kernel", [(f"{src}.mlp.fc2.weight", (d, c.mlp_dim))],
          transpose)
      add(f"{dst}/mlp/fc2/bias", [(f"{src}.mlp.fc2.bias", (d,))])

  v, t, e = cfg.vision, cfg.text, cfg.embed_dim
  tower("img", "vision_model", v)
  emb = "vision_model.embeddings"
  add("img/patch_embed/kernel", [(f"{emb}.patch_embedding.weight",
                                  (v.width, 3, v.patch_size, v.patch_size))],
      lambda w: w.transpose(2, 3, 1, 0))
  add("img/class_embedding", [(f"{emb}.class_embedding", (v.width,))])
  add("img/pos_embedding", [(f"{emb}.position_embedding.weight",
                             (v.num_patches + 1, v.width))])
  norm("img/ln_pre", "vision_model.pre_layrnorm", v.width)  # sic: HF's name
  norm("img/ln_post", "vision_model.post_layernorm", v.width)
  add("img/proj", [("visual_projection.weight", (e, v.width))], transpose)

  tower("txt", "text_model", t)
  emb = "text_model.embeddings"
  add("txt/token_embedding", [(f"{emb}.token_embedding.weight",
                               (t.vocab_size, t.width))])
  add("txt/pos_embedding", [(f"{emb}.position_embedding.weight",
                             (t.context_length, t.width))])
  norm("txt/ln_final", "text_model.final_layer_norm", t.width)
  add("txt/proj", [("text_projection.weight", (e, t.width))], transpose)
  add("logit_scale", [("logit_scale", ())])
  return rules


def hf_tensor_shapes(cfg: CLIPConfig) -> dict[str, tuple[int, ...]]:
  """Every tensor a transformers CLIPModel checkpoint has, with its shape."""
  return {k: shape for keys, _ in _hf_rules(cfg).values()
          for k, shape in keys}


def abstract_params(cfg: CLIPConfig) -> Params:
  """Shapes/dtypes of `CLIP(cfg)` params (unboxed), without computing."""
  v, t = cfg.vision, cfg.text
  images = jnp.zeros((1, v.image_size, v.image_size, 3), jnp.float32)
  tokens = jnp.zeros((1, t.context_length), jnp.int32)
  shapes = jax.eval_shape(CLIP(cfg).init, jax.random.key(0), images, tokens)
  return nn.unbox(shapes)["params"]


def hf_to_params(cfg: CLIPConfig, tensors: Mapping[str, np.ndarray],
                 source: str = "checkpoint") -> Params:
  """Maps transformers CLIPModel tensors onto the Flax param tree.

  Raises naming every missing or unmapped tensor and any shape mismatch.
  """
  rules = _hf_rules(cfg)
  wanted = {k for keys, _ in rules.values() for k, _ in keys}
  missing = sorted(wanted - set(tensors))
  unmapped = sorted(set(tensors) - wanted - set(IGNORED_HF_KEYS))
  if missing or unmapped:
    raise ValueError(
        f"{source}: tensors do not match the CLIP config: missing "
        f"{missing[:20]}{' ...' if len(missing) > 20 else ''} "
        f"({len(missing)}); unmapped {unmapped[:20]}"
        f"{' ...' if len(unmapped) > 20 else ''} ({len(unmapped)})")
  expected = abstract_params(cfg)
  flat_expected = {tuple(k.key for k in path): leaf for path, leaf
                   in jax.tree_util.tree_flatten_with_path(expected)[0]}
  if set(flat_expected) != set(rules):  # a bug in _hf_rules, not the file
    raise AssertionError(f"mapping rules and model disagree: "
                         f"{sorted(set(flat_expected) ^ set(rules))}")
  flat = {}
  for path, (keys_shapes, fn) in rules.items():
    arrays = []
    for key, shape in keys_shapes:
      x = np.asarray(tensors[key], np.float32)
      if x.shape != shape:
        raise ValueError(f"{source}: tensor {key} has shape {x.shape}, the "
                         f"config implies {shape}")
      arrays.append(x)
    out = fn(*arrays)
    assert out.shape == flat_expected[path].shape, (path, out.shape)
    flat[path] = out
  params: Params = {}
  for path, value in flat.items():
    node = params
    for part in path[:-1]:
      node = node.setdefault(part, {})
    node[path[-1]] = value
  return params


def load_hf(directory: str) -> tuple[CLIPConfig, Params]:
  """(CLIPConfig, params) from a transformers CLIPModel directory."""
  cfg = read_hf_config(directory)
  return cfg, hf_to_params(cfg, read_hf_tensors(directory), source=directory)


# ------------------------------------------------------- converted format
def save_converted(directory: str, cfg: CLIPConfig, params: Params) -> None:
  """Writes `directory/params` (orbax) and `directory/clip_config.json`."""
  import orbax.checkpoint as ocp
  directory = os.path.abspath(directory)
  os.makedirs(directory, exist_ok=True)
  params = jax.tree.map(np.asarray, nn.unbox(params))
  with ocp.StandardCheckpointer() as ckpt:
    ckpt.save(os.path.join(directory, PARAMS_DIR), params, force=True)
  with open(os.path.join(directory, CONFIG_FILE), "w") as f:
    json.dump(cfg.to_dict(), f, indent=1)


def read_converted_config(directory: str) -> CLIPConfig:
  file = os.path.join(directory, CONFIG_FILE)
  try:
    with open(file) as f:
      return CLIPConfig.from_dict(json.load(f))
  except FileNotFoundError:
    raise FileNotFoundError(f"{file} not found") from None
  except ValueError as e:
    raise ValueError(f"{file}: {e}") from None


def load_converted(directory: str, target: Params | None = None
                   ) -> tuple[CLIPConfig, Params]:
  """Reads a convert_clip directory.

  `target`: optional tree of jax.ShapeDtypeStruct (with shardings) to restore
  straight into sharded device arrays; default: host numpy arrays.
  """
  import orbax.checkpoint as ocp
  directory = os.path.abspath(directory)
  cfg = read_converted_config(directory)
  if target is None:
    target = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype),
                          abstract_params(cfg))
  path = os.path.join(directory, PARAMS_DIR)
  if not os.path.isdir(path):
    raise FileNotFoundError(f"{path}: no orbax params checkpoint")
  try:
    with ocp.StandardCheckpointer() as ckpt:
      params = ckpt.restore(path, target)
  except Exception as e:  # orbax raises many types for tree mismatches
    raise ValueError(f"{path}: checkpoint does not fit {CONFIG_FILE} ({e})"
                     ) from e
  return cfg, params


def load_clip(spec: str) -> tuple[CLIPConfig, Params]:
  """'hf:/dir' (transformers), or a directory (converted, else transformers)."""
  if spec.startswith("hf:"):
    return load_hf(spec[3:])
  if os.path.exists(os.path.join(spec, CONFIG_FILE)):
    return load_converted(spec)
  if os.path.exists(os.path.join(spec, "config.json")):
    return load_hf(spec)
  raise FileNotFoundError(
      f"CLIP spec {spec!r}: expected 'hf:/path/to/dir' or a directory with "
      f"{CONFIG_FILE} (convert_clip output) or config.json (transformers)")
