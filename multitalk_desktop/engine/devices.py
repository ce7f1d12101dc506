"""Where and in which precision the engine runs, and turning CUDA's out-of-memory into ours.

CUDA (bf16 for the big models) when available, else CPU in fp32, with a plain warning: the real
14 B model on a CPU takes days per clip. Memory profiles (full / fp8 / balanced / low) are a hook
that a later performance issue fills; for now `auto` means `full`.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

from multitalk_desktop.errors import MultiTalkError, OutOfMemory

log = logging.getLogger(__name__)

CPU_WARNING = (
    "No CUDA GPU is available, so the engine runs on the CPU in float32. That is fine for the tiny "
    "test models, but the real MultiTalk models on a CPU are impractically slow (days per clip)."
)
PROFILES_IMPLEMENTED = ("full",)


@dataclass(frozen=True)
class DevicePlan:
    device: str  # "cuda" | "cuda:N" | "cpu"
    dtype_name: str  # compute dtype of the big models: "bfloat16" on CUDA, "float32" on CPU
    vae_dtype_name: str  # the VAE stays float32 for quality (diffusers' Wan docs)
    profile: str  # the memory profile actually used
    warnings: tuple[str, ...] = ()

    @property
    def dtype(self):
        import torch

        return getattr(torch, self.dtype_name)

    @property
    def vae_dtype(self):
        import torch

        return getattr(torch, self.vae_dtype_name)

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")


def resolve_profile(profile: str) -> str:
    """`auto` -> `full` for now. The other names are accepted and fall back to `full` with a
    note until the performance issue implements them."""
    if profile in ("auto", "", None):
        return "full"
    if profile not in ("full", "fp8", "balanced", "low"):
        raise MultiTalkError(f"Unknown memory profile {profile!r}.", "Use auto, full, fp8, balanced or low.")
    return profile


def plan_device(device: str = "auto", profile: str = "auto") -> DevicePlan:
    import torch

    notes: list[str] = []
    prof = resolve_profile(profile)
    if prof not in PROFILES_IMPLEMENTED:
        notes.append(f"The {prof!r} memory profile is not implemented yet; using 'full'.")
        prof = "full"
    if device in ("auto", "", None):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise MultiTalkError(
                "CUDA was asked for, but no CUDA GPU is available to PyTorch.",
                "Check the NVIDIA driver, or choose --device cpu (very slow with real models).",
            )
        return DevicePlan(device, "bfloat16", "float32", prof, tuple(notes))
    if device != "cpu":
        raise MultiTalkError(f"Unknown device {device!r}.", "Use auto, cuda or cpu.")
    return DevicePlan("cpu", "float32", "float32", prof, tuple([CPU_WARNING, *notes]))


def warn_plan(plan: DevicePlan, real_models: bool) -> None:
    """Say the CPU warning once per load, only where it matters (real-size models)."""
    for note in plan.warnings:
        if note == CPU_WARNING and not real_models:
            continue
        warnings.warn(note, stacklevel=3)
        log.warning(note)


def is_oom(err: BaseException) -> bool:
    import torch

    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


@contextlib.contextmanager
def translate_oom() -> Iterator[None]:
    """Turn CUDA (or host) out-of-memory into errors.OutOfMemory, freeing the cache first so the
    engine stays usable for the next job."""
    try:
        yield
    except MemoryError as err:
        raise OutOfMemory("The computer ran out of memory (RAM).") from err
    except RuntimeError as err:
        if not is_oom(err):
            raise
        free_cuda_cache()
        raise OutOfMemory() from err


def free_cuda_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
