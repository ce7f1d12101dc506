"""Official Wan/MultiTalk checkpoints -> `MultiTalkTransformer3DModel`.

Backbone keys are renamed to diffusers' names (table in docs/ENGINE_MODEL.md). The audio keys
(`audio_proj.*`, `blocks.N.audio_cross_attn.*`, `blocks.N.norm_x.*`) keep their official names and
pass through untouched: diffusers' own Wan converter rewrites anything containing `cross_attn`, which
would turn `audio_cross_attn` into `audio_attn2` and drop those weights.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from multitalk_desktop.errors import ModelFilesError

_AUDIO_KEY = re.compile(r"^(audio_proj\.|blocks\.\d+\.(audio_cross_attn|norm_x)\.)")

# Official module path -> diffusers module path, matched on whole dotted components.
_TOP_LEVEL = {
    "text_embedding.0": "condition_embedder.text_embedder.linear_1",
    "text_embedding.2": "condition_embedder.text_embedder.linear_2",
    "time_embedding.0": "condition_embedder.time_embedder.linear_1",
    "time_embedding.2": "condition_embedder.time_embedder.linear_2",
    "time_projection.1": "condition_embedder.time_proj",
    "img_emb.proj.0": "condition_embedder.image_embedder.norm1",
    "img_emb.proj.1": "condition_embedder.image_embedder.ff.net.0.proj",
    "img_emb.proj.3": "condition_embedder.image_embedder.ff.net.2",
    "img_emb.proj.4": "condition_embedder.image_embedder.norm2",
    "head.head": "proj_out",
    "head.modulation": "scale_shift_table",
    "patch_embedding": "patch_embedding",
}
_IN_BLOCK = {
    "self_attn.q": "attn1.to_q",
    "self_attn.k": "attn1.to_k",
    "self_attn.v": "attn1.to_v",
    "self_attn.o": "attn1.to_out.0",
    "self_attn.norm_q": "attn1.norm_q",
    "self_attn.norm_k": "attn1.norm_k",
    "cross_attn.q": "attn2.to_q",
    "cross_attn.k": "attn2.to_k",
    "cross_attn.v": "attn2.to_v",
    "cross_attn.o": "attn2.to_out.0",
    "cross_attn.norm_q": "attn2.norm_q",
    "cross_attn.norm_k": "attn2.norm_k",
    "cross_attn.k_img": "attn2.add_k_proj",
    "cross_attn.v_img": "attn2.add_v_proj",
    "cross_attn.norm_k_img": "attn2.norm_added_k",
    # The official pre-cross-attention LayerNorm is norm3; its FFN norm (norm2) has no parameters.
    "norm3": "norm2",
    "ffn.0": "ffn.net.0.proj",
    "ffn.2": "ffn.net.2",
    "modulation": "scale_shift_table",
}
_PREFIXES = ("model.diffusion_model.", "diffusion_model.")


def _rename(key: str) -> str:
    if _AUDIO_KEY.match(key):
        return key
    block = re.match(r"^(blocks\.\d+)\.(.+)$", key)
    if block:
        prefix, rest = block.groups()
        table = _IN_BLOCK
    else:
        prefix, rest, table = "", key, _TOP_LEVEL
    # Longest official module path that the key starts with, on a component boundary.
    for official in sorted(table, key=len, reverse=True):
        if rest == official or rest.startswith(official + "."):
            rest = table[official] + rest[len(official):]
            break
    return f"{prefix}.{rest}" if prefix else rest


def convert_official_backbone_keys(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Official MultiTalk/Wan state dict -> diffusers names; audio keys and unknown keys unchanged."""
    converted: dict[str, Any] = {}
    for key, value in state_dict.items():
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        converted[_rename(key)] = value
    return converted


def load_official_state_dict(model: torch.nn.Module, state_dict: Mapping[str, Any], strict: bool = True):
    """Load official-named weights into a MultiTalkTransformer3DModel (values are cast to the
    model's dtypes). With strict=True any missing or unexpected key raises ModelFilesError."""
    converted = convert_official_backbone_keys(state_dict)
    result = model.load_state_dict(converted, strict=False)
    if strict and (result.missing_keys or result.unexpected_keys):
        raise ModelFilesError(
            "The transformer weights do not match the model: "
            f"{len(result.missing_keys)} missing (e.g. {result.missing_keys[:3]}), "
            f"{len(result.unexpected_keys)} unexpected (e.g. {result.unexpected_keys[:3]}).",
            "Check that the Wan2.1-I2V-14B shards and multitalk.safetensors are complete.",
        )
    return result


def model_config_from_official(official: Mapping[str, Any]) -> dict[str, Any]:
    """Config kwargs for MultiTalkTransformer3DModel from an official WanModel config: either the
    WanModel kwargs (`dim`, `num_heads`, ...) or a fixture's common JSON (its `config` holds
    `wan_model_kwargs` and the patched AudioProjModel `blocks`/`channels`)."""
    config = official.get("config", official)
    kwargs = config.get("wan_model_kwargs", config)
    audio_proj = config.get("audio_proj_model_constructor_defaults_patched", {})
    dim, heads = int(kwargs["dim"]), int(kwargs["num_heads"])
    if dim % heads:
        raise ModelFilesError(f"Model config: dim {dim} is not divisible by num_heads {heads}.")
    if kwargs.get("model_type", "i2v") != "i2v":
        raise ModelFilesError("MultiTalk needs the image-to-video (i2v) Wan model.")
    return {
        "patch_size": tuple(kwargs.get("patch_size", (1, 2, 2))),
        "num_attention_heads": heads,
        "attention_head_dim": dim // heads,
        "in_channels": int(kwargs.get("in_dim", 36)),
        "out_channels": int(kwargs.get("out_dim", 16)),
        "text_dim": int(kwargs.get("text_dim", 4096)),
        "freq_dim": int(kwargs.get("freq_dim", 256)),
        "ffn_dim": int(kwargs["ffn_dim"]),
        "num_layers": int(kwargs["num_layers"]),
        "cross_attn_norm": bool(kwargs.get("cross_attn_norm", True)),
        "qk_norm": "rms_norm_across_heads" if kwargs.get("qk_norm", True) else None,
        "eps": float(kwargs.get("eps", 1e-6)),
        # The official I2V model hard-codes MLPProj(1280, dim) for the CLIP ViT-H tokens.
        "image_dim": 1280,
        "added_kv_proj_dim": dim,
        "text_len": int(kwargs.get("text_len", 512)),
        "audio_window": int(kwargs.get("audio_window", 5)),
        "vae_scale": int(kwargs.get("vae_scale", 4)),
        "intermediate_dim": int(kwargs.get("intermediate_dim", 512)),
        "output_dim": int(kwargs.get("output_dim", 768)),
        "context_tokens": int(kwargs.get("context_tokens", 32)),
        "audio_blocks": int(audio_proj.get("blocks", kwargs.get("audio_blocks", 12))),
        "audio_channels": int(audio_proj.get("channels", kwargs.get("audio_channels", 768))),
        "norm_input_visual": bool(kwargs.get("norm_input_visual", True)),
        "norm_output_audio": bool(kwargs.get("norm_output_audio", True)),
    }
