"""The per-block audio cross-attention: every latent frame's video tokens attend only to that
frame's audio tokens. Parameter names (q_linear, kv_linear, proj) are the official ones."""

from __future__ import annotations

import torch
import torch.nn as nn
from diffusers.models.attention_dispatch import dispatch_attention_fn

from multitalk_desktop.engine.lrope import apply_rope_1d


class AudioCrossAttention(nn.Module):
    def __init__(self, dim: int, audio_dim: int, num_heads: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q_linear = nn.Linear(dim, dim)
        # K and V stacked in one projection (K first), as in the official checkpoint.
        self.kv_linear = nn.Linear(audio_dim, dim * 2)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self,
        hidden_states: torch.Tensor,
        audio_context: torch.Tensor,
        query_positions: torch.Tensor | None = None,
        key_positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """hidden_states [B, N_t*S, dim] (normalised video tokens, frame-major), audio_context
        [B or 1, N_t, N_a, audio_dim]. With L-RoPE (two speakers) query_positions [B, N_t*S] and
        key_positions [N_a] rotate q and k; without them the plain path runs."""
        batch, length, dim = hidden_states.shape
        frames, audio_tokens = audio_context.shape[1], audio_context.shape[2]
        if length % frames:
            raise ValueError(f"{length} video tokens do not split into {frames} latent frames")
        per_frame = length // frames
        heads, head_dim = self.num_heads, self.head_dim

        query = self.q_linear(hidden_states).view(batch, length, heads, head_dim)
        if query_positions is not None:
            query = apply_rope_1d(query, query_positions)
        query = query.reshape(batch * frames, per_frame, heads, head_dim)

        kv = self.kv_linear(audio_context.to(hidden_states.dtype))
        kv = kv.view(audio_context.shape[0], frames, audio_tokens, 2, heads, head_dim)
        key, value = kv.unbind(3)
        if key_positions is not None:
            key = apply_rope_1d(key, key_positions)
        key = key.expand(batch, -1, -1, -1, -1).reshape(batch * frames, audio_tokens, heads, head_dim)
        value = value.expand(batch, -1, -1, -1, -1).reshape(batch * frames, audio_tokens, heads, head_dim)

        out = dispatch_attention_fn(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False)
        out = out.reshape(batch, length, dim).type_as(hidden_states)
        return self.proj(out)
