"""Progress events with an honest ETA: measured seconds per denoising step and per clip decode,
times the work left. Torch-free."""

from __future__ import annotations

import time

from multitalk_desktop.engine.protocol import CancelToken, ProgressCallback, ProgressEvent

# Before any step was measured the ETA is unknown (None), never a guess.


class ProgressTracker:
    def __init__(self, on_progress: ProgressCallback | None, cancel: CancelToken | None,
                 clips: int, steps: int) -> None:
        self.on_progress = on_progress
        self.cancel = cancel
        self.clips = clips
        self.steps = steps
        self.start = time.monotonic()
        self.step_times: list[float] = []
        self.clip_overheads: list[float] = []  # per clip: encode + decode + save (not steps)
        self.done_steps = 0  # over all clips, including those reused from a resumed job
        self.finished_clips = 0
        self._last_step_at: float | None = None
        self._clip_started: float | None = None
        self._clip_step_time = 0.0

    # ---------------------------------------------------------------- cancel

    def check_cancel(self) -> None:
        if self.cancel is not None:
            self.cancel.raise_if_cancelled()

    # ---------------------------------------------------------------- bookkeeping

    def skip_clips(self, count: int) -> None:
        """Clips reused from a previous run count as done (no time measured for them)."""
        self.done_steps = count * self.steps
        self.finished_clips = count

    def clip_started(self) -> None:
        self._clip_started = time.monotonic()
        self._clip_step_time = 0.0

    def step_started(self) -> None:
        self._last_step_at = time.monotonic()

    def step_finished(self) -> None:
        if self._last_step_at is not None:
            took = time.monotonic() - self._last_step_at
            self.step_times.append(took)
            self._clip_step_time += took
        self.done_steps += 1

    def clip_finished(self) -> None:
        if self._clip_started is not None:
            self.clip_overheads.append(time.monotonic() - self._clip_started - self._clip_step_time)
        self.finished_clips += 1

    # ---------------------------------------------------------------- figures

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def eta(self) -> float | None:
        """Seconds left: remaining steps x the mean measured step time, plus the remaining clips'
        overhead (encode/decode) once one clip has been measured."""
        if not self.step_times:
            return None
        recent = self.step_times[-20:]  # the newest steps reflect the current conditions best
        per_step = sum(recent) / len(recent)
        steps_left = self.clips * self.steps - self.done_steps
        eta = steps_left * per_step
        if self.clip_overheads:
            clips_left = max(0, self.clips - self.finished_clips)  # decodes still ahead
            eta += clips_left * (sum(self.clip_overheads) / len(self.clip_overheads))
        return max(0.0, eta)

    def percent(self) -> float:
        total = max(1, self.clips * self.steps)
        return min(100.0, 100.0 * self.done_steps / total)

    # ---------------------------------------------------------------- events

    def emit(self, phase: str, clip: int = 0, step: int = 0, message: str = "",
             preview_png: bytes | None = None) -> None:
        if self.on_progress is None:
            return
        self.on_progress(ProgressEvent(
            phase=phase, clip=clip, clips=self.clips, step=step, steps=self.steps,
            elapsed_s=round(self.elapsed, 3), eta_s=self.eta(), percent=round(self.percent(), 2),
            message=message, preview_png=preview_png,
        ))
