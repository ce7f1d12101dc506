"""A tray icon that tells when a job finishes or fails, where the desktop has a tray."""

from __future__ import annotations

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QSystemTrayIcon, QWidget

from multitalk_desktop.jobs.store import Job


class JobNotifier:
    def __init__(self, icon: QIcon, parent: QWidget) -> None:
        self.tray: QSystemTrayIcon | None = None
        self.messages: list[tuple[str, str]] = []  # what was said, for tests and the status bar
        if QSystemTrayIcon.isSystemTrayAvailable():
            self.tray = QSystemTrayIcon(icon, parent)
            self.tray.setToolTip("MultiTalk Desktop")
            self.tray.activated.connect(lambda _reason: (parent.showNormal(), parent.activateWindow()))
            self.tray.show()

    def job_finished(self, job: Job) -> None:
        if job.state == "completed":
            title, body = "Video ready", f"Job {job.id[:8]} finished: {job.output or ''}"
            kind = QSystemTrayIcon.MessageIcon.Information
        elif job.state == "failed":
            title, body = "Job failed", (job.error or "")[:200]
            kind = QSystemTrayIcon.MessageIcon.Warning
        else:
            return
        self.messages.append((title, body))
        if self.tray is not None:
            self.tray.showMessage(title, body, kind, 8000)

    def hide(self) -> None:
        if self.tray is not None:
            self.tray.hide()
