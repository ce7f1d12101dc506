"""The job form's state, as an observable object (Krita AI Diffusion style): widgets bind to its
`*_changed` signals and write through its setters; nothing else holds form state.

Validation is `jobs.spec.validate`, the same function the command line uses, run off the GUI
thread (it probes file headers, and ffmpeg for a video dropped as a voice) and debounced; a
result that arrives after a newer edit is dropped so the messages always describe what is shown.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from multitalk_desktop.gui.background import TaskPool
from multitalk_desktop.jobs.spec import (
    MAX_VOICES,
    MODE_DEFAULTS,
    JobRequest,
    Report,
    default_boxes,
    validate,
)

Box = tuple[int, int, int, int]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg", ".oga", ".m4a", ".aac", ".opus")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")
VOICE_SUFFIXES = AUDIO_SUFFIXES + VIDEO_SUFFIXES

AUDIO_TYPE_EXPLANATIONS = {
    "add": "add: the speakers take turns; voice 2 starts when voice 1 ends.",
    "para": "para: both voices play at the same time (each file already holds its silences).",
}


def is_video(path: str) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


class JobFormModel(QObject):
    image_changed = Signal(str)
    image_size_changed = Signal(object)  # (w, h) or None
    voices_changed = Signal(list)
    boxes_changed = Signal(list)  # the effective boxes, defaults included
    options_changed = Signal()
    report_changed = Signal(object)  # jobs.spec.Report
    validating_changed = Signal(bool)

    def __init__(self, pool: TaskPool | None = None, models_dir: Path | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = pool
        self._models_dir = models_dir
        self.image = ""
        self.image_size: tuple[int, int] | None = None
        self.voices: list[str] = []
        self._custom_boxes: list[Box] | None = None  # None: the official default halves
        self.prompt = ""
        self.resolution = "480p"
        self.mode = "quality"
        self.steps, self.text_guidance, self.audio_guidance = MODE_DEFAULTS["quality"]
        self.seed = 42
        self.audio_type = "add"
        self.report: Report | None = None
        self._generation = 0  # bumps on every edit; stale validation results are dropped
        self.validating = False
        self._debounce = QTimer(self, singleShot=True, interval=120)
        self._debounce.timeout.connect(self._start_validation)

    # ------------------------------------------------------------------ inputs
    def set_image(self, path: str) -> None:
        path = str(path)
        if path == self.image:
            return
        self.image = path
        self.image_size = _image_size(path)
        self._custom_boxes = None  # boxes drawn on another picture mean nothing on this one
        self.image_changed.emit(path)
        self.image_size_changed.emit(self.image_size)
        self.boxes_changed.emit(self.boxes)
        self._edited()

    def set_voice(self, index: int, path: str) -> None:
        """Voice `index` (0-based); index == len(voices) appends. A video gives its audio track."""
        voices = list(self.voices)
        if index >= len(voices):
            if len(voices) >= MAX_VOICES:
                return
            voices.append(str(path))
        else:
            voices[index] = str(path)
        self._set_voices(voices)

    def add_voice(self, path: str) -> bool:
        if len(self.voices) >= MAX_VOICES:
            return False
        self.set_voice(len(self.voices), path)
        return True

    def remove_voice(self, index: int) -> None:
        if 0 <= index < len(self.voices):
            voices = list(self.voices)
            del voices[index]
            self._set_voices(voices)

    def _set_voices(self, voices: list[str]) -> None:
        if self._custom_boxes is not None and len(self._custom_boxes) != len(voices):
            # Keep the boxes the user drew; a new voice gets its default box, a removed one loses its box.
            defaults = self._default_boxes(len(voices))
            kept = self._custom_boxes[: len(voices)]
            self._custom_boxes = kept + defaults[len(kept):] if voices else None
        self.voices = voices
        self.voices_changed.emit(list(voices))
        self.boxes_changed.emit(self.boxes)
        self._edited()

    # ------------------------------------------------------------------ boxes
    @property
    def box_count(self) -> int:
        return max(1, len(self.voices))

    def _default_boxes(self, count: int) -> list[Box]:
        if self.image_size is None:
            return []
        return [tuple(b) for b in default_boxes(*self.image_size, max(1, count))]

    @property
    def boxes(self) -> list[Box]:
        """What the image shows: the user's boxes, or the official defaults."""
        if self._custom_boxes is not None:
            return list(self._custom_boxes)
        return self._default_boxes(self.box_count)

    @property
    def boxes_are_default(self) -> bool:
        return self._custom_boxes is None

    def set_boxes(self, boxes: list[Box]) -> None:
        boxes = [tuple(int(v) for v in b) for b in boxes]
        if boxes == self.boxes and self._custom_boxes is not None:
            return
        self._custom_boxes = boxes
        self.boxes_changed.emit(self.boxes)
        self._edited()

    def reset_boxes(self) -> None:
        self._custom_boxes = None
        self.boxes_changed.emit(self.boxes)
        self._edited()

    # ------------------------------------------------------------------ options
    def set_option(self, name: str, value) -> None:
        if name not in ("prompt", "resolution", "mode", "steps", "seed", "text_guidance",
                        "audio_guidance", "audio_type"):
            raise AttributeError(name)
        if getattr(self, name) == value:
            return
        setattr(self, name, value)
        if name == "mode":
            # The fast mode's distilled LoRA wants its own step count and guidance.
            self.steps, self.text_guidance, self.audio_guidance = MODE_DEFAULTS.get(value, MODE_DEFAULTS["quality"])
        self.options_changed.emit()
        self._edited()

    # ------------------------------------------------------------------ request and validation
    def request(self) -> JobRequest:
        return JobRequest(
            image=self.image,
            audio=list(self.voices),
            boxes=None if self._custom_boxes is None else list(self._custom_boxes),
            prompt=self.prompt or None,
            audio_type=self.audio_type,
            resolution=self.resolution,
            mode=self.mode,
            steps=int(self.steps),
            seed=int(self.seed),
            text_guidance=float(self.text_guidance),
            audio_guidance=float(self.audio_guidance),
        )

    def load_request(self, req: JobRequest) -> None:
        """Fill the form from a request (an official example JSON, or a job to edit again)."""
        self.blockSignals(True)
        try:
            self.image = ""
            self.set_image(req.image)
            self.voices = []
            self._set_voices(list(req.audio)[:MAX_VOICES])
            self._custom_boxes = [tuple(b) for b in req.boxes] if req.boxes else None
            r = req.resolved()
            self.prompt = req.prompt or ""
            self.resolution, self.mode, self.audio_type = r.resolution, r.mode, r.audio_type
            self.steps, self.seed = r.steps, r.seed
            self.text_guidance, self.audio_guidance = r.text_guidance, r.audio_guidance
        finally:
            self.blockSignals(False)
        self.image_changed.emit(self.image)
        self.image_size_changed.emit(self.image_size)
        self.voices_changed.emit(list(self.voices))
        self.boxes_changed.emit(self.boxes)
        self.options_changed.emit()
        self._edited()

    def set_models_dir(self, models_dir: Path) -> None:
        """The settings moved the models folder: validate against the new one."""
        if models_dir != self._models_dir:
            self._models_dir = models_dir
            self._edited()

    def _edited(self) -> None:
        self._generation += 1
        self._set_validating(True)
        self._debounce.start()

    def _set_validating(self, value: bool) -> None:
        if value != self.validating:
            self.validating = value
            self.validating_changed.emit(value)

    def _start_validation(self) -> None:
        generation = self._generation
        req = self.request()
        models_dir = self._models_dir

        def work() -> Report:
            return validate(req, models_dir=models_dir)

        def done(report: Report) -> None:
            if generation != self._generation:
                return  # the form changed while this ran; a newer validation is on its way
            self.report = report
            self._set_validating(False)
            self.report_changed.emit(report)

        if self._pool is None:
            done(work())
        else:
            self._pool.submit(work, done, lambda err: done(_crashed_report(err)))

    def validate_now(self) -> Report:
        """Synchronous validation (submit double-checks with this)."""
        self._debounce.stop()
        self._generation += 1
        report = validate(self.request(), models_dir=self._models_dir)
        self.report = report
        self._set_validating(False)
        self.report_changed.emit(report)
        return report

    @property
    def valid(self) -> bool:
        return self.report is not None and self.report.ok and not self.validating


def _image_size(path: str) -> tuple[int, int] | None:
    from multitalk_desktop.jobs.probe import probe_image

    try:
        info = probe_image(Path(path))
    except Exception:  # validation will say what is wrong with it
        return None
    return (info.width, info.height)


def _crashed_report(err: BaseException) -> Report:
    report = Report()
    report.error("request", f"Checking the request failed: {err}")
    return report
