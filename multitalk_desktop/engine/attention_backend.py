"""Which attention kernel the transformer uses.

diffusers dispatches every attention call (the Wan processors and the audio cross-attention) to
one backend. Preference: FlashAttention 3, then FlashAttention 2 (exact, faster than PyTorch's SDPA
on long sequences), then SageAttention (8-bit QK: faster, but it changes the output slightly), and
PyTorch's SDPA (`native`) otherwise, which is always available and the reference the outputs are
checked against. Only backends whose package imports are offered; the `*_hub` ones would download
kernels and are never used.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)

NATIVE = "native"
# (diffusers backend name, exact output?) in order of preference on CUDA.
PREFERENCE = (("_flash_3", True), ("flash", True), ("sage", False), (NATIVE, True))


def available_backends() -> list[str]:
    """Backends usable here, best first; always ends with `native`."""
    try:
        from diffusers.models import attention_dispatch as dispatch
    except ImportError:  # pragma: no cover - diffusers is a hard dependency of the engine
        return [NATIVE]
    usable = {
        "_flash_3": getattr(dispatch, "_CAN_USE_FLASH_ATTN_3", False),
        "flash": getattr(dispatch, "_CAN_USE_FLASH_ATTN", False),
        "sage": getattr(dispatch, "_CAN_USE_SAGE_ATTN", False),
        NATIVE: True,
    }
    return [name for name, _ in PREFERENCE if usable[name]]


def choose_backend(device: torch.device | str, allow_lossy: bool = False) -> str:
    """The best backend for `device`: fused kernels need CUDA; sage only with `allow_lossy`."""
    if torch.device(device).type != "cuda":
        return NATIVE
    exact = dict(PREFERENCE)
    for name in available_backends():
        if exact[name] or allow_lossy:
            return name
    return NATIVE


def apply_backend(model: torch.nn.Module, backend: str) -> str:
    """Route the model's attention through `backend`; falls back to `native` (with a log line)
    when that backend cannot run here. Returns the backend in use. diffusers also makes it the
    process-wide default, which the audio cross-attention follows."""
    try:
        model.set_attention_backend(backend)
        return backend
    except (RuntimeError, ValueError) as err:
        if backend == NATIVE:
            raise
        log.warning("attention backend %s unavailable (%s); using native SDPA", backend, err)
        model.set_attention_backend(NATIVE)
        return NATIVE
