"""A Qt table model over the SQLite job store: the running job, then the queue in the order it
will run, then the history newest first.

Other processes (the command line, the HTTP API, a headless worker) write to the same database,
so the model polls `JobStore.data_version()` (one cheap PRAGMA) and reloads only when it changed.
Progress from the worker in this process arrives as signals many times a second; it updates the
row at once without waiting for the database (`set_live_progress`).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, Qt, QTimer, Signal

from multitalk_desktop.engine.protocol import ProgressEvent
from multitalk_desktop.gui.palette import state_color
from multitalk_desktop.gui.progress_text import job_progress_text, progress_fraction
from multitalk_desktop.jobs.runner import progress_dict
from multitalk_desktop.jobs.store import Job, JobStore

COLUMNS = ("#", "State", "Job", "Progress", "Created")
COL_POSITION, COL_STATE, COL_JOB, COL_PROGRESS, COL_CREATED = range(len(COLUMNS))
JOB_ROLE = Qt.ItemDataRole.UserRole + 1
FRACTION_ROLE = Qt.ItemDataRole.UserRole + 2
STATE_ROLE = Qt.ItemDataRole.UserRole + 3
HISTORY_LIMIT = 300
_ORDER = {"running": 0, "queued": 1}


def job_title(job: Job) -> str:
    """A one-line name for a job: its prompt, or its files when it has none of its own."""
    prompt = (job.prompt or "").strip()
    sources = job.sources or {}
    image = Path(sources.get("image") or job.request.get("image") or "").name
    voices = len(job.request.get("audio") or [])
    files = f"{image} + {voices} voice{'s' if voices != 1 else ''}"
    if prompt:
        short = prompt if len(prompt) <= 70 else prompt[:67].rstrip() + "…"
        return f"{short}  ·  {files}"
    return files


class JobTableModel(QAbstractTableModel):
    jobs_reloaded = Signal()

    def __init__(self, store: JobStore, poll_ms: int = 400, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._store = store
        self._jobs: list[Job] = []
        self._live: dict[str, dict] = {}  # job id -> progress dict from this process's worker
        self._search = ""
        self._seen_version: int | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(poll_ms)
        self._timer.timeout.connect(self.refresh)
        if poll_ms > 0:
            self._timer.start()
        self.refresh(force=True)

    def stop_polling(self) -> None:
        self._timer.stop()

    # ------------------------------------------------------------------ loading
    def set_search(self, text: str) -> None:
        text = text.strip()
        if text != self._search:
            self._search = text
            self.refresh(force=True)

    def refresh(self, force: bool = False) -> None:
        try:
            version = self._store.data_version()
        except Exception:  # the database closed under us (shutting down)
            return
        if not force and version == self._seen_version:
            return
        self._seen_version = version
        jobs = self._store.list_jobs(search=self._search or None, limit=HISTORY_LIMIT)
        jobs.sort(key=lambda j: (_ORDER.get(j.state, 2), j.position if j.state == "queued" else 0,
                                 -j.created_at))
        self._live = {k: v for k, v in self._live.items() if any(j.id == k and j.state == "running"
                                                                   for j in jobs)}
        if [j.id for j in jobs] == [j.id for j in self._jobs]:
            self._jobs = jobs  # same rows: repaint in place so selection and scroll stay put
            if jobs:
                self.dataChanged.emit(self.index(0, 0), self.index(len(jobs) - 1, len(COLUMNS) - 1))
        else:
            self.layoutAboutToBeChanged.emit()
            old_persistent = self.persistentIndexList()
            old_ids = [self._jobs[i.row()].id if i.row() < len(self._jobs) else None for i in old_persistent]
            self._jobs = jobs
            rows = {j.id: r for r, j in enumerate(jobs)}
            new = [self.index(rows[i], p.column()) if i in rows else QModelIndex()
                   for p, i in zip(old_persistent, old_ids, strict=True)]
            self.changePersistentIndexList(old_persistent, new)
            self.layoutChanged.emit()
        self.jobs_reloaded.emit()

    def set_live_progress(self, job_id: str, event: ProgressEvent) -> None:
        self._live[job_id] = progress_dict(event)
        row = self.row_of(job_id)
        if row is not None:
            self.dataChanged.emit(self.index(row, COL_PROGRESS), self.index(row, COL_PROGRESS))

    # ------------------------------------------------------------------ lookups
    def job_at(self, row: int) -> Job | None:
        return self._jobs[row] if 0 <= row < len(self._jobs) else None

    def row_of(self, job_id: str) -> int | None:
        for row, job in enumerate(self._jobs):
            if job.id == job_id:
                return row
        return None

    def jobs(self) -> list[Job]:
        return list(self._jobs)

    def progress_of(self, job: Job) -> dict:
        if job.state == "running" and job.id in self._live:
            return self._live[job.id]
        return job.progress

    def queue_position(self, job: Job) -> int | None:
        if job.state != "queued":
            return None
        queued = [j.id for j in self._jobs if j.state == "queued"]
        return queued.index(job.id) + 1

    # ------------------------------------------------------------------ Qt model
    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._jobs)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        job = self.job_at(index.row())
        if job is None:
            return None
        col = index.column()
        if role == JOB_ROLE:
            return job
        if role == STATE_ROLE:
            return job.state
        if role == FRACTION_ROLE:
            return progress_fraction(job.state, self.progress_of(job))
        if role == Qt.ItemDataRole.DisplayRole:
            if col == COL_POSITION:
                pos = self.queue_position(job)
                return str(pos) if pos else ""
            if col == COL_STATE:
                return job.state.capitalize()
            if col == COL_JOB:
                return job_title(job)
            if col == COL_PROGRESS:
                return job_progress_text(job.state, self.progress_of(job), job.error, self.queue_position(job))
            if col == COL_CREATED:
                return datetime.fromtimestamp(job.created_at).strftime("%d %b %H:%M")
        if role == Qt.ItemDataRole.ForegroundRole and col == COL_STATE:
            return state_color(job.state)
        if role == Qt.ItemDataRole.ToolTipRole:
            if job.error:
                return job.error
            if col == COL_JOB:
                return job.prompt or job_title(job)
            if job.produced_by == "test-engine":
                return "Made by the test engine (not a real generation)"
        return None
