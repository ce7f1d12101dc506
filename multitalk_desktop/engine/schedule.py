"""The flow-matching sampler of MultiTalk: timesteps for (steps, shift), the Euler update and the
re-noising of known latents (motion frames in streaming mode).

The official sampler is a plain Euler loop, not a diffusers scheduler. Its timesteps are built in
float32 (`np.linspace(1000, 1, N, dtype=float32)` plus a final 0, then the shift transform on
float32 tensors); the same values computed in float64 differ by up to 1.2e-4 on the 0..1000 scale,
so this module repeats the float32 arithmetic step by step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

NUM_TRAIN_TIMESTEPS = 1000

# Default shift per resolution bucket; the distilled (few-step LoRA) recipes use 2.
DEFAULT_SHIFT = {"multitalk-480": 7.0, "multitalk-720": 11.0}
FAST_MODE_SHIFT = 2.0


def default_shift(resolution: str, fast: bool = False) -> float:
    """The shift the official CLI picks when none is given ("480"/"720" accepted as aliases)."""
    if fast:
        return FAST_MODE_SHIFT
    key = resolution if resolution.startswith("multitalk-") else f"multitalk-{resolution.rstrip('p')}"
    try:
        return DEFAULT_SHIFT[key]
    except KeyError:
        raise ValueError(f"unknown resolution {resolution!r}; expected one of {sorted(DEFAULT_SHIFT)}") from None


def shift_timestep(t: torch.Tensor, shift: float, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> torch.Tensor:
    """shift*s/(1+(shift-1)*s)*1000 with s = t/1000, in the dtype of `t` (float32 in the sampler)."""
    s = t / num_train_timesteps
    return shift * s / (1 + (shift - 1) * s) * num_train_timesteps


def timesteps(steps: int, shift: float, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> torch.Tensor:
    """The `steps + 1` float32 timesteps: entry i is the model's `t` at step i, the last one is 0."""
    import torch

    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    base = list(np.linspace(num_train_timesteps, 1, steps, dtype=np.float32)) + [0.0]
    # One float32 tensor per value, transformed separately, exactly like the official loop.
    shifted = [shift_timestep(torch.tensor([t], dtype=torch.float32), shift, num_train_timesteps) for t in base]
    return torch.cat(shifted)


def step_dt(t_cur: torch.Tensor, t_next: torch.Tensor, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> torch.Tensor:
    """The Euler step size (t_cur - t_next)/1000 from the float32 timesteps."""
    return (t_cur - t_next) / num_train_timesteps


def step_dts(schedule: torch.Tensor, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> torch.Tensor:
    """dt for every step of a schedule from `timesteps()` ([steps])."""
    return step_dt(schedule[:-1], schedule[1:], num_train_timesteps)


def euler_step(latent: torch.Tensor, velocity: torch.Tensor, t_cur: torch.Tensor, t_next: torch.Tensor,
               num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> torch.Tensor:
    """latent + (-velocity) * dt, where `velocity` is the guided model output.

    The official loop negates the prediction first, then adds it times dt; keeping that order keeps
    the float32 rounding identical.
    """
    dt = step_dt(t_cur, t_next, num_train_timesteps).reshape(-1)
    return latent + (-velocity) * dt.reshape((dt.shape[0],) + (1,) * (latent.dim() - 1))


def add_noise(clean: torch.Tensor, noise: torch.Tensor, t: torch.Tensor,
              num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> torch.Tensor:
    """(1 - t/1000) * clean + t/1000 * noise: the noisy version of known latents at timestep t."""
    sigma = t.float().reshape(-1) / num_train_timesteps
    sigma = sigma.reshape(sigma.shape + (1,) * (noise.dim() - 1))
    return (1 - sigma) * clean + sigma * noise
