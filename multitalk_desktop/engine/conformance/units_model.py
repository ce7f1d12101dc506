"""Conformance handlers for the model units: `transformer` (the MultiTalk DiT forward) and
`wav2vec` (speech features). They build the engine's own model classes from the case's JSON and
tensor shapes, load the official-named parameters through the engine's loaders and run the same
forward the engine uses; intermediates come out of that forward's `intermediates` dict."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

_SKIPPED = "__skipped__"
_MODEL_CACHE: dict[tuple[str, str], Any] = {}


def _params(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # Stored as float16/float8 where they fit exactly: float32 is the compute dtype of the fixtures.
    return {k[len("param."):]: v.float() for k, v in tensors.items() if k.startswith("param.")}


def _common_meta(case) -> dict[str, Any]:
    common_file = case.meta.get("common_file")
    if not isinstance(common_file, str):
        return {}
    path = Path(case.folder) / (Path(common_file).stem + ".json")
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _transformer_config(case, params: dict[str, torch.Tensor]) -> dict[str, Any]:
    from multitalk_desktop.engine.weights import model_config_from_official

    common = _common_meta(case)
    official = dict((common.get("config") or {}).get("wan_model_kwargs") or case.meta.get("config") or {})
    patched = (common.get("config") or {}).get("audio_proj_model_constructor_defaults_patched") or {}
    # Sizes the JSON may leave out are read off the parameters and inputs.
    patch = params["patch_embedding.weight"]
    official.setdefault("dim", patch.shape[0])
    official.setdefault("in_dim", patch.shape[1])
    official.setdefault("patch_size", list(patch.shape[2:]))
    official.setdefault("ffn_dim", params["blocks.0.ffn.0.weight"].shape[0])
    official.setdefault("freq_dim", params["time_embedding.0.weight"].shape[1])
    official.setdefault("text_dim", params["text_embedding.0.weight"].shape[1])
    official.setdefault("out_dim", params["head.head.weight"].shape[0] // math.prod(official["patch_size"]))
    official.setdefault("num_layers", len({k.split(".")[1] for k in params if k.startswith("blocks.")}))
    official.setdefault("intermediate_dim", params["audio_proj.proj1.weight"].shape[0])
    official.setdefault("output_dim", params["blocks.0.audio_cross_attn.kv_linear.weight"].shape[1])
    official.setdefault(
        "context_tokens", params["audio_proj.proj3.weight"].shape[0] // int(official["output_dim"])
    )
    audio = case.tensors["in.audio"]
    official.setdefault("audio_window", audio.shape[2])
    blocks = patched.get("blocks", audio.shape[3])
    channels = patched.get("channels", audio.shape[4])
    per_frame = blocks * channels
    official.setdefault(
        "vae_scale", params["audio_proj.proj1_vf.weight"].shape[1] // per_frame - int(official["audio_window"]) + 1
    )
    if "num_heads" not in official:
        raise ValueError("the case names no head count (config.wan_model_kwargs.num_heads)")
    return model_config_from_official({"config": {"wan_model_kwargs": official,
                                                  "audio_proj_model_constructor_defaults_patched":
                                                  {"blocks": blocks, "channels": channels}}})


def _transformer_model(case):
    from multitalk_desktop.engine.transformer import MultiTalkTransformer3DModel
    from multitalk_desktop.engine.weights import load_official_state_dict

    key = (str(Path(case.folder).resolve()), str(case.meta.get("common_file")))
    if key not in _MODEL_CACHE:
        source = case.common if case.common is not None else case.tensors
        params = _params(source)
        model = MultiTalkTransformer3DModel(**_transformer_config(case, params)).eval()
        load_official_state_dict(model, params, strict=True)
        _MODEL_CACHE.clear()
        _MODEL_CACHE[key] = model
    return _MODEL_CACHE[key]


def run_transformer(case) -> dict[str, Any]:
    from multitalk_desktop.engine.transformer import token_ref_masks

    model = _transformer_model(case)
    tensors = case.tensors
    common = case.common or {}
    clip = tensors.get("in.clip_fea", common.get("in.clip_fea"))
    latent = torch.cat([tensors["in.x"].float(), tensors["in.y"].float()], dim=1)
    masks = tensors["in.ref_target_masks"].float()
    found: dict[str, Any] = {}
    with torch.no_grad():
        output = model(
            latent,
            tensors["in.t"].float(),
            tensors["in.context"].float(),
            None if clip is None else clip.float(),
            audio=tensors["in.audio"].float(),
            ref_target_masks=masks,
            intermediates=found,
        ).sample

    results: dict[str, Any] = {"out.noise_pred": output}
    skipped: dict[str, str] = {}
    grid_hw = tuple(d // p for d, p in zip(latent.shape[3:], model.config.patch_size[1:], strict=True))
    if found.get("token_ref_target_masks") is None:
        # One voice: the forward ignores masks; the conversion itself is still the engine's.
        found["token_ref_target_masks"] = token_ref_masks(masks, grid_hw)
    for name in ("audio_tokens", "audio_proj_input_first", "audio_proj_input_latter", "audio_context",
                 "token_ref_target_masks", "time_embedding_e", "time_projection_e0", "blocks_input"):
        results[f"out.{name}"] = found[name]
    for index, block in enumerate(found["blocks"]):
        for name, value in block.items():
            key = f"out.blocks.{index}.{name}"
            if value is None:
                skipped[key] = "one voice: the port skips the reference-attention map (unused without L-RoPE)"
            elif name == "x_ref_attn_map":
                results[key] = value[0]  # [B, 3, L] -> the official single-sample [3, L]
            else:
                results[key] = value
    results = {k: v for k, v in results.items() if k in tensors}
    results[_SKIPPED] = {k: v for k, v in skipped.items() if k in tensors}
    return results


def run_wav2vec(case) -> dict[str, Any]:
    from multitalk_desktop.engine.wav2vec import (
        build_wav2vec_model,
        encode_speech,
        load_wav2vec_state_dict,
    )

    meta = case.meta
    model = build_wav2vec_model(meta["config"], meta.get("attn_implementation", "sdpa"))
    load_wav2vec_state_dict(model, _params(case.tensors), strict=True)
    speech = case.tensors["in.speech"]
    speech = speech.float() / 32768.0 if speech.dtype == torch.int16 else speech.float()
    found: dict[str, Any] = {}
    emb = encode_speech(speech.numpy(), model, meta.get("feature_extractor"), found)
    results = {
        "out.audio_emb": emb,
        "out.conv_features": found["conv_features"],
        "out.interpolated_features": found["interpolated_features"],
        "out.input_values": found["input_values"],
    }
    results = {k: v for k, v in results.items() if k in case.tensors}
    results[_SKIPPED] = {}
    return results


HANDLERS = {"transformer": run_transformer, "wav2vec": run_wav2vec}
