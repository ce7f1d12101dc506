"""fp8 weight storage with bf16 (or fp32) compute: halves the big models' resident weights.

Every Linear weight outside the skip patterns is stored as float8_e4m3fn with one power-of-two scale
per tensor (`fp8_scale`, a 0-d float32 buffer: it moves with the module when offloaded, and a
compiled block sees it as an input rather than a constant that differs per layer), and the layer computes with the weight cast
up to the compute dtype and multiplied by its scale, so the arithmetic (and every activation)
stays in the compute dtype; only the weight values are rounded to fp8 (3 mantissa bits).

Why a scale: e4m3's normal numbers start at 2^-6 = 0.0156. Unscaled (as diffusers' layerwise
casting stores them), the weights of a 5120-wide layer (std ~0.014) are half subnormal and lose
precision (4.2 % relative error on such a random matrix, against 2.7 % scaled), and UMT5's query
weights (std ~0.002) lose 28 % against 2.7 % (tests/perf/test_fp8.py measures both). The scale maps
each tensor's largest magnitude into e4m3's top octave; a power of two keeps the scaling exact.

Kept out of fp8, where precision matters more than size: the model's own skip patterns (patch
embedding, condition embedder, every `norm*`, `audio_proj` on the MultiTalk model), the modules it
keeps in fp32, and diffusers' defaults (positional embeddings, `proj_out`). Biases stay in the
compute dtype.
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn as nn
import torch.nn.functional as F

FP8_STORAGE = torch.float8_e4m3fn
FP8_MAX = float(torch.finfo(FP8_STORAGE).max)  # 448

# Always kept out of fp8, whatever the model class declares: the audio projection runs once per
# clip (no memory worth saving) and feeds every block, and norms are tiny.
EXTRA_SKIP_PATTERNS = ("audio_proj", "norm")


class Fp8Linear(nn.Linear):
    """A Linear whose weight is stored in fp8 with a per-tensor scale (`fp8_scale`). Modules become
    this class in place (`enable_fp8_storage`), keeping their parameters, names and hooks."""

    fp8_scale: torch.Tensor  # 0-d float32 buffer
    fp8_compute_dtype: torch.dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, compute_weight(self, self.fp8_compute_dtype), self.bias)


def compute_weight(linear: nn.Module, dtype: torch.dtype) -> torch.Tensor:
    """The weight `linear` computes with, in `dtype`: dequantised where it is stored in fp8."""
    weight = linear.weight
    if weight.dtype != FP8_STORAGE:
        return weight.to(dtype)
    return weight.to(dtype).mul_(linear.fp8_scale)


def quantize(weight: torch.Tensor, compute_dtype: torch.dtype) -> tuple[torch.Tensor, float]:
    """(fp8 tensor, power-of-two scale) for `weight`, rounded through the compute dtype first (the
    values the layer would otherwise compute with)."""
    values = weight.to(compute_dtype)
    peak = float(values.abs().max()) if values.numel() else 0.0
    scale = 2.0 ** math.ceil(math.log2(peak / FP8_MAX)) if peak > 0 else 1.0
    return (values.float() / scale).to(FP8_STORAGE), scale


def is_fp8_enabled(model: torch.nn.Module) -> bool:
    return any(p.dtype == FP8_STORAGE for p in model.parameters())


def enable_fp8_storage(
    model: torch.nn.Module, compute_dtype: torch.dtype | None = None, skip: tuple[str, ...] | None = None
) -> None:
    """Store the model's Linear weights in scaled fp8, compute in `compute_dtype` (the model's
    dtype by default). On an empty (meta) model the weights become fp8 meta tensors and get their
    scales as they are loaded (`load_fp8_weight`). Irreversible: reload the model to get the bf16
    weights back. Apply before offloading so that the pinned host copies are fp8 too."""
    if is_fp8_enabled(model):
        return
    compute_dtype = compute_dtype or _floating_dtype(model)
    patterns = skip if skip is not None else skip_patterns(model)
    for name, module in model.named_modules():
        if type(module) is not nn.Linear or any(re.search(p, name) for p in patterns):
            continue
        module.__class__ = Fp8Linear
        module.fp8_compute_dtype = compute_dtype
        weight = module.weight
        if weight.is_meta:
            module.weight = nn.Parameter(torch.empty_like(weight, dtype=FP8_STORAGE), requires_grad=False)
            scale = 1.0
        else:
            quantized, scale = quantize(weight.data, compute_dtype)
            module.weight = nn.Parameter(quantized, requires_grad=False)
        device = weight.device if not weight.is_meta else torch.device("cpu")
        module.register_buffer("fp8_scale", torch.tensor(scale, dtype=torch.float32, device=device),
                               persistent=False)
        if module.bias is not None and module.bias.dtype != compute_dtype and not module.bias.is_meta:
            module.bias.data = module.bias.data.to(compute_dtype)


def fp8_parameter_owner(model: torch.nn.Module, name: str) -> Fp8Linear | None:
    """The Fp8Linear whose `weight` is the parameter `name`, else None."""
    module_name, _, attr = name.rpartition(".")
    if attr != "weight":
        return None
    module = model.get_submodule(module_name) if module_name else model
    return module if isinstance(module, Fp8Linear) else None


def load_fp8_weight(module: Fp8Linear, tensor: torch.Tensor, device: torch.device | str) -> None:
    """Quantise `tensor` into `module`'s fp8 weight (and its scale). A weight already in real
    memory (e.g. a pinned offload arena) is written in place, so its storage stays where it is."""
    quantized, scale = quantize(tensor, module.fp8_compute_dtype)
    if module.weight.is_meta:
        module.weight = nn.Parameter(quantized.to(device), requires_grad=False)
    else:
        module.weight.data.copy_(quantized)
    module.fp8_scale.fill_(scale)  # in place, wherever the buffer lives (GPU, pinned arena)


def read_weight(module: nn.Module) -> torch.Tensor:
    """A Linear's weight in float32 (dequantised when fp8)."""
    return compute_weight(module, torch.float32)


def skip_patterns(model: torch.nn.Module) -> tuple[str, ...]:
    """What diffusers' layerwise casting would skip by default, plus the model's own patterns and
    EXTRA_SKIP_PATTERNS."""
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
