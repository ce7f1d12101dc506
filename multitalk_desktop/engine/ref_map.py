"""The two-speaker reference-attention map as one fused attention call.

The model's `transformer.reference_attention_map` follows the official code: for every video token
and head, softmax(q k_ref / sqrt(d)) over the reference frame's tokens in fp32, then the mass inside
each person's mask divided by its area, averaged over heads, in query-row chunks. At 480p that is a
[20 heads, 4096, 1560] fp32 probability tensor written and read 16 times per block (about 1 s per
forward over 40 blocks, from the arithmetic; the GPU benchmark measures it).

The same numbers are an attention whose values are the masks: sum_j p_ij * mask_c[j] / area_c is
attention(q, k_ref, V) with V[j, c] = mask_c[j] / area_c. One `scaled_dot_product_attention` call
(a fused flash kernel on the GPU, in the model dtype) gives every class at once and never stores the
probabilities. In fp32 it matches the reference to rounding (tests/perf); in bf16 the map moves by
about bf16's resolution, which the benchmark reports next to the speed-up.

The model uses this form (`transformer.reference_attention_map` calls it); `fused_reference_map()`
swaps it in explicitly for a block of code, which the tests use to compare it with the explicit map.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F


def reference_attention_map_fused(
    query: torch.Tensor,
    key: torch.Tensor,
    tokens_per_frame: int,
    token_masks: torch.Tensor,
    split_num: int = 2,
) -> torch.Tensor:
    """Drop-in for `transformer.reference_attention_map`: query/key [B, L, H, D] after RoPE,
    token_masks [C, tokens_per_frame] -> [B, C, L] float32. Heads beyond the largest multiple of
    `split_num` are left out and empty classes give zeros, as there."""
    batch, length, heads, head_dim = query.shape
    split_num = max(1, min(split_num, heads))
    used = (heads // split_num) * split_num
    masks = token_masks.to(device=query.device, dtype=torch.float32)
    classes = masks.shape[0]
    if classes > head_dim:
        raise ValueError(f"{classes} mask classes do not fit a head of {head_dim} values")
    areas = masks.sum(dim=-1)
    inv_area = torch.where(areas > 0, 1.0 / areas.clamp(min=1.0), torch.zeros_like(areas))
    q = query[:, :, :used].transpose(1, 2)  # [B, H, L, D]
    k = key[:, :tokens_per_frame, :used].transpose(1, 2)  # [B, H, S, D]
    # Values padded to the head size so the fused kernels (equal q/k/v head dims) apply.
    values = torch.zeros(batch, used, tokens_per_frame, head_dim, device=query.device, dtype=query.dtype)
    values[..., :classes] = (masks * inv_area[:, None]).T.to(query.dtype)
    out = F.scaled_dot_product_attention(q, k, values)  # [B, H, L, D]
    return out[..., :classes].float().mean(dim=1).transpose(1, 2).contiguous()


@contextlib.contextmanager
def fused_reference_map() -> Iterator[None]:
    """Within the block, the MultiTalk processors compute the map with the fused version."""
    from multitalk_desktop.engine import transformer

    original = transformer.reference_attention_map
    transformer.reference_attention_map = reference_attention_map_fused
    try:
        yield
    finally:
        transformer.reference_attention_map = original
