"""Where and in which precision the engine runs, and turning CUDA's out-of-memory into ours.

CUDA (bf16 for the big models) when available, else CPU in fp32, with a plain warning: the real
14 B model on a CPU takes days per clip. The memory profile (full / fp8 / balanced / low,
engine/profiles.py) is decided here too: a named one is kept, `auto` is chosen from the free VRAM
(cudaMemGetInfo) and the available host RAM (psutil) for the planned resolution. On the CPU `auto`
means `full` (nothing to save), but every named profile runs its own code path there (fp8 storage
works on the CPU; block offload runs the same hooks without CUDA streams), so tests cover them.
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


@dataclass(frozen=True)
class DevicePlan:
    device: str  # "cuda" | "cuda:N" | "cpu"
    dtype_name: str  # compute dtype of the big models: "bfloat16" on CUDA, "float32" on CPU
    vae_dtype_name: str  # the VAE stays float32 for quality (diffusers' Wan docs)
    profile: str  # the memory profile actually used
    warnings: tuple[str, ...] = ()
    profile_reason: str = ""  # why this profile (profiles.explain_choice, or "chosen by hand")
    host_ram_gib: float | None = None  # available host RAM given to plan_device (None: measure it)

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

    @property
    def spec(self):
        from multitalk_desktop.engine.profiles import PROFILES

        return PROFILES[self.profile]

    @property
    def transformer_load_device(self) -> str:
        """Offloaded profiles load the transformer into host RAM (the GPU could not hold it)."""
        return "cpu" if self.spec.offload else self.device

    @property
    def profile_note(self) -> str:
        """One sentence for GenerationResult.notes and the loading message."""
        return f"Memory profile {self.profile}: {self.profile_reason}."


def plan_device(
    device: str = "auto",
    profile: str = "auto",
    resolution: str = "480p",
    resources: tuple[float, float] | None = None,
) -> DevicePlan:
    """The device, dtypes and memory profile. `resources` = (free VRAM GiB, available host RAM GiB)
    replaces the measurement for `auto` (tests; a caller that measured already)."""
    import torch

    from multitalk_desktop.engine.profiles import resolve_profile

    if device in ("auto", "", None):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise MultiTalkError(
                "CUDA was asked for, but no CUDA GPU is available to PyTorch.",
                "Check the NVIDIA driver, or choose --device cpu (very slow with real models).",
            )
        dtype, notes = "bfloat16", ()
    elif device == "cpu":
        dtype, notes = "float32", (CPU_WARNING,)
    else:
        raise MultiTalkError(f"Unknown device {device!r}.", "Use auto, cuda or cpu.")
    try:
        choice = resolve_profile(profile or "auto", device, resolution or "480p", resources)
    except ValueError as err:
        raise MultiTalkError(f"Unknown memory profile {profile!r}.",
                             "Use auto, full, fp8, balanced or low.") from err
    return DevicePlan(device, dtype, "float32", choice.profile, notes, choice.reason,
                      host_ram_gib=resources[1] if resources else None)


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
