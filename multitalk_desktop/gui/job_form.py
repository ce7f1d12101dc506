"""The job form (left side of the window): portrait with speaker boxes, voices, prompt and
settings, each with its inline validation message, the expected length, and the submit button.
Everything is bound to a `JobFormModel`; this widget holds no state of its own."""

from __future__ import annotations

import secrets
from pathlib import Path

from PySide6.QtCore import QSize, Signal
from PySide6.QtGui import QImage, QImageReader, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from multitalk_desktop.gui.background import TaskPool
from multitalk_desktop.gui.box_editor import BoxEditor
from multitalk_desktop.gui.field_message import FieldMessage
from multitalk_desktop.gui.form_model import (
    AUDIO_SUFFIXES,
    AUDIO_TYPE_EXPLANATIONS,
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    JobFormModel,
)
from multitalk_desktop.gui.palette import MUTED_TEXT
from multitalk_desktop.gui.voice_slot import VoiceSlot
from multitalk_desktop.jobs.spec import JobRequest

PREVIEW_MAX_SIDE = 1600  # the portrait is shown scaled; the full image is only read by the engine
IMAGE_FILTER = "Images (" + " ".join(f"*{s}" for s in IMAGE_SUFFIXES) + ")"
VOICE_FILTER = ("Voices and videos (" + " ".join(f"*{s}" for s in AUDIO_SUFFIXES + VIDEO_SUFFIXES)
                + ");;All files (*)")


def section_title(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("sectionTitle")
    return label


class JobForm(QWidget):
    submit_requested = Signal(object)  # JobRequest

    def __init__(self, model: JobFormModel, pool: TaskPool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self._pool = pool
        self._messages: dict[str, FieldMessage] = {}
        self._voice_durations: dict[str, float] = {}

        self.box_editor = BoxEditor(self)
        self.open_image_button = QPushButton("Open image…")
        self.reset_boxes_button = QPushButton("Reset boxes")
        self.reset_boxes_button.setToolTip("Back to the official layout: person 1 left half, person 2 right half")
        self.boxes_hint = QLabel()
        self.boxes_hint.setStyleSheet(f"color: {MUTED_TEXT};")
        self.boxes_hint.setWordWrap(True)
        self.voice_slots = [VoiceSlot(0), VoiceSlot(1)]
        self.audio_type_combo = QComboBox()
        self.audio_type_combo.addItem("Take turns (add)", "add")
        self.audio_type_combo.addItem("At the same time (para)", "para")
        self.audio_type_help = QLabel()
        self.audio_type_help.setWordWrap(True)
        self.audio_type_help.setStyleSheet(f"color: {MUTED_TEXT};")
        self.prompt_edit = QPlainTextEdit()
        self.prompt_edit.setPlaceholderText("Describe the scene (optional): who is where, the mood, the light…")
        self.prompt_edit.setFixedHeight(52)
        self.resolution_combo = QComboBox()
        self.resolution_combo.addItem("480p", "480p")
        self.resolution_combo.addItem("720p", "720p")
        self.mode_combo = QComboBox()
        self.mode_combo.addItem("Quality (40 steps)", "quality")
        self.mode_combo.addItem("Fast (8 steps, distilled)", "fast")
        self.steps_spin = QSpinBox()
        self.steps_spin.setRange(0, 999)  # validation, not the spin box, says what is allowed
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.random_seed_button = QToolButton()
        self.random_seed_button.setText("Random")
        self.random_seed_button.setToolTip("Pick a random seed")
        self.text_guidance_spin = QDoubleSpinBox()
        self.audio_guidance_spin = QDoubleSpinBox()
        for spin in (self.text_guidance_spin, self.audio_guidance_spin):
            spin.setRange(-1.0, 99.0)
            spin.setSingleStep(0.5)
            spin.setDecimals(1)
        self.text_guidance_spin.setToolTip("How closely the video follows the prompt")
        self.audio_guidance_spin.setToolTip("Higher follows the voice more closely (3-5 is a good range)")
        self.summary_label = QLabel()
        self.summary_label.setObjectName("summary")
        self.summary_label.setWordWrap(True)
        self.submit_button = QPushButton("Add to queue")
        self.submit_button.setObjectName("primary")
        self.submit_button.setShortcut(QKeySequence("Ctrl+Return"))
        self.submit_button.setToolTip("Queue this job (Ctrl+Enter)")
        self._build_layout()
        self._connect()
        self._sync_options()
        self._on_voices(model.voices)
        self._on_report(None)

    # ------------------------------------------------------------------ layout
    def message(self, field: str) -> FieldMessage:
        if field not in self._messages:
            self._messages[field] = FieldMessage(field, self)
        return self._messages[field]

    def _build_layout(self) -> None:
        col = QVBoxLayout(self)
        col.setContentsMargins(12, 10, 12, 10)
        col.setSpacing(6)
        col.addWidget(section_title("Portrait"))
        col.addWidget(self.box_editor, 1)
        row = QHBoxLayout()
        row.addWidget(self.open_image_button)
        row.addWidget(self.reset_boxes_button)
        row.addWidget(self.boxes_hint, 1)
        col.addLayout(row)
        col.addWidget(self.message("image"))
        col.addWidget(self.message("boxes"))
        col.addWidget(section_title("Voices"))
        for k, slot in enumerate(self.voice_slots, start=1):
            col.addWidget(slot)
            col.addWidget(self.message(f"audio[{k}]"))
        col.addWidget(self.message("audio"))
        mode_row = QHBoxLayout()
        mode_row.addWidget(QLabel("Two voices:"))
        mode_row.addWidget(self.audio_type_combo, 1)
        col.addLayout(mode_row)
        col.addWidget(self.audio_type_help)
        col.addWidget(self.message("audio_type"))
        col.addWidget(section_title("Scene"))
        col.addWidget(self.prompt_edit)
        col.addWidget(self.message("prompt"))
        grid = QGridLayout()
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(4)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        seed_box = QWidget()
        seed_row = QHBoxLayout(seed_box)
        seed_row.setContentsMargins(0, 0, 0, 0)
        seed_row.setSpacing(4)
        seed_row.addWidget(self.seed_spin, 1)
        seed_row.addWidget(self.random_seed_button)
        rows = (
            (("Resolution", self.resolution_combo, "resolution"), ("Mode", self.mode_combo, "mode")),
            (("Steps", self.steps_spin, "steps"), ("Seed", seed_box, "seed")),
            (("Text guid.", self.text_guidance_spin, "text_guidance"),
             ("Audio guid.", self.audio_guidance_spin, "audio_guidance")),
        )
        for r, pair in enumerate(rows):
            for c, (label, widget, field) in enumerate(pair):
                grid.addWidget(QLabel(label), 2 * r, 2 * c)
                grid.addWidget(widget, 2 * r, 2 * c + 1)
                grid.addWidget(self.message(field), 2 * r + 1, 2 * c, 1, 2)
        col.addLayout(grid)
        col.addWidget(self.message("max_duration"))
        col.addWidget(self.message("request"))
        col.addWidget(self.summary_label)
        col.addWidget(self.submit_button)

    def _connect(self) -> None:
        m = self.model
        m.image_changed.connect(self._on_image)
        m.voices_changed.connect(self._on_voices)
        m.boxes_changed.connect(self.box_editor.set_boxes)
        m.boxes_changed.connect(self._on_boxes)
        m.options_changed.connect(self._sync_options)
        m.report_changed.connect(self._on_report)
        m.validating_changed.connect(lambda _v: self._update_submit())
        self.box_editor.boxes_edited.connect(m.set_boxes)
        self.box_editor.image_dropped.connect(m.set_image)
        self.box_editor.open_requested.connect(self.choose_image)
        self.open_image_button.clicked.connect(self.choose_image)
        self.reset_boxes_button.clicked.connect(m.reset_boxes)
        for slot in self.voice_slots:
            slot.file_dropped.connect(lambda path, i=slot.index: self._set_voice(i, path))
            slot.open_requested.connect(lambda i=slot.index: self.choose_voice(i))
            slot.remove_requested.connect(lambda i=slot.index: m.remove_voice(i))
        self.audio_type_combo.currentIndexChanged.connect(
            lambda _i: m.set_option("audio_type", self.audio_type_combo.currentData()))
        self.prompt_edit.textChanged.connect(lambda: m.set_option("prompt", self.prompt_edit.toPlainText()))
        self.resolution_combo.currentIndexChanged.connect(
            lambda _i: m.set_option("resolution", self.resolution_combo.currentData()))
        self.mode_combo.currentIndexChanged.connect(lambda _i: m.set_option("mode", self.mode_combo.currentData()))
        self.steps_spin.valueChanged.connect(lambda v: m.set_option("steps", v))
        self.seed_spin.valueChanged.connect(lambda v: m.set_option("seed", v))
        self.random_seed_button.clicked.connect(self.randomise_seed)
        self.text_guidance_spin.valueChanged.connect(lambda v: m.set_option("text_guidance", v))
        self.audio_guidance_spin.valueChanged.connect(lambda v: m.set_option("audio_guidance", v))
        self.submit_button.clicked.connect(self.submit)

    # ------------------------------------------------------------------ actions
    def choose_image(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a portrait", _start_dir(self.model.image), IMAGE_FILTER)
        if path:
            self.model.set_image(path)

    def choose_voice(self, index: int) -> None:
        current = self.model.voices[index] if index < len(self.model.voices) else self.model.image
        path, _ = QFileDialog.getOpenFileName(self, f"Choose voice {index + 1}", _start_dir(current), VOICE_FILTER)
        if path:
            self._set_voice(index, path)

    def _set_voice(self, index: int, path: str) -> None:
        self.model.set_voice(min(index, len(self.model.voices)), path)

    def randomise_seed(self) -> None:
        self.seed_spin.setValue(secrets.randbelow(2**31))

    def submit(self) -> None:
        if not self.submit_button.isEnabled():
            return
        report = self.model.validate_now()
        if report.ok:
            self.submit_requested.emit(self.model.request())

    def request(self) -> JobRequest:
        return self.model.request()

    # ------------------------------------------------------------------ model -> widgets
    def _on_image(self, path: str) -> None:
        size = self.model.image_size
        if not path or size is None:
            self.box_editor.set_image(None, None)
            return

        def load() -> QImage:
            # QImage (not QPixmap) may be made off the GUI thread; a 2k PNG takes ~100 ms to decode.
            reader = QImageReader(path)
            reader.setAutoTransform(True)
            w, h = size
            scale = min(1.0, PREVIEW_MAX_SIDE / max(w, h))
            reader.setScaledSize(QSize(max(1, round(w * scale)), max(1, round(h * scale))))
            return reader.read()

        def show(image: QImage) -> None:
            if path == self.model.image:
                self.box_editor.set_image(image if not image.isNull() else None, size)

        self._pool.submit(load, show)

    def _on_voices(self, voices: list[str]) -> None:
        for slot in self.voice_slots:
            path = voices[slot.index] if slot.index < len(voices) else ""
            slot.set_file(path, self._voice_durations.get(path))
            if path and path not in self._voice_durations:
                self._probe_voice(path)
        # The second slot appears once the first is filled: two voices is the normal case, not a chore.
        self.voice_slots[1].setVisible(len(voices) >= 1)
        self.audio_type_combo.setEnabled(len(voices) == 2)

    def _probe_voice(self, path: str) -> None:
        from multitalk_desktop.jobs.probe import probe_audio

        def done(seconds: float) -> None:
            self._voice_durations[path] = seconds
            self._on_voices(self.model.voices)

        self._pool.submit(lambda: probe_audio(Path(path)).duration_s, done, lambda _e: None)

    def _on_boxes(self, boxes: list) -> None:
        if not self.model.image:
            self.boxes_hint.setText("")
        elif self.model.boxes_are_default:
            self.boxes_hint.setText("Official layout. Drag a box or a corner to fit each person.")
        else:
            self.boxes_hint.setText("Custom boxes.")
        self.reset_boxes_button.setEnabled(not self.model.boxes_are_default)

    def _sync_options(self) -> None:
        m = self.model
        widgets = (self.audio_type_combo, self.resolution_combo, self.mode_combo, self.steps_spin,
                   self.seed_spin, self.text_guidance_spin, self.audio_guidance_spin, self.prompt_edit)
        for w in widgets:
            w.blockSignals(True)
        try:
            _select(self.audio_type_combo, m.audio_type)
            _select(self.resolution_combo, m.resolution)
            _select(self.mode_combo, m.mode)
            self.steps_spin.setValue(int(m.steps))
            self.seed_spin.setValue(int(m.seed))
            self.text_guidance_spin.setValue(float(m.text_guidance))
            self.audio_guidance_spin.setValue(float(m.audio_guidance))
            if self.prompt_edit.toPlainText() != m.prompt:
                self.prompt_edit.setPlainText(m.prompt)
        finally:
            for w in widgets:
                w.blockSignals(False)
        self.audio_type_help.setText(AUDIO_TYPE_EXPLANATIONS.get(m.audio_type, ""))

    def _on_report(self, report) -> None:
        errors: dict[str, list[str]] = {}
        warnings: dict[str, list[str]] = {}
        box_errors: dict[int, str] = {}
        if report is not None:
            for p in report.errors:
                errors.setdefault(self._message_field(p.field), []).append(p.message)
                if p.field.startswith("boxes["):
                    box_errors[int(p.field[6:-1]) - 1] = p.message
            for p in report.warnings:
                warnings.setdefault(self._message_field(p.field), []).append(p.message)
        for field, label in self._messages.items():
            # Before the user has given an input, "choose an image" is not an error worth red text.
            e = [m for m in errors.get(field, []) if not self._is_untouched(field)]
            label.show_problems(e, warnings.get(field, []))
        self.box_editor.set_box_errors(box_errors)
        self._update_summary(report)
        self._update_submit()

    def _message_field(self, field: str) -> str:
        if field.startswith("boxes["):
            return "boxes"
        if field in self._messages:
            return field
        return "request"

    def _is_untouched(self, field: str) -> bool:
        if field == "image":
            return not self.model.image
        if field in ("audio", "audio[1]"):
            return not self.model.voices
        return False

    def _update_summary(self, report) -> None:
        if report is None or not report.clips:
            self.summary_label.setText(f"<span style='color:{MUTED_TEXT}'>Add a portrait and a voice to see how "
                                       "long the video will be.</span>")
            return
        clips = report.clips
        self.summary_label.setText(
            f"<b>{report.duration_s:.1f} s</b> of video · <b>{clips}</b> clip{'s' if clips != 1 else ''} "
            f"of {self.model.steps} steps · {report.frames} frames at 25 fps")

    def _update_submit(self) -> None:
        self.submit_button.setEnabled(self.model.valid)
        if self.model.validating:
            self.submit_button.setText("Checking…")
        else:
            self.submit_button.setText("Add to queue")


def _select(combo: QComboBox, value: str) -> None:
    index = combo.findData(value)
    if index >= 0:
        combo.setCurrentIndex(index)


def _start_dir(path: str) -> str:
    return str(Path(path).parent) if path else str(Path.home())
