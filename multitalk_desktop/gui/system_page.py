"""The system page: the `doctor` report (GPU, VRAM, driver, disk, ffmpeg, models). Collected in
the task pool because it imports torch and asks the driver."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from multitalk_desktop.gui.background import TaskPool


def doctor_html(facts: dict) -> str:
    gpus = facts.get("gpus") or []
    gpu_lines = "".join(f"<li>{g['name']}: {g['vram_free_gb']} of {g['vram_total_gb']} GB free</li>" for g in gpus)
    models = facts.get("models") or {}
    missing = models.get("missing") or []
    rows = [
        ("Version", facts.get("version")), ("Python", facts.get("python")),
        ("torch", facts.get("torch") or "not installed"),
        ("CUDA", "available" if facts.get("cuda_available") else "not available"),
        ("Driver", facts.get("driver") or "no NVIDIA driver found"),
        ("Data folder", facts.get("data_dir")), ("Free disk", f"{facts.get('free_disk_gb')} GB"),
        ("ffmpeg", facts.get("ffmpeg") or "missing"),
        ("Models", f"{models.get('path')}: " + ("ready" if models.get("ready") else f"{len(missing)} missing")),
    ]
    table = "".join(f"<tr><td><b>{k}</b>&nbsp;&nbsp;</td><td>{v}</td></tr>" for k, v in rows)
    return f"<table>{table}</table><p><b>GPUs</b></p><ul>{gpu_lines or '<li>none found</li>'}</ul>"


class SystemPage(QWidget):
    def __init__(self, pool: TaskPool, models_dir, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._pool = pool
        self._models_dir = models_dir
        self.report = QLabel("Collecting…")
        self.report.setWordWrap(True)
        # Selectable: people paste this into bug reports.
        self.report.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.refresh_button = QPushButton("Check again")
        buttons = QHBoxLayout()
        buttons.addWidget(self.refresh_button)
        buttons.addStretch(1)
        col = QVBoxLayout(self)
        col.addWidget(self.report)
        col.addLayout(buttons)
        col.addStretch(1)
        self.refresh_button.clicked.connect(self.refresh)
        self.facts: dict | None = None
        self.refresh()

    def refresh(self) -> None:
        self.report.setText("Collecting…")
        models_dir = self._models_dir

        def work() -> dict:
            from multitalk_desktop.commands.doctor import collect

            return collect(models_dir)

        def done(facts: dict) -> None:
            self.facts = facts
            self.report.setText(doctor_html(facts))

        self._pool.submit(work, done, lambda err: self.report.setText(f"The check failed: {err}"))
