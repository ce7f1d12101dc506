"""The conditioning encoders around the backbone: prompt (UMT5), image (CLIP), condition frames
(VAE encode + the 4-channel mask), speech (wav2vec2), and VAE decoding of finished latents.

Each function takes the loaded models and plain tensors, and returns tensors on the models' device;
none keeps state, so the pipeline decides what is computed once per job and what per clip.
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from multitalk_desktop.engine.loaders import LoadedModels

# wan/configs/wan_multitalk_14B.py: the English negative prompt of the official MultiTalk config.
DEFAULT_NEGATIVE_PROMPT = (
    "bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, "
    "static, overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, "
    "extra fingers, poorly drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, "
    "fused fingers, still picture, messy background, three legs, many people in the background, "
    "walking backwards"
)


def clean_prompt(text: str) -> str:
    """The official tokenizer's 'whitespace' cleaning: ftfy (when installed), HTML unescaping
    twice, whitespace collapsed."""
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:
        pass
    text = html.unescape(html.unescape(text))
    return re.sub(r"\s+", " ", text).strip()


def encode_prompt(models: LoadedModels, text: str) -> torch.Tensor:
    """UMT5 hidden states [1, tokens, text_dim] of the real tokens only (the backbone zero-pads
    them to its text_len, 512 for the real model: padded positions are attended to, as officially)."""
    import torch

    text_len = int(models.transformer.config.text_len)
    batch = models.tokenizer(
        [clean_prompt(text)], padding="max_length", max_length=text_len, truncation=True,
        add_special_tokens=True, return_attention_mask=True, return_tensors="pt",
    )
    device = models.plan.device
    ids, mask = batch.input_ids.to(device), batch.attention_mask.to(device)
    with torch.no_grad():
        hidden = models.text_encoder(ids, mask).last_hidden_state
    length = int(mask.sum())
    return hidden[:, :length].to(models.plan.dtype)


def encode_clip(models: LoadedModels, frames: torch.Tensor) -> torch.Tensor:
    """CLIP penultimate-layer tokens [1, 257, image_dim] of the LAST frame of `frames`
    [1, 3, T, H, W] in [-1, 1], with the official squash-to-224 preprocessing (no centre crop)."""
    import torch

    from multitalk_desktop.engine.preprocess import clip_input

    pixels = clip_input(frames[:, :, -1:].float().cpu()).to(models.plan.device, models.image_encoder.dtype)
    with torch.no_grad():
        out = models.image_encoder(pixel_values=pixels, output_hidden_states=True)
    return out.hidden_states[-2].to(models.plan.dtype)


def latent_stats(vae) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    cfg = vae.config
    mean = torch.tensor(cfg.latents_mean).view(1, cfg.z_dim, 1, 1, 1)
    std = torch.tensor(cfg.latents_std).view(1, cfg.z_dim, 1, 1, 1)
    return mean, std


def encode_condition(models: LoadedModels, cond_frames: torch.Tensor, frame_num: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The I2V condition for one clip.

    cond_frames [1, 3, n, H, W] in [-1, 1] (n = 1: the reference image; n = 25: motion frames) are
    followed by zeros up to `frame_num`, VAE-encoded (posterior mode) and normalised with the
    VAE's latents_mean/std. Returns (y [1, 4 + z, T_lat, h, w] = mask channels then latents, in the
    model dtype; motion latents [z, 1 + (n-1)//4, h, w] float32, the first latents of y)."""
    import torch

    from multitalk_desktop.engine.streaming import condition_mask, motion_latent_frames

    vae = models.vae
    device = models.plan.device
    _, _, n, height, width = cond_frames.shape
    video = torch.cat(
        [cond_frames.float(), torch.zeros(1, 3, frame_num - n, height, width)], dim=2
    ).to(device, vae.dtype)
    with torch.no_grad():
        latent = vae.encode(video).latent_dist.mode()
    mean, std = latent_stats(vae)
    latent = (latent.float() - mean.to(device)) / std.to(device)
    lat_h, lat_w = latent.shape[-2:]
    mask = condition_mask(n, frame_num, lat_h, lat_w).to(device)[None]
    y = torch.cat([mask, latent], dim=1).to(models.plan.dtype)
    motion = latent[0, :, : motion_latent_frames(n)].clone()
    return y, motion


def decode_latents(models: LoadedModels, latent: torch.Tensor) -> torch.Tensor:
    """Normalised latents [z, T, h, w] -> frames [1, 3, 4(T-1)+1, H, W] float32 in [-1, 1] (CPU)."""
    import torch

    vae = models.vae
    mean, std = latent_stats(vae)
    device = models.plan.device
    z = latent[None].float() * std.to(device) + mean.to(device)
    from multitalk_desktop.engine.vae_tiles import planned_tiling

    tile_area = models.applied.vae_tile_area if models.applied is not None else None
    with torch.no_grad(), planned_tiling(vae, tuple(z.shape[-2:]), tile_area):
        frames = vae.decode(z.to(vae.dtype)).sample
    return frames.float().clamp(-1, 1).cpu()


def encode_speech_tracks(models: LoadedModels, tracks: list[np.ndarray]) -> list[torch.Tensor]:
    """wav2vec2 features [frames, layers, channels] for each prepared 16 kHz track, computed over
    the whole track once (per-clip windows are cut from these)."""
    from multitalk_desktop.engine.wav2vec import encode_speech

    return [
        encode_speech(track.astype(np.float32), models.wav2vec, models.wav2vec_settings).cpu()
        for track in tracks
    ]
