"""Tiny MultiTalk transformers and inputs for the performance-path tests (CPU, fp32)."""

from __future__ import annotations

import torch

from multitalk_desktop.engine.transformer import MultiTalkTransformer3DModel

TINY = dict(
    num_attention_heads=2, attention_head_dim=8, in_channels=12, out_channels=4, text_dim=8,
    freq_dim=8, ffn_dim=32, num_layers=3, image_dim=12, added_kv_proj_dim=16, text_len=6,
    audio_window=5, vae_scale=4, intermediate_dim=8, output_dim=6, context_tokens=3,
    audio_blocks=2, audio_channels=4,
)


def tiny_model(seed: int = 0) -> MultiTalkTransformer3DModel:
    """Same seed, same weights: each profile test builds its own copy and compares with `full`."""
    torch.manual_seed(seed)
    return MultiTalkTransformer3DModel(**TINY).eval().requires_grad_(False)


def tiny_inputs(model, speakers: int = 2, video_frames: int = 9, hw=(4, 6), seed: int = 1) -> dict:
    cfg = model.config
    gen = torch.Generator().manual_seed(seed)
    latent_frames = (video_frames - 1) // cfg.vae_scale + 1
    masks = torch.zeros(3, *hw)
    masks[0, :, : hw[1] // 2] = 1
    masks[1, :, hw[1] // 2:] = 1
    audio = torch.randn(speakers, video_frames, cfg.audio_window, cfg.audio_blocks, cfg.audio_channels, generator=gen)
    return dict(
        hidden_states=torch.randn(1, cfg.in_channels, latent_frames, *hw, generator=gen),
        timestep=torch.tensor([731.25]),
        encoder_hidden_states=torch.randn(1, 4, cfg.text_dim, generator=gen),
        encoder_hidden_states_image=torch.randn(1, 5, cfg.image_dim, generator=gen),
        audio=audio,
        ref_target_masks=masks,
    )


def predict(model, inputs: dict, audio_context=None) -> torch.Tensor:
    """One forward; with `audio_context` the precomputed context replaces the raw audio (as the
    pipeline does: projected once per clip). Masks are ignored by the model for one voice."""
    args = dict(inputs)
    if audio_context is not None:
        args.pop("audio")
        args["audio_context"] = audio_context
    with torch.no_grad():
        return model(**args).sample


def rel_l2(value: torch.Tensor, reference: torch.Tensor) -> float:
    return float((value.double() - reference.double()).norm() / reference.double().norm())
