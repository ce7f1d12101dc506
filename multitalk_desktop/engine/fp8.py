"""fp8 weight storage with bf16 (or fp32) compute: halves the transformer's resident weights.

diffusers' layerwise casting keeps each Linear/Conv weight in float8_e4m3fn and casts it up to the
compute dtype just for that layer's forward, so the arithmetic (and every activation) stays in the
compute dtype; only the weight values are rounded to fp8 (3 mantissa bits, no scaling). Layers whose
precision matters more than their size stay out: the model's own skip patterns (patch embedding,
condition embedder, every `norm*`, and `audio_proj` on the MultiTalk model), the modules it keeps in
fp32, and diffusers' defaults (positional embeddings, `proj_out`).
"""

from __future__ import annotations

import torch

FP8_STORAGE = torch.float8_e4m3fn

# Always kept out of fp8, whatever the model class declares: the audio projection runs once per
# clip (no memory worth saving) and feeds every block, and norms are tiny.
EXTRA_SKIP_PATTERNS = ("audio_proj", "norm")


def is_fp8_enabled(model: torch.nn.Module) -> bool:
    return any(p.dtype == FP8_STORAGE for p in model.parameters())


def enable_fp8_storage(model: torch.nn.Module, compute_dtype: torch.dtype | None = None) -> None:
    """Store the model's big layers in fp8 e4m3, compute in `compute_dtype` (the model's dtype by
    default). Irreversible: reload the model to get the bf16 weights back. Apply before offloading
    so that the pinned host copies are fp8 too (half the host RAM)."""
    if is_fp8_enabled(model):
        return
    compute_dtype = compute_dtype or _floating_dtype(model)
    model.enable_layerwise_casting(
        storage_dtype=FP8_STORAGE,
        compute_dtype=compute_dtype,
        skip_modules_pattern=skip_patterns(model),
    )


def skip_patterns(model: torch.nn.Module) -> tuple[str, ...]:
    """What `enable_layerwise_casting` would skip by default, plus EXTRA_SKIP_PATTERNS. Passing the
    patterns explicitly also keeps diffusers from mutating its default tuple."""
    from diffusers.hooks.layerwise_casting import DEFAULT_SKIP_MODULES_PATTERN

    patterns = list(DEFAULT_SKIP_MODULES_PATTERN)
    patterns += list(getattr(model, "_keep_in_fp32_modules", None) or [])
    patterns += list(getattr(model, "_skip_layerwise_casting_patterns", None) or [])
    patterns += list(EXTRA_SKIP_PATTERNS)
    return tuple(dict.fromkeys(patterns))


def fp8_bytes(model: torch.nn.Module) -> tuple[int, int]:
    """(bytes stored in fp8, bytes stored otherwise): what the profile actually saves."""
    fp8 = other = 0
    for param in model.parameters():
        size = param.numel() * param.element_size()
        if param.dtype == FP8_STORAGE:
            fp8 += size
        else:
            other += size
    return fp8, other


def _floating_dtype(model: torch.nn.Module) -> torch.dtype:
    # The dtype of the first big floating-point weight (fp32 norms kept by _keep_in_fp32_modules
    # must not decide the compute dtype of a bf16 model).
    best: torch.dtype | None = None
    biggest = -1
    for param in model.parameters():
        if param.is_floating_point() and param.numel() > biggest:
            best, biggest = param.dtype, param.numel()
    return best or torch.float32
