"""Shown above the queue at start-up when jobs were cut off by a crash or a closed window
(HandBrake-style recovery, but without a modal dialog in the way): resume them or leave them."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget


class InterruptedBanner(QWidget):
    resume_all = Signal(list)
    dismissed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("interruptedBanner")
        self.label = QLabel()
        self.label.setObjectName("banner")
        self.label.setWordWrap(True)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setObjectName("primary")
        self.dismiss_button = QPushButton("Not now")
        row = QHBoxLayout(self)
        row.setContentsMargins(10, 6, 10, 0)
        row.addWidget(self.label, 1)
        row.addWidget(self.resume_button)
        row.addWidget(self.dismiss_button)
        self._ids: list[str] = []
        self.resume_button.clicked.connect(lambda: self.resume_all.emit(list(self._ids)))
        self.dismiss_button.clicked.connect(self.dismiss)
        self.hide()

    def offer(self, job_ids: list[str]) -> None:
        self._ids = list(job_ids)
        if not job_ids:
            self.hide()
            return
        n = len(job_ids)
        self.label.setText(f"{n} job{'s were' if n != 1 else ' was'} interrupted when the app last stopped. "
                           "Resume continues after the last finished clip.")
        self.resume_button.setText("Resume all" if n > 1 else "Resume")
        self.show()

    def job_ids(self) -> list[str]:
        return list(self._ids)

    def dismiss(self) -> None:
        self.hide()
        self.dismissed.emit()
