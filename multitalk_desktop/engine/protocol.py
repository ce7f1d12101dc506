"""What the job runner, CLI, API and GUI know about an engine. Torch-free on purpose: everything
above `engine/` imports this module, never the heavy ones."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

PHASES = ("loading", "encoding", "denoising", "decoding", "exporting")


@dataclass(frozen=True)
class ProgressEvent:
    """One progress report. `clip`/`step` are 1-based; 0 means "not started yet"."""

    phase: str
    clip: int = 0
    clips: int = 0
    step: int = 0
    steps: int = 0
    elapsed_s: float = 0.0
    eta_s: float | None = None
    percent: float = 0.0
    message: str = ""
    # Optional small RGB preview decoded cheaply from the latents: (height, width, png_bytes).
    preview_png: bytes | None = None


ProgressCallback = Callable[[ProgressEvent], None]


class CancelToken:
    """Set from any thread (GUI, API, CLI signal handler); the engine polls it every step."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._checks: list[Callable[[], bool]] = []

    def cancel(self) -> None:
        self._event.set()

    def add_check(self, check: Callable[[], bool]) -> None:
        """Extra source of cancellation, e.g. the job row's cancel flag in SQLite."""
        self._checks.append(check)

    @property
    def cancelled(self) -> bool:
        if self._event.is_set():
            return True
        for check in self._checks:
            if check():
                self._event.set()
                return True
        return False

    def raise_if_cancelled(self) -> None:
        if self.cancelled:
            from multitalk_desktop.errors import Cancelled

            raise Cancelled()


@dataclass
class GenerationInputs:
    """A validated request, with paths to the job's own copies of its inputs."""

    image: Path
    audio: list[Path]
    output_path: Path  # where the engine writes the finished MP4 (the runner renames it later)
    work_dir: Path  # the job folder: finished clips are kept here so a resume continues
    boxes: list[tuple[int, int, int, int]] | None = None  # x0,y0,x1,y1 per voice, source pixels
    prompt: str = ""
    negative_prompt: str | None = None
    audio_type: str = "add"
    resolution: str = "480p"  # "480p", "720p" or "WxH"
    mode: str = "quality"
    steps: int = 40
    seed: int = 42
    text_guidance: float = 5.0
    audio_guidance: float = 4.0
    color_correction: float = 1.0
    max_duration: float | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class GenerationResult:
    output_path: Path
    frames: int
    fps: float
    audio_seconds: float
    notes: list[str] = field(default_factory=list)  # e.g. "capped at 30 s by --max-duration"
    produced_by: str = "multitalk"


class Engine(Protocol):
    """Loaded once, used for many jobs."""

    name: str

    def generate(
        self,
        inputs: GenerationInputs,
        on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> GenerationResult: ...

    def close(self) -> None: ...
