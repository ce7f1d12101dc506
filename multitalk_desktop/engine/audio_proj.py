"""MultiTalk's audio adapter: wav2vec windows -> per-latent-frame audio context tokens.

Parameter names follow the official `AudioProjModel` (proj1, proj1_vf, proj2, proj3, norm) so the
official `multitalk.safetensors` loads verbatim.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from diffusers.models.normalization import FP32LayerNorm

from multitalk_desktop.errors import MultiTalkError


def check_frame_count(video_frames: int, vae_scale: int) -> None:
    """The VAE packs frame 0 alone and every following `vae_scale` frames into one latent, so a clip
    must have vae_scale*n + 1 frames (81 for the real model)."""
    if video_frames < 1 or (video_frames - 1) % vae_scale != 0:
        below = (max(video_frames - 1, 0) // vae_scale) * vae_scale + 1
        raise MultiTalkError(
            f"A clip must have {vae_scale}n+1 video frames (e.g. {below} or {below + vae_scale}); "
            f"got {video_frames}.",
            "Use a frame count such as 81; the audio windows are cut per video frame.",
        )


def split_audio_windows(
    audio: torch.Tensor, audio_window: int, vae_scale: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split windowed wav2vec features [speakers, frames, window, layers, channels] into the
    first frame's full window [speakers, 1, window, L, C] and, for every later latent frame (a group
    of `vae_scale` video frames), `window + vae_scale - 1` vectors [speakers, n, window+vae_scale-1,
    L, C]: the first `window//2 + 1` of the group's first frame, the centre of its inner frames and
    the last `window - window//2` of its last frame (the official reduction)."""
    if audio.ndim != 5:
        raise MultiTalkError(
            f"Audio embeddings must be [speakers, frames, window, layers, channels]; got shape "
            f"{tuple(audio.shape)}."
        )
    speakers, frames, window = audio.shape[:3]
    if window != audio_window:
        raise MultiTalkError(f"Audio windows have {window} entries; the model expects {audio_window}.")
    check_frame_count(frames, vae_scale)
    middle = audio_window // 2
    first = audio[:, :1]
    groups = audio[:, 1:].reshape(speakers, (frames - 1) // vae_scale, vae_scale, *audio.shape[2:])
    head = groups[:, :, 0, : middle + 1]
    inner = groups[:, :, 1:-1, middle]
    tail = groups[:, :, -1, middle:]
    return first, torch.cat([head, inner, tail], dim=2)


class AudioProjModel(nn.Module):
    """Two windows of wav2vec features per latent frame -> `context_tokens` tokens of `output_dim`."""

    def __init__(
        self,
        seq_len: int = 5,
        seq_len_vf: int = 8,
        blocks: int = 12,
        channels: int = 768,
        intermediate_dim: int = 512,
        output_dim: int = 768,
        context_tokens: int = 32,
        norm_output_audio: bool = True,
    ) -> None:
        super().__init__()
        self.context_tokens = context_tokens
        self.output_dim = output_dim
        self.proj1 = nn.Linear(seq_len * blocks * channels, intermediate_dim)
        self.proj1_vf = nn.Linear(seq_len_vf * blocks * channels, intermediate_dim)
        self.proj2 = nn.Linear(intermediate_dim, intermediate_dim)
        self.proj3 = nn.Linear(intermediate_dim, context_tokens * output_dim)
        # nn.LayerNorm's default eps (1e-5) as in the official model; computed in fp32 for bf16 runs.
        self.norm = (
            FP32LayerNorm(output_dim, eps=1e-5, elementwise_affine=True)
            if norm_output_audio
            else nn.Identity()
        )

    def forward(self, first_frame: torch.Tensor, latter_frames: torch.Tensor) -> torch.Tensor:
        """first_frame [B, 1, w, L, C], latter_frames [B, n, w', L, C] -> [B, 1+n, tokens, out]."""
        speakers = first_frame.shape[0]
        first = torch.relu(self.proj1(first_frame.flatten(2)))
        latter = torch.relu(self.proj1_vf(latter_frames.flatten(2)))
        hidden = torch.relu(self.proj2(torch.cat([first, latter], dim=1)))
        tokens = self.proj3(hidden).reshape(speakers, hidden.shape[1], self.context_tokens, self.output_dim)
        return self.norm(tokens)
