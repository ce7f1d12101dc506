"""Optional step cache: skip most of the transformer on steps where it would change little.

diffusers' FirstBlockCache (a TeaCache relative): every forward runs block 0; when block 0's
residual differs from the previous step's by less than `threshold` (mean absolute difference over
mean absolute value), the remaining blocks are skipped and their cached residual is added instead.
Each guidance pass (cond / drop_text / uncond / drop_audio) keeps its own state, so every pass must
run inside `guidance_pass(model, name)`. It changes the output: tests/perf measure by how much.
Off by default; the MultiTalk blocks are registered with diffusers' block registry by the model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

DEFAULT_THRESHOLD = 0.05
_LEADER_HOOK = "fbc_leader_block_hook"  # diffusers.hooks.first_block_cache._FBC_LEADER_BLOCK_HOOK
_STATS = "_multitalk_step_cache_stats"


@dataclass
class StepCacheStats:
    """Per guidance pass name: how many forwards ran all blocks / reused the cached residual."""

    computed: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped.values())

    @property
    def total_computed(self) -> int:
        return sum(self.computed.values())


def enable_step_cache(model: torch.nn.Module, threshold: float = DEFAULT_THRESHOLD) -> StepCacheStats:
    from diffusers.hooks import FirstBlockCacheConfig

    if step_cache_enabled(model):
        model.disable_cache()
    model.enable_cache(FirstBlockCacheConfig(threshold=threshold))
    stats = StepCacheStats()
    setattr(model, _STATS, stats)
    return stats


def disable_step_cache(model: torch.nn.Module) -> None:
    if step_cache_enabled(model):
        model.disable_cache()
    if hasattr(model, _STATS):
        delattr(model, _STATS)


def step_cache_enabled(model: torch.nn.Module) -> bool:
    return bool(getattr(model, "is_cache_enabled", False))


def reset_step_cache(model: torch.nn.Module) -> None:
    """Forget cached residuals: call at the start of every clip (different latents and audio)."""
    if step_cache_enabled(model):
        model._reset_stateful_cache()


@contextlib.contextmanager
def guidance_pass(model: torch.nn.Module, name: str, step_index: int | None = None) -> Iterator[None]:
    """Run one guidance pass under its own cache state (a no-op without the step cache)."""
    if not step_cache_enabled(model):
        yield
        return
    with model.cache_context(name, step_index=step_index):
        yield
        _record(model, name)


def _record(model: torch.nn.Module, name: str) -> None:
    stats: StepCacheStats | None = getattr(model, _STATS, None)
    leader = _leader_hook(model)
    if stats is None or leader is None:
        return
    state = leader.state_manager.get_state()
    bucket = stats.computed if state.should_compute else stats.skipped
    bucket[name] = bucket.get(name, 0) + 1


def _leader_hook(model: torch.nn.Module):
    for module in model.modules():
        registry = getattr(module, "_diffusers_hook", None)
        hook = registry.get_hook(_LEADER_HOOK) if registry is not None else None
        if hook is not None:
            return hook
    return None
