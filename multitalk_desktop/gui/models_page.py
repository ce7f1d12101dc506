"""The models page: where the files are expected, a check, a resumable download with progress,
or using folders already on disk (e.g. a Hugging Face cache) by linking them into our layout
instead of copying tens of gigabytes."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from multitalk_desktop.config import AppContext
from multitalk_desktop.gui.background import TaskPool
from multitalk_desktop.gui.palette import ERROR_COLOR, MUTED_TEXT, OK_COLOR

PROGRESS_INTERVAL_S = 0.05  # at most ~20 "downloading" updates a second reach the GUI thread

TOP_FOLDERS = ("Wan2.1-I2V-14B-480P-Diffusers", "chinese-wav2vec2-base", "MeiGen-MultiTalk")


def expected_top_folders() -> list[str]:
    try:
        from multitalk_desktop.engine.manifest import manifest_files

        return sorted({Path(f.path).parts[0] for f in manifest_files()})
    except Exception:
        return list(TOP_FOLDERS)


def link_existing(models_dir: Path, source: Path) -> list[str]:
    """Link the expected top-level folders found in (or named as) `source` into `models_dir`.
    Returns the names linked. Existing entries in models_dir are left alone."""
    models_dir.mkdir(parents=True, exist_ok=True)
    linked = []
    for name in expected_top_folders():
        candidate = source if source.name == name else source / name
        target = models_dir / name
        if candidate.is_dir() and not target.exists() and not target.is_symlink():
            os.symlink(candidate.resolve(), target, target_is_directory=True)
            linked.append(name)
    return linked


class _Relay(QObject):
    progress = Signal(object)


class ModelsPage(QWidget):
    def __init__(self, ctx: AppContext, pool: TaskPool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self._pool = pool
        self._stop = threading.Event()
        self._relay = _Relay(self)
        self.where = QLabel()
        self.where.setWordWrap(True)
        self.status = QLabel("Not checked yet.")
        self.status.setWordWrap(True)
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setMaximumHeight(150)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.hide()
        self.progress_text = QLabel()
        self.progress_text.setStyleSheet(f"color: {MUTED_TEXT};")
        self.verify_button = QPushButton("Check again")
        self.download_button = QPushButton("Download missing files")
        self.download_button.setObjectName("primary")
        self.stop_button = QPushButton("Stop download")
        self.stop_button.hide()
        self.link_button = QPushButton("Use folders already on disk…")
        buttons = QHBoxLayout()
        for b in (self.verify_button, self.download_button, self.stop_button, self.link_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        col = QVBoxLayout(self)
        col.addWidget(self.where)
        col.addWidget(self.status)
        col.addWidget(self.details)
        col.addLayout(buttons)
        col.addWidget(self.progress)
        col.addWidget(self.progress_text)
        col.addStretch(1)
        self.verify_button.clicked.connect(self.verify)
        self.download_button.clicked.connect(self.download)
        self.stop_button.clicked.connect(self._stop.set)
        self.link_button.clicked.connect(self.choose_existing)
        self._relay.progress.connect(self._on_progress)
        self._describe_location()
        self.verify()

    def _describe_location(self) -> None:
        folders = "".join(f"<li><code>{name}/</code></li>" for name in expected_top_folders())
        self.where.setText(f"Models folder: <b>{self.ctx.models_dir}</b><br>Expected inside it:<ul>{folders}</ul>"
                           "About 80 GB in all. Downloads resume where they stopped.")

    def verify(self) -> None:
        self.status.setText("Checking…")
        models_dir = self.ctx.models_dir

        def work():
            from multitalk_desktop.engine.model_files import check_models

            return check_models(models_dir)

        def done(report) -> None:
            if report.ready:
                self.status.setText(f"<span style='color:{OK_COLOR}'>✔ {report.summary()}</span>")
            else:
                self.status.setText(f"<span style='color:{ERROR_COLOR}'>✖ {report.summary()}</span>")
            self.details.setPlainText("\n".join(str(p) for p in report.problems) or "Every file is present.")

        self._pool.submit(work, done, lambda err: self.status.setText(f"Check failed: {err}"))

    def download(self) -> None:
        self._stop.clear()
        self.download_button.setEnabled(False)
        self.stop_button.show()
        self.progress.show()
        models_dir, relay, stop = self.ctx.models_dir, self._relay, self._stop

        last_sent = [0.0]

        def report_progress(p) -> None:
            # Runs in the pool thread once per received chunk (thousands a second on a fast
            # line): only phase changes, a file's last bytes and one update per interval are
            # posted, so the GUI thread never queues a backlog of label updates.
            now = time.monotonic()
            if (p.phase == "downloading" and p.done_bytes != p.total_bytes
                    and now - last_sent[0] < PROGRESS_INTERVAL_S):
                return
            last_sent[0] = now
            relay.progress.emit(p)

        def work():
            from multitalk_desktop.engine.download import download_models

            return download_models(models_dir, on_progress=report_progress, should_stop=stop.is_set)

        def finished(report) -> None:
            self.download_button.setEnabled(True)
            self.stop_button.hide()
            failed = "\n".join(f"{p}: {why}" for p, why in report.failed)
            self.progress_text.setText("Download finished." if report.ok else "Some files failed:\n" + failed)
            self.verify()

        def failed(err: BaseException) -> None:
            self.download_button.setEnabled(True)
            self.stop_button.hide()
            self.progress_text.setText(f"Download stopped: {getattr(err, 'message', err)}")

        self._pool.submit(work, finished, failed)

    def _on_progress(self, p) -> None:
        head = f"File {p.file_index}/{p.files}: {p.path}"
        if p.phase in ("done", "skipped", "failed"):  # these carry no byte counts
            if p.phase != "failed":
                self.progress.setValue(1000)
            detail = {"done": "downloaded and verified", "skipped": "already verified"}.get(p.phase, p.message)
            self.progress_text.setText(f"{head} · {detail}")
            return
        if p.total_bytes:
            self.progress.setValue(int(1000 * p.done_bytes / p.total_bytes))
        mb = p.done_bytes / 1e6
        total = f" of {p.total_bytes / 1e6:.0f} MB" if p.total_bytes else ""
        self.progress_text.setText(f"{head} · {p.phase} · {mb:.0f} MB{total}")

    def choose_existing(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder that holds the model folders")
        if folder:
            linked = link_existing(self.ctx.models_dir, Path(folder))
            self.progress_text.setText("Linked: " + ", ".join(linked) if linked else
                                       "No expected model folder was found there.")
            self.verify()

    def stop(self) -> None:
        self._stop.set()
