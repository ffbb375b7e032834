"""Shape and behaviour tests of the Flax CLIP (tiny preset)."""

import dataclasses
import json
import math

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sgvu.models import (CLIP, CLIPConfig, MODEL_PRESETS, TextConfig, TextTransformer,
                         VisionConfig, VisionTransformer, get_preset)

CFG = get_preset("tiny")
B, P = 3, 4
NUM_TOKENS = 1 + CFG.vision.num_patches
D = CFG.vision.width
PARAM_NAMES = {"embed", "mlp", "heads", "kv", "vocab", "joint", "patch", None}


def _images(seed=0, batch=B):
  return jax.random.normal(jax.random.key(seed), (batch, 32, 32, 3))


def _tokens():
  # rows: BOS w w EOT pad..., BOS EOT pad..., a full row ending in EOT
  return jnp.array([[1, 5, 6, 2, 0, 0, 0, 0],
                    [1, 2, 0, 0, 0, 0, 0, 0],
                    [1, 7, 8, 9, 10, 11, 12, 2]], jnp.int32)


@pytest.fixture(scope="module")
def clip_and_params():
  model = CLIP(CFG)
  variables = model.init(jax.random.key(0), _images(), _tokens())
  return model, variables


def _encode(variables, images, prompts=None, deep_prompts=None):
  """(embedding, tokens). Eager: on 2 CPU cores, compiling one program per
  prompt signature costs more than op-by-op dispatch of this tiny model."""
  return CLIP(CFG).apply(variables, images, prompts=prompts,
                         deep_prompts=deep_prompts, return_tokens=True,
                         method=CLIP.encode_image)


def test_clip_call_shapes_and_logit_scale(clip_and_params):
  model, variables = clip_and_params
  img, txt, scale = model.apply(variables, _images(), _tokens())
  chex.assert_shape(img, (B, CFG.embed_dim))
  chex.assert_shape(txt, (B, CFG.embed_dim))
  chex.assert_shape(scale, ())
  chex.assert_trees_all_close(scale, 1 / 0.07, rtol=1e-5)
  chex.assert_tree_all_finite((img, txt))
  raw = nn.unbox(variables)["params"]["logit_scale"]
  chex.assert_trees_all_close(raw, math.log(1 / 0.07), rtol=1e-6)


def test_every_param_has_valid_logical_names(clip_and_params):
  _, variables = clip_and_params
  leaves = jax.tree.leaves(
      variables, is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))
  assert leaves
  for leaf in leaves:
    assert isinstance(leaf, nn.LogicallyPartitioned), type(leaf)
    assert len(leaf.names) == leaf.value.ndim, leaf.names
    assert set(leaf.names) <= PARAM_NAMES, leaf.names
  specs = nn.get_partition_spec(variables)
  assert specs["params"]["img"]["proj"] == jax.sharding.PartitionSpec(
      "embed", "joint")


def test_image_tokens_and_submodule_match(clip_and_params):
  model, variables = clip_and_params
  emb, tokens = model.apply(variables, _images(), return_tokens=True,
                            method=CLIP.encode_image)
  chex.assert_shape(emb, (B, CFG.embed_dim))
  chex.assert_shape(tokens, (B, NUM_TOKENS, D))
  direct = VisionTransformer(CFG.vision).apply(
      {"params": variables["params"]["img"]}, _images())
  chex.assert_trees_all_close(direct, emb, atol=1e-6)


def test_shallow_prompts_shared_and_batched(clip_and_params):
  model, variables = clip_and_params
  enc = lambda **kw: _encode(variables, _images(), **kw)[0]
  prompts = jax.random.normal(jax.random.key(1), (P, D))
  emb, tokens = _encode(variables, _images(), prompts=prompts)
  chex.assert_shape(tokens, (B, NUM_TOKENS + P, D))
  assert not np.allclose(emb, enc(), atol=1e-4), "prompts had no effect"
  # Batched prompts: row i equals the shared-prompt run with prompts[i].
  batched = jax.random.normal(jax.random.key(2), (B, P, D))
  emb_b = enc(prompts=batched)
  chex.assert_shape(emb_b, (B, CFG.embed_dim))
  for i in range(B):
    chex.assert_trees_all_close(emb_b[i], enc(prompts=batched[i])[i],
                                atol=1e-5)


def test_deep_prompts(clip_and_params):
  model, variables = clip_and_params
  enc = lambda **kw: _encode(variables, _images(), **kw)[0]
  deep = jax.random.normal(jax.random.key(3), (CFG.vision.layers, P, D))
  emb_deep, tokens = _encode(variables, _images(), deep_prompts=deep)
  chex.assert_shape(emb_deep, (B, CFG.embed_dim))
  chex.assert_shape(tokens, (B, NUM_TOKENS + P, D))
  # Block 0's deep prompts replace the shallow ones, so those do not matter.
  shallow = jax.random.normal(jax.random.key(4), (P, D))
  chex.assert_trees_all_close(enc(prompts=shallow, deep_prompts=deep),
                              emb_deep, atol=1e-5)
  # Later layers' prompts do matter (a constant shift would be LayerNormed
  # away, so perturb randomly).
  deep2 = deep.at[1].add(jax.random.normal(jax.random.key(5), (P, D)))
  assert not np.allclose(enc(deep_prompts=deep2), emb_deep, atol=1e-4)
  # Batched deep prompts.
  deep_b = jnp.broadcast_to(deep[None], (B,) + deep.shape)
  chex.assert_trees_all_close(enc(deep_prompts=deep_b), emb_deep, atol=1e-5)


def test_prompt_errors(clip_and_params):
  model, variables = clip_and_params
  enc = lambda **kw: _encode(variables, _images(), **kw)[0]
  with pytest.raises(ValueError, match="deep_prompts"):
    enc(deep_prompts=jnp.zeros((CFG.vision.layers + 1, P, D)))
  with pytest.raises(ValueError, match="deep_prompts has"):
    enc(prompts=jnp.zeros((P + 1, D)),
        deep_prompts=jnp.zeros((CFG.vision.layers, P, D)))
  with pytest.raises(ValueError, match="prompts"):
    enc(prompts=jnp.zeros((B + 1, P, D)))
  with pytest.raises(ValueError, match=r"images must be \[B, 32, 32, 3\]"):
    _encode(variables, jnp.zeros((1, 16, 16, 3)))


def test_text_shapes_and_padding_after_eot_is_ignored(clip_and_params):
  model, variables = clip_and_params
  enc = lambda toks, **kw: model.apply(variables, toks,
                                       method=CLIP.encode_text, **kw)
  toks = _tokens()
  emb, tokens = enc(toks, return_tokens=True)
  chex.assert_shape(emb, (B, CFG.embed_dim))
  chex.assert_shape(tokens, (B, toks.shape[1], CFG.text.width))
  # Anything after the first EOT (padding, even a second EOT) is ignored...
  repadded = toks.at[0, 4:].set(jnp.array([2, 33, 44, 55]))
  chex.assert_trees_all_close(enc(repadded)[0], emb[0], atol=1e-5)
  # ...a token before it is not.
  changed = toks.at[0, 1].set(9)
  assert not np.allclose(enc(changed)[0], emb[0], atol=1e-4)
  # Pooling reads row 0's output at position 3 (its EOT).
  _, normed = enc(toks, return_tokens=True)
  proj = nn.unbox(variables)["params"]["txt"]["proj"]
  chex.assert_trees_all_close(normed[0, 3] @ proj, emb[0], atol=1e-5)


def test_text_argmax_pool_and_input_embeds():
  cfg = CFG.replace(text=dataclasses.replace(CFG.text, pool="argmax"))
  model = TextTransformer(cfg.text)
  toks = _tokens()
  variables = model.init(jax.random.key(0), toks)
  emb, normed = model.apply(variables, toks, return_tokens=True)
  proj = nn.unbox(variables)["params"]["proj"]
  where = np.argmax(np.asarray(toks), axis=-1)  # the highest id
  expected = normed[np.arange(B), where] @ proj
  chex.assert_trees_all_close(emb, expected, atol=1e-5)
  table = nn.unbox(variables)["params"]["token_embedding"]
  via_embeds = model.apply(variables, toks, input_embeds=table[toks])
  chex.assert_trees_all_close(via_embeds, emb, atol=1e-6)
  with pytest.raises(ValueError, match="input_embeds"):
    model.apply(variables, toks, input_embeds=table[toks][:, :-1])
  with pytest.raises(ValueError, match="tokens must be"):
    model.apply(variables, jnp.zeros((1, cfg.text.context_length + 1),
                                     jnp.int32))


def test_remat_and_bfloat16_agree(clip_and_params):
  _, variables = clip_and_params
  ref = CLIP(CFG).apply(variables, _images(), _tokens())
  remat = CFG.replace(remat=True)
  chex.assert_trees_all_close(CLIP(remat).apply(variables, _images(),
                                                _tokens()), ref, atol=1e-5)

  # The backward pass rematerialises the blocks (checked on the jaxpr:
  # compiling two gradients costs ~20 s of CPU here).
  def grad_jaxpr(cfg):
    loss = lambda v: CLIP(cfg).apply(v, _images(), _tokens())[0].sum()
    return str(jax.make_jaxpr(jax.grad(loss))(nn.unbox(variables)))
  assert "remat" in grad_jaxpr(remat)  # printed as remat2 in jax 0.10
  assert "remat" not in grad_jaxpr(CFG)

  bf16 = jax.jit(CLIP(CFG.replace(dtype="bfloat16")).apply,
                 static_argnames="method")(variables, _images(),
                                           method=CLIP.encode_image)
  assert bf16.dtype == jnp.bfloat16
  chex.assert_trees_all_close(bf16.astype(jnp.float32), ref[0], atol=0.1,
                              rtol=0.1)


def test_config_roundtrip_and_errors():
  for name, cfg in MODEL_PRESETS.items():
    again = CLIPConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg, name
  assert get_preset("B/32").vision.num_patches == 49
  with pytest.raises(ValueError, match=r"valid: \['B/16', 'B/32'"):
    get_preset("B/64")
  d = CFG.to_dict()
  d["vision"]["widht"] = 3
  with pytest.raises(ValueError, match="vision: unknown keys \\['widht'\\]"):
    CLIPConfig.from_dict(d)
  with pytest.raises(ValueError, match="not divisible"):
    CFG.replace(vision=dataclasses.replace(CFG.vision, heads=5))
  with pytest.raises(ValueError, match="dtype"):
    CFG.replace(dtype="float8")


def test_from_hf_config():
  hf = {"projection_dim": 64,
        "vision_config": {"image_size": 32, "patch_size": 8, "hidden_size": 32,
                          "num_hidden_layers": 2, "num_attention_heads": 4,
                          "intermediate_size": 40, "hidden_act": "quick_gelu",
                          "layer_norm_eps": 1e-5},
        "text_config": {"vocab_size": 99, "max_position_embeddings": 20,
                        "hidden_size": 48, "num_hidden_layers": 3,
                        "num_attention_heads": 4, "intermediate_size": 50,
                        "eos_token_id": 2}}
  cfg = CLIPConfig.from_hf(hf)
  assert (cfg.vision.width, cfg.text.width, cfg.embed_dim) == (32, 48, 64)
  assert cfg.text.context_length == 20 and cfg.text.pool == "argmax"
  hf["text_config"]["eos_token_id"] = 98
  assert CLIPConfig.from_hf(hf).text.pool == "eos"
  del hf["vision_config"]["patch_size"]
  with pytest.raises(ValueError, match="vision_config.patch_size"):
    CLIPConfig.from_hf(hf)


def test_conv_stem_shapes_names_and_errors():
  cfg = MODEL_PRESETS["tiny"]
  conv = cfg.replace(vision=dataclasses.replace(cfg.vision, stem="conv"))
  images = jnp.ones((2, 32, 32, 3))
  variables = VisionTransformer(conv.vision).init(jax.random.key(0), images)
  params = nn.unbox(variables)["params"]
  # patch 8 -> three stride-2 convolutions, the last bias-free and 'embed'-named like the patch conv.
  assert [k for k in params if k.startswith("stem_")] == ["stem_0", "stem_1", "stem_2"]
  assert "patch_embed" not in params and "bias" not in params["stem_2"]
  chex.assert_shape(params["stem_2"]["kernel"], (3, 3, None, conv.vision.width))
  out, tokens = VisionTransformer(conv.vision).apply(variables, images, return_tokens=True)
  chex.assert_shape(out, (2, conv.embed_dim))
  chex.assert_shape(tokens, (2, 1 + conv.vision.num_patches, conv.vision.width))
  with pytest.raises(ValueError, match="power-of-two"):
    cfg.replace(vision=dataclasses.replace(cfg.vision, stem="conv", patch_size=6, image_size=36))
  with pytest.raises(ValueError, match="stem"):
    cfg.replace(vision=dataclasses.replace(cfg.vision, stem="cnn"))


def test_towers_alone_from_their_own_configs(clip_and_params):
  """Each tower is built from its own config only; CLIP's towers are exactly those."""
  _, variables = clip_and_params
  params = nn.unbox(variables)["params"]
  vision = VisionConfig(image_size=32, patch_size=8, width=32, layers=2, heads=2, mlp_dim=64, embed_dim=24)
  assert vision == CFG.vision  # CLIPConfig forwarded its shared settings (embed_dim 24) into the tower
  images = _images()
  alone = VisionTransformer(vision)
  fresh = nn.unbox(alone.init(jax.random.key(0), images))["params"]
  chex.assert_trees_all_equal_shapes(fresh, params["img"])  # same tree, names and shapes as CLIP's img
  chex.assert_trees_all_close(alone.apply({"params": params["img"]}, images),
                              CLIP(CFG).apply(variables, images, method=CLIP.encode_image), atol=1e-6)
  text = TextConfig(vocab_size=100, context_length=16, width=32, layers=2, heads=2, mlp_dim=64,
                    eos_token_id=2, embed_dim=24)
  assert text == CFG.text
  chex.assert_trees_all_equal_shapes(nn.unbox(TextTransformer(text).init(jax.random.key(0), _tokens()))["params"],
                                     params["txt"])
  # A tower of another width: its own embed_dim, no CLIPConfig anywhere.
  wide = vision.replace(embed_dim=40, activation="gelu", layer_norm_eps=1e-6)
  out = VisionTransformer(wide).apply(VisionTransformer(wide).init(jax.random.key(1), images), images)
  chex.assert_shape(out, (B, 40))
  with pytest.raises(TypeError, match="takes a VisionConfig"):
    VisionTransformer(CFG).init(jax.random.key(0), images)
  with pytest.raises(TypeError, match="takes a TextConfig"):
    TextTransformer(CFG).init(jax.random.key(0), _tokens())


def test_clip_config_forwards_shared_settings():
  cfg = CFG.replace(dtype="bfloat16", remat=True, layer_norm_eps=1e-6, activation="gelu", embed_dim=16)
  for tower in (cfg.vision, cfg.text):
    assert (tower.dtype, tower.remat, tower.layer_norm_eps, tower.activation, tower.embed_dim) == (
        "bfloat16", True, 1e-6, "gelu", 16)
  assert cfg.vision.compute_dtype == jnp.bfloat16
  # The tower's own value of a shared setting is overwritten by CLIPConfig's.
  assert CFG.replace(vision=CFG.vision.replace(dtype="bfloat16")).vision.dtype == "float32"
  with pytest.raises(ValueError, match="vision must be a VisionConfig"):
    CLIPConfig(vision=CFG.text, text=CFG.text, embed_dim=8)
  with pytest.raises(ValueError, match="Invalid VisionConfig: image_size 30 is not a multiple"):
    CFG.vision.replace(image_size=30)
  with pytest.raises(ValueError, match="Invalid TextConfig: eos_token_id 100 outside"):
    CFG.text.replace(eos_token_id=100)
  with pytest.raises(ValueError, match="Invalid TextConfig: activation 'relu'"):
    CFG.text.replace(activation="relu")


def test_saved_config_json_stays_compatible():
  """clip_config.json as every earlier sgvu wrote it (shared settings only at the top level) loads unchanged;
  tower dicts may repeat a shared setting when they agree."""
  saved = {"vision": {"image_size": 48, "patch_size": 8, "width": 128, "layers": 4, "heads": 4, "mlp_dim": 512,
                      "stem": "conv"},
           "text": {"vocab_size": 1024, "context_length": 24, "width": 128, "layers": 3, "heads": 4,
                    "mlp_dim": 512, "eos_token_id": 2, "pool": "eos"},
           "embed_dim": 128, "layer_norm_eps": 1e-05, "activation": "quick_gelu", "remat": False,
           "dtype": "float32"}
  cfg = CLIPConfig.from_dict(saved)
  # Configs saved before `stem_depth` existed load as stem_depth=0: the conv stem those weights were trained with
  # (the synth-s preset has one residual conv per stage since session 4).
  before_stem_depth = MODEL_PRESETS["synth-s"].replace(
      vision=dataclasses.replace(MODEL_PRESETS["synth-s"].vision, stem_depth=0))
  assert cfg == before_stem_depth
  assert cfg.to_dict() == {**saved, "vision": {**saved["vision"], "stem_depth": 0}}  # written out explicitly now
  assert cfg.vision.embed_dim == 128 and cfg.text.embed_dim == 128
  full = json.loads(json.dumps(cfg.to_dict()))
  full["vision"].update(cfg.vision.to_dict())  # every tower key, shared ones included
  assert CLIPConfig.from_dict(full) == cfg
  full["text"]["dtype"] = "bfloat16"
  with pytest.raises(ValueError, match="text.dtype = 'bfloat16' differs from dtype = 'float32'"):
    CLIPConfig.from_dict(full)
  assert VisionConfig.from_dict(cfg.vision.to_dict()) == cfg.vision
  with pytest.raises(ValueError, match=r"VisionConfig: unknown keys \['depth'\]"):
    VisionConfig.from_dict(dict(cfg.vision.to_dict(), depth=3))
