"""The queue (right, top): search, the jobs table and the actions on the selected job."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QModelIndex, Qt, QUrl, Signal
from PySide6.QtGui import QColor, QDesktopServices, QKeySequence, QPainter, QPaintEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from multitalk_desktop.errors import MultiTalkError
from multitalk_desktop.gui.job_form import section_title
from multitalk_desktop.gui.palette import MUTED_TEXT
from multitalk_desktop.gui.progress_delegate import ProgressDelegate
from multitalk_desktop.gui.queue_model import (
    COL_CREATED,
    COL_JOB,
    COL_POSITION,
    COL_PROGRESS,
    COL_STATE,
    JobTableModel,
)
from multitalk_desktop.jobs.queue import JobQueue
from multitalk_desktop.jobs.store import Job


class JobTable(QTableView):
    """The jobs table; while it has no rows it says what to do instead of showing an empty grid."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.empty_text = ""

    def paintEvent(self, event: QPaintEvent) -> None:
        super().paintEvent(event)
        model = self.model()
        if model is None or model.rowCount() > 0 or not self.empty_text:
            return
        p = QPainter(self.viewport())
        p.setPen(QColor(MUTED_TEXT))
        p.drawText(self.viewport().rect().adjusted(24, 12, -24, -12),
                   Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.empty_text)


NO_JOBS_TEXT = ("No jobs yet. Add a portrait and a voice on the left, then Add to queue (Ctrl+Enter). "
                "Jobs and their history stay here between sessions.")


def empty_table_text(search: str) -> str:
    return f"No job matches “{search.strip()}”." if search.strip() else NO_JOBS_TEXT


class QueuePanel(QWidget):
    selection_changed = Signal(object)  # Job or None
    queue_changed = Signal()  # this panel changed the queue (the worker may have work)

    def __init__(self, queue: JobQueue, model: JobTableModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.queue = queue
        self.model = model
        self.search_edit = QLineEdit()
        self.search_edit.setPlaceholderText("Search the history by prompt…")
        self.search_edit.setClearButtonEnabled(True)
        self.table = JobTable()
        self.table.empty_text = empty_table_text("")
        self.table.setModel(model)
        self.table.setItemDelegateForColumn(COL_PROGRESS, ProgressDelegate(self.table))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(30)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(COL_POSITION, QHeaderView.ResizeMode.Fixed)
        header.setSectionResizeMode(COL_STATE, QHeaderView.ResizeMode.Fixed)
        header.setSectionResizeMode(COL_JOB, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(COL_PROGRESS, QHeaderView.ResizeMode.Fixed)
        header.setSectionResizeMode(COL_CREATED, QHeaderView.ResizeMode.Fixed)
        self.table.setColumnWidth(COL_POSITION, 30)
        self.table.setColumnWidth(COL_STATE, 90)
        self.table.setColumnWidth(COL_PROGRESS, 300)
        self.table.setColumnWidth(COL_CREATED, 100)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setShortcut(QKeySequence("Ctrl+.") )
        self.retry_button = QPushButton("Retry")
        self.resume_button = QPushButton("Resume")
        self.up_button = QPushButton("▲ Up")
        self.down_button = QPushButton("▼ Down")
        self.folder_button = QPushButton("Open folder")
        for b, tip in ((self.cancel_button, "Cancel the selected job (Ctrl+.)"),
                       (self.retry_button, "Run a failed, cancelled or interrupted job again from the start"),
                       (self.resume_button, "Continue an interrupted job after its last finished clip"),
                       (self.up_button, "Run this job earlier"), (self.down_button, "Run this job later"),
                       (self.folder_button, "Show the finished video (or the job's folder)")):
            b.setToolTip(tip)
        col = QVBoxLayout(self)
        col.setContentsMargins(10, 10, 10, 4)
        col.setSpacing(6)
        top = QHBoxLayout()
        top.addWidget(section_title("Queue and history"))
        top.addStretch(1)
        top.addWidget(self.search_edit, 1)
        col.addLayout(top)
        col.addWidget(self.table, 1)
        actions = QHBoxLayout()
        for b in (self.cancel_button, self.retry_button, self.resume_button, self.up_button,
                  self.down_button):
            actions.addWidget(b)
        actions.addStretch(1)
        actions.addWidget(self.folder_button)
        col.addLayout(actions)

        self.search_edit.textChanged.connect(model.set_search)
        self.search_edit.textChanged.connect(self._update_empty_text)
        self.table.selectionModel().currentRowChanged.connect(lambda cur, _prev: self._selection_moved())
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._selection_moved())
        model.jobs_reloaded.connect(self._selection_moved)
        model.dataChanged.connect(lambda *_: self._update_buttons())
        self.cancel_button.clicked.connect(self.cancel_selected)
        self.retry_button.clicked.connect(lambda: self._act("retry"))
        self.resume_button.clicked.connect(lambda: self._act("resume"))
        self.up_button.clicked.connect(lambda: self._move(-1))
        self.down_button.clicked.connect(lambda: self._move(+1))
        self.folder_button.clicked.connect(self.open_folder)
        self._last_selected: tuple[str, str] | None = None
        self._update_buttons()

    # ------------------------------------------------------------------ selection

    def _update_empty_text(self, search: str) -> None:
        self.table.empty_text = empty_table_text(search)
        self.table.viewport().update()
    def selected_job(self) -> Job | None:
        index = self.table.selectionModel().currentIndex()
        if not index.isValid() or not self.table.selectionModel().isRowSelected(index.row(), QModelIndex()):
            return None
        return self.model.job_at(index.row())

    def select_job(self, job_id: str) -> None:
        row = self.model.row_of(job_id)
        if row is not None:
            self.table.selectRow(row)

    def _selection_moved(self) -> None:
        job = self.selected_job()
        key = (job.id, job.state, job.output or "", job.error or "") if job else None
        if key != self._last_selected:
            self._last_selected = key
            self.selection_changed.emit(job)
        self._update_buttons()

    def _update_buttons(self) -> None:
        job = self.selected_job()
        state = job.state if job else ""
        self.cancel_button.setEnabled(state in ("queued", "running", "interrupted")
                                      and not (job and job.cancel_requested))
        self.retry_button.setEnabled(state in ("failed", "cancelled", "interrupted"))
        self.resume_button.setEnabled(state == "interrupted")
        pos = self.model.queue_position(job) if job else None
        queued = sum(1 for j in self.model.jobs() if j.state == "queued")
        self.up_button.setEnabled(bool(pos and pos > 1))
        self.down_button.setEnabled(bool(pos and pos < queued))
        self.folder_button.setEnabled(job is not None)

    # ------------------------------------------------------------------ actions
    def cancel_selected(self) -> None:
        self._act("cancel")

    def _act(self, action: str) -> None:
        job = self.selected_job()
        if job is None:
            return
        try:
            getattr(self.queue, action)(job.id)
        except MultiTalkError as err:
            QMessageBox.warning(self, "MultiTalk Desktop", err.user_text())
        self.model.refresh(force=True)
        self.select_job(job.id)
        self.queue_changed.emit()

    def _move(self, delta: int) -> None:
        job = self.selected_job()
        pos = self.model.queue_position(job) if job else None
        if job is None or pos is None:
            return
        self.queue.move(job.id, max(1, pos + delta))
        self.model.refresh(force=True)
        self.select_job(job.id)

    def open_folder(self) -> None:
        job = self.selected_job()
        if job is None:
            return
        target = Path(job.output).parent if job.output else self.queue.job_dir(job.id)
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(target)))
