"""A few lines about the selected job under the player: its state, where its video is, the notes
it carries and, for a failed job, the full error with a button to copy it (and the hint that
comes with it, e.g. what to do after running out of GPU memory)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from multitalk_desktop.gui.palette import ERROR_COLOR, MUTED_TEXT, WARNING_COLOR, state_color
from multitalk_desktop.gui.queue_model import job_title
from multitalk_desktop.jobs.store import Job


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class JobDetails(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.info = QLabel()
        self.info.setWordWrap(True)
        self.info.setStyleSheet(f"color: {MUTED_TEXT};")
        self.error_label = QLabel()
        self.error_label.setObjectName("jobError")
        self.error_label.setWordWrap(True)
        self.error_label.setTextInteractionFlags(self.error_label.textInteractionFlags()
                                                 | Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.setStyleSheet(f"color: {ERROR_COLOR}; background: #2a1719; border-radius: 6px; padding: 6px;")
        self.copy_error_button = QPushButton("Copy error")
        self.copy_error_button.clicked.connect(self.copy_error)
        err_row = QHBoxLayout()
        err_row.setContentsMargins(0, 0, 0, 0)
        err_row.addWidget(self.error_label, 1)
        err_row.addWidget(self.copy_error_button)
        self._error_box = QWidget()
        self._error_box.setLayout(err_row)
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(3)
        col.addWidget(self.title)
        col.addWidget(self.info)
        col.addWidget(self._error_box)
        self._error_text = ""
        self.show_job(None)

    def show_job(self, job: Job | None) -> None:
        if job is None:
            self.title.setText("")
            self.info.setText("")
            self._error_box.hide()
            self._error_text = ""
            return
        color = state_color(job.state).name()
        self.title.setText(f"<span style='color:{color}'><b>{job.state.capitalize()}</b></span>"
                           f"&nbsp;&nbsp;{_esc(job_title(job))}")
        bits = [f"job {job.id[:8]}", f"attempt {job.attempts}"]
        req = job.request
        bits.append(f"{req.get('resolution', '')} · {req.get('mode', '')} · {req.get('steps', '')} steps · "
                    f"seed {req.get('seed', '')} · {req.get('audio_type', '')}")
        if job.produced_by == "test-engine":
            bits.append(f"<span style='color:{WARNING_COLOR}'>made by the test engine (not a real generation)</span>")
        if job.output:
            bits.append(f"video: {_esc(job.output)}")
        for note in job.notes:
            bits.append(f"<span style='color:{WARNING_COLOR}'>⚠ {_esc(note)}</span>")
        self.info.setText(" · ".join(bits[:3]) + ("<br>" + "<br>".join(bits[3:]) if bits[3:] else ""))
        self._error_text = job.error or ""
        if job.state in ("failed", "interrupted") and self._error_text:
            self.error_label.setText(_esc(self._error_text))
            self._error_box.show()
        else:
            self._error_box.hide()

    def error_text(self) -> str:
        return self._error_text

    def copy_error(self) -> None:
        QGuiApplication.clipboard().setText(self._error_text)
