"""Export a finished video: a preset (media.video.export), a destination, with or without its
audio, a progress bar; asks before replacing an existing file or folder. The export runs in the
task pool; the dialog stays responsive and reports errors in plain words."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from multitalk_desktop.gui.background import TaskPool
from multitalk_desktop.jobs.store import Job

# preset -> (label, file suffix or "" for a folder)
PRESETS = {
    "mp4-high": ("MP4 (H.264), full quality", ".mp4"),
    "mp4-small": ("MP4 (H.264), small file for sharing", ".mp4"),
    "png-frames": ("PNG frames (a folder, plus audio.wav)", ""),
    "webm": ("WebM (VP9 + Opus)", ".webm"),
}


class _ProgressRelay(QObject):
    progress = Signal(float)


class ExportDialog(QDialog):
    export_finished = Signal(str)  # destination
    export_failed = Signal(str)

    def __init__(self, job: Job, pool: TaskPool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export video")
        self.setMinimumWidth(520)
        self.job = job
        self._pool = pool
        self._relay = _ProgressRelay(self)
        self.preset_combo = QComboBox()
        for key, (label, _suffix) in PRESETS.items():
            self.preset_combo.addItem(label, key)
        self.destination_edit = QLineEdit()
        self.browse_button = QPushButton("Choose…")
        self.audio_check = QCheckBox("Include the audio")
        self.audio_check.setChecked(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.hide()
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.export_button.setObjectName("primary")
        dest_row = QHBoxLayout()
        dest_row.addWidget(self.destination_edit, 1)
        dest_row.addWidget(self.browse_button)
        form = QFormLayout()
        form.addRow("Format", self.preset_combo)
        form.addRow("Save to", dest_row)
        form.addRow("", self.audio_check)
        col = QVBoxLayout(self)
        col.addLayout(form)
        col.addWidget(self.progress)
        col.addWidget(self.status)
        col.addWidget(self.buttons)
        self.preset_combo.currentIndexChanged.connect(lambda _i: self._suggest_destination())
        self.browse_button.clicked.connect(self.choose_destination)
        self.buttons.rejected.connect(self.reject)
        self.export_button.clicked.connect(self.start_export)
        self._relay.progress.connect(lambda f: self.progress.setValue(int(f * 1000)))
        self._suggest_destination()

    def preset(self) -> str:
        return self.preset_combo.currentData()

    def _suggest_destination(self) -> None:
        src = Path(self.job.output or "video.mp4")
        suffix = PRESETS[self.preset()][1]
        folder = Path(self.destination_edit.text()).parent if self.destination_edit.text() else src.parent
        name = src.stem + ("-frames" if not suffix else ("-small" if self.preset() == "mp4-small" else "-export"))
        self.destination_edit.setText(str(folder / (name + suffix)))

    def choose_destination(self) -> None:
        suffix = PRESETS[self.preset()][1]
        if suffix:
            path, _ = QFileDialog.getSaveFileName(self, "Export to", self.destination_edit.text(),
                                                  f"Video (*{suffix})",
                                                  options=QFileDialog.Option.DontConfirmOverwrite)
        else:
            path = QFileDialog.getExistingDirectory(self, "Export frames into", self.destination_edit.text())
        if path:
            if suffix and not path.endswith(suffix):
                path += suffix
            self.destination_edit.setText(path)

    def confirm_overwrite(self, dst: Path) -> bool:
        """Asked before anything existing is replaced."""
        answer = QMessageBox.question(self, "Replace?", f"{dst} already exists. Replace it?",
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def start_export(self) -> None:
        from multitalk_desktop.media.video import export

        dst = Path(self.destination_edit.text()).expanduser()
        if not self.destination_edit.text().strip():
            self.status.setText("Choose where to save the export.")
            return
        if dst.exists() and not self.confirm_overwrite(dst):
            return
        src, preset, with_audio = self.job.output, self.preset(), self.audio_check.isChecked()
        relay = self._relay
        self.export_button.setEnabled(False)
        self.progress.setValue(0)
        self.progress.show()
        self.status.setText("Exporting…")

        def work() -> str:
            if dst.is_dir():
                _remove(dst)  # the user agreed; a file is replaced atomically by export itself
            export(src, dst, preset, include_audio=with_audio, on_progress=relay.progress.emit)
            return str(dst)

        def done(path: str) -> None:
            self.progress.setValue(1000)
            self.status.setText(f"Saved to {path}")
            self.export_button.setEnabled(True)
            self.export_finished.emit(path)

        def failed(err: BaseException) -> None:
            text = getattr(err, "user_text", lambda: str(err))()
            self.status.setText(f"<span style='color:#ff5c5c'>Export failed: {text}</span>")
            self.export_button.setEnabled(True)
            self.export_failed.emit(text)

        self._pool.submit(work, done, failed)


def _remove(path: Path) -> None:
    import shutil

    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
