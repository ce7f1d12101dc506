"""The per-block audio cross-attention: every latent frame's video tokens attend only to that
frame's audio tokens. Parameter names (q_linear, kv_linear, proj) are the official ones.

Each frame has only M audio tokens (32 per voice), far fewer than the 5120 channels, so the two
5120x5120 projections over every video token (q_linear and proj: ~8% of a whole Wan forward at
480p) can be folded into the keys and values when heads x M < channels:

* output: proj(sum_j p_hj v_hj) = sum_(h,j) p_hj (W_proj[:, h] v_hj) + b, so the probabilities
  [tokens, heads x M] times U [heads x M, channels] per frame replace the attention's value step and
  the 5120x5120 projection (half the arithmetic with two voices, a quarter with one);
* scores without L-RoPE (one voice, the null audio): q_h . k_hj = x . (W_q[h]^T k_hj) + b_q[h] . k_hj,
  so x times K' [channels, heads x M] per frame replaces q_linear. With L-RoPE the queries are
  rotated per token and q_linear stays.

Scores are accumulated and kept in float32 (as the fused attention kernel does) and softmaxed in
float32. `lean_ops.reference_ops()` selects the straightforward path; tests compare the two.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from diffusers.models.attention_dispatch import dispatch_attention_fn

from multitalk_desktop.engine.fp8 import compute_weight
from multitalk_desktop.engine.lean_ops import lean_enabled, row_chunks
from multitalk_desktop.engine.lrope import apply_rope_1d

# Bytes of folded keys/values (K' or U) built at a time: bounds the transient memory per block.
FOLDED_CHUNK_BYTES = 128 * 2**20


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

        kv = self.kv_linear(audio_context.to(hidden_states.dtype))
        kv = kv.view(audio_context.shape[0], frames, audio_tokens, 2, heads, head_dim)
        key, value = kv.unbind(3)
        if key_positions is not None:
            key = apply_rope_1d(key, key_positions)
        if lean_enabled() and folding_pays(heads, audio_tokens, dim):
            return self._folded(hidden_states, key, value, query_positions)

        query = self.q_linear(hidden_states).view(batch, length, heads, head_dim)
        if query_positions is not None:
            query = apply_rope_1d(query, query_positions)
        query = query.reshape(batch * frames, per_frame, heads, head_dim)
        key = key.expand(batch, -1, -1, -1, -1).reshape(batch * frames, audio_tokens, heads, head_dim)
        value = value.expand(batch, -1, -1, -1, -1).reshape(batch * frames, audio_tokens, heads, head_dim)

        out = dispatch_attention_fn(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False)
        out = out.reshape(batch, length, dim).type_as(hidden_states)
        return self.proj(out)

    def _folded(
        self,
        hidden_states: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        query_positions: torch.Tensor | None,
    ) -> torch.Tensor:
        """The same attention with proj (and, without L-RoPE, q_linear) folded into the audio side.
        key/value [B or 1, N_t, M, H, D] (keys already rotated)."""
        batch, length, dim = hidden_states.shape
        frames, audio_tokens = key.shape[1], key.shape[2]
        per_frame = length // frames
        heads, head_dim = self.num_heads, self.head_dim
        folded = heads * audio_tokens
        dtype = hidden_states.dtype
        scale = head_dim**-0.5
        # Weights read directly: dequantised as the layer's own forward would (fp8 storage).
        w_proj = compute_weight(self.proj, dtype).view(dim, heads, head_dim).permute(1, 2, 0)  # [H, D, C]
        b_proj = self.proj.bias.to(dtype).view(1, 1, dim)
        if query_positions is None:
            w_q = compute_weight(self.q_linear, dtype).view(heads, head_dim, dim).transpose(1, 2)  # [H, C, D]
            b_q = self.q_linear.bias.float().view(heads, head_dim)
            queries = None
        else:
            queries = self.q_linear(hidden_states).view(batch, length, heads, head_dim)
            queries = apply_rope_1d(queries, query_positions, out=queries)
        frame_chunk = max(1, FOLDED_CHUNK_BYTES // (folded * dim * hidden_states.element_size()))
        out = torch.empty_like(hidden_states)
        for item in range(batch):
            audio_item = min(item, key.shape[0] - 1)
            x_frames = hidden_states[item].view(frames, per_frame, dim)
            out_frames = out[item].view(frames, per_frame, dim)
            for rows in row_chunks(frames, frame_chunk):
                k = key[audio_item, rows]  # [f, M, H, D]
                v = value[audio_item, rows]
                count = k.shape[0]
                if queries is None:
                    # K'[f, C, (h, j)] = W_q[h]^T k_hj; the bias term b_q[h] . k_hj per key.
                    k_heads = k.permute(2, 3, 0, 1).reshape(heads, head_dim, count * audio_tokens)
                    folded_keys = torch.matmul(w_q, k_heads).view(heads, dim, count, audio_tokens)
                    folded_keys = folded_keys.permute(2, 1, 0, 3).reshape(count, dim, folded)
                    key_bias = torch.einsum("hd,fmhd->fhm", b_q, k.float()).reshape(count, 1, folded)
                    scores = _matmul_float32(x_frames[rows], folded_keys).view(count, per_frame, folded)
                    scores = (scores + key_bias).mul_(scale).view(count, per_frame, heads, audio_tokens)
                else:
                    q = queries[item].view(frames, per_frame, heads, head_dim)[rows]
                    q_heads = q.permute(0, 2, 1, 3).reshape(count * heads, per_frame, head_dim)
                    k_heads = k.permute(0, 2, 3, 1).reshape(count * heads, head_dim, audio_tokens)
                    scores = _matmul_float32(q_heads, k_heads).mul_(scale)
                    scores = scores.view(count, heads, per_frame, audio_tokens).transpose(1, 2)
                probs = scores.softmax(dim=-1).to(dtype).reshape(count, per_frame, folded)
                # U[f, (h, j), C] = W_proj[:, h] v_hj
                v_heads = v.permute(2, 0, 1, 3).reshape(heads, count * audio_tokens, head_dim)
                values = torch.matmul(v_heads, w_proj).view(heads, count, audio_tokens, dim)
                values = values.permute(1, 0, 2, 3).reshape(count, folded, dim)
                torch.baddbmm(b_proj, probs, values, out=out_frames[rows])
        return out


def folding_pays(heads: int, audio_tokens: int, dim: int) -> bool:
    """Folding replaces a [dim x dim] projection by [heads*M x dim] work: worth it when smaller."""
    return heads * audio_tokens < dim


_FLOAT32_OUT: bool | None = None


def _matmul_float32(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batched a @ b accumulated and returned in float32. On CUDA, bf16/fp16 operands use the
    out_dtype overload (no float32 copies of the operands); elsewhere the product is upcast."""
    global _FLOAT32_OUT
    if a.dtype in (torch.float16, torch.bfloat16) and a.is_cuda and _FLOAT32_OUT is not False:
        try:
            result = torch.bmm(a, b, out_dtype=torch.float32)
            _FLOAT32_OUT = True
            return result
        except (TypeError, RuntimeError, NotImplementedError):
            _FLOAT32_OUT = False
    return torch.bmm(a, b).float()
