"""Which engine a runner gets. The real one is imported lazily (it pulls in torch)."""

from __future__ import annotations

from pathlib import Path

from multitalk_desktop.engine.protocol import Engine
from multitalk_desktop.errors import MultiTalkError

ENGINE_KINDS = ("real", "test")


def make_engine(kind: str, models_dir: str | Path | None = None, device: str = "auto",
                profile: str = "auto", step_seconds: float = 0.0,
                max_frames: int | None = None, compile_blocks: bool = False) -> Engine:
    """`test`: the torch-free fake engine (tests only; every job it touches says so).
    `real`: MultiTalk on diffusers, loaded once from `models_dir`. `max_frames` is the user's
    cap on frames per video (settings; None or 0: no cap, the official code capped at 1000).
    `compile_blocks`: the settings' compiled mode (real engine, CUDA only; the test engine has no
    model to compile)."""
    if kind == "test":
        from multitalk_desktop.engine.test_engine import TestEngine

        return TestEngine(step_seconds=step_seconds)
    if kind != "real":
        raise MultiTalkError(f"Unknown engine kind {kind!r}; choose one of {', '.join(ENGINE_KINDS)}.")
    try:
        from multitalk_desktop.engine.model_files import require_models
    except ImportError:
        require_models = None
    if require_models is not None:
        # Torch-free and quick: a missing models folder is reported before torch loads.
        require_models(models_dir)
    try:
        from multitalk_desktop.engine.engine import MultiTalkEngine
    except ImportError as err:
        raise MultiTalkError(
            "The MultiTalk engine is not available in this build, so real jobs cannot run yet "
            f"({err}).",
            "Queued jobs stay queued; run them with a build that includes the engine.") from err
    return MultiTalkEngine.load(models_dir, profile=profile, device=device,
                                max_frames=max_frames or None, compile_blocks=compile_blocks)
