"""The block's token-wise arithmetic, written to move fewer bytes.

At 480p a block's activations are 32,760 tokens x 5120 channels (335 MB in bf16). Its norms,
modulations, rotations and gated residuals are memory-bound, and written the straightforward way (as
diffusers and the official code write them) each makes several full-size float32 temporaries: the
first modulated norm alone reads and writes about 18 x 335 MB. Here each is the same formula in
float32 with the result rounded to the activation dtype once, as before, but in one or two kernels:

* a norm followed by `* (1 + scale) + shift` is one float32 `layer_norm` per token chunk whose
  affine weight and bias ARE `1 + scale` and `shift`;
* `x + update * gate` is one `addcmul` writing into a bf16 tensor (computed in float32);
* RoPE multiplies complex pairs in token chunks (the float32 temporaries stay small);
* q/k RMS norms are `torch.rms_norm` then the weight, the rounding points of diffusers' RMSNorm.

On the CPU the results are bit-identical to the straightforward forms (tests/engine); on the GPU a
fused multiply-add may move a value by one float32 ulp before the bf16 rounding. `reference_ops()`
switches the model back to the straightforward arithmetic: the tests and bench/gpu_bench.py compare.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.models.normalization import RMSNorm as DiffusersRMSNorm

# Rows (tokens) of float32 temporaries at a time in the chunked ops: 8192 x 5120 x 4 B = 168 MB.
TOKEN_CHUNK = 8192

_lean = True


def lean_enabled() -> bool:
    return _lean


@contextlib.contextmanager
def reference_ops() -> Iterator[None]:
    """Within the block the model computes with the straightforward arithmetic."""
    global _lean
    previous, _lean = _lean, False
    try:
        yield
    finally:
        _lean = previous


def row_chunks(length: int, chunk: int | None = None) -> Iterator[slice]:
    """Slices of at most `chunk` rows (TOKEN_CHUNK, read at call time, when not given)."""
    step = chunk or TOKEN_CHUNK or length
    step = max(step, 1)
    for start in range(0, length, step):
        yield slice(start, min(start + step, length))


# --------------------------------------------------------------------------- norms


def modulated_layer_norm(
    norm: nn.LayerNorm, x: torch.Tensor, scale: torch.Tensor | None = None, shift: torch.Tensor | None = None
) -> torch.Tensor:
    """`(norm(x.float()) * (1 + scale) + shift).type_as(x)` (or `norm(x.float()).type_as(x)` without
    scale/shift) for x [B, L, C] and scale/shift [B or 1, 1, C] float32: one float32 layer_norm per
    token chunk whose affine parameters are the modulation (CUDA's layer_norm takes no float32
    weights on bf16 input, so each chunk is upcast; the temporaries stay chunk-sized)."""
    weight = norm.weight.float() if norm.weight is not None else None
    bias = norm.bias.float() if norm.bias is not None else None
    if scale is not None and (weight is not None or bias is not None):
        # folding the modulation into an affine norm would change the rounding: no shortcut
        return (norm(x.float()) * (1 + scale) + shift).type_as(x)
    out = torch.empty_like(x)
    for item in range(x.shape[0]):
        gain, offset = weight, bias
        if scale is not None:
            gain = 1 + scale[min(item, scale.shape[0] - 1)].reshape(-1).float()
            offset = shift[min(item, shift.shape[0] - 1)].reshape(-1).float()
        for rows in row_chunks(x.shape[1]):
            out[item, rows] = F.layer_norm(x[item, rows].float(), norm.normalized_shape, gain, offset, norm.eps)
    return out


def heads_rms_norm(norm: nn.Module, x: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
    """q/k RMS norm over x [B, L, C] in token chunks (the norm is per token), so its float32
    temporaries exist for one chunk at a time. diffusers' RMSNorm keeps its rounding points
    (normalise in float32, round to the weight's dtype, multiply by the weight); any other norm
    (torch's nn.RMSNorm, which diffusers' Wan uses) is called on each chunk."""
    if isinstance(norm, nn.Identity):
        return x
    if isinstance(norm, DiffusersRMSNorm) and norm.bias is None:
        weight = norm.weight

        def apply(part: torch.Tensor) -> torch.Tensor:
            if weight is None:
                return torch.rms_norm(part, tuple(norm.dim), None, norm.eps)
            if weight.dtype in (torch.float16, torch.bfloat16):
                return torch.rms_norm(part.to(weight.dtype), tuple(norm.dim), None, norm.eps) * weight
            return torch.rms_norm(part, tuple(norm.dim), None, norm.eps) * weight
    else:
        apply = norm
    if x.dim() < 2 or x.shape[-2] <= (chunk or TOKEN_CHUNK):
        return apply(x)
    out = None
    for rows in row_chunks(x.shape[-2], chunk):
        part = apply(x[..., rows, :])
        if out is None:
            out = x.new_empty(x.shape, dtype=part.dtype)
        out[..., rows, :] = part
    return out


# --------------------------------------------------------------------------- residuals


def gated_add(
    residual: torch.Tensor, update: torch.Tensor, gate: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """`(residual.float() + update * gate).type_as(residual)` in one kernel. `out` may be
    `residual` itself (in place) where the caller owns it."""
    if out is None:
        out = torch.empty_like(residual)
    return torch.addcmul(residual, update, gate, out=out)


# --------------------------------------------------------------------------- rotary embeddings


def complex_rope_table(freqs_cos: torch.Tensor, freqs_sin: torch.Tensor) -> torch.Tensor:
    """diffusers' Wan RoPE (cos, sin) [1, N, 1, D], each value repeated for its pair, ->
    complex64 [1, N, 1, D/2]."""
    return torch.complex(freqs_cos[..., 0::2].float(), freqs_sin[..., 1::2].float())


def angle_rope_table(angles: torch.Tensor) -> torch.Tensor:
    """Angles [..., N, D/2] (float32) -> complex64 [..., N, 1, D/2] (cos + i sin)."""
    return torch.polar(torch.ones_like(angles), angles).unsqueeze(-2)


def rotate_pairs(
    x: torch.Tensor, table: torch.Tensor, out: torch.Tensor | None = None, chunk: int | None = None
) -> torch.Tensor:
    """Rotate x [..., N, H, D] by a complex table [..., N, 1, D/2] (broadcastable), pairing dims
    (2i, 2i+1) as real and imaginary parts; float32 math, result in x's dtype. `out` may be x."""
    if out is None:
        out = torch.empty_like(x)
    tokens = x.shape[-3]
    table_rows = table.shape[-3]
    for rows in row_chunks(tokens, chunk):
        part = x[..., rows, :, :].float()
        pairs = torch.view_as_complex(part.unflatten(-1, (-1, 2)).contiguous())
        rotated = pairs * (table[..., rows, :, :] if table_rows > 1 else table)
        out[..., rows, :, :] = torch.view_as_real(rotated).flatten(-2)
    return out
