"""The main window: the job form on the left; the queue and the preview on the right.

It wires the pieces (form model, queue model, worker thread, preview, dialogs) and owns their
lifetimes: closing it cancels a running job if the user agrees, stops and joins the worker
thread and the task pool, and closes the database."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from multitalk_desktop.config import AppContext
from multitalk_desktop.errors import MultiTalkError, ValidationFailed
from multitalk_desktop.gui.background import TaskPool
from multitalk_desktop.gui.engine_choice import EngineChoice
from multitalk_desktop.gui.form_model import (
    AUDIO_SUFFIXES,
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    JobFormModel,
)
from multitalk_desktop.gui.interrupted_banner import InterruptedBanner
from multitalk_desktop.gui.job_form import JobForm
from multitalk_desktop.gui.preview_panel import PreviewPanel
from multitalk_desktop.gui.queue_model import JobTableModel
from multitalk_desktop.gui.queue_panel import QueuePanel
from multitalk_desktop.gui.theme import app_icon
from multitalk_desktop.gui.tray import JobNotifier
from multitalk_desktop.gui.worker import WorkerHost
from multitalk_desktop.jobs.queue import JobQueue
from multitalk_desktop.jobs.spec import request_from_official_json
from multitalk_desktop.jobs.store import Job

APP_TITLE = "MultiTalk Desktop"


class MainWindow(QMainWindow):
    job_submitted = Signal(object)  # Job, once it is in the database

    def __init__(self, ctx: AppContext, choice: EngineChoice, files: list[str] | None = None,
                 start_worker: bool = True, poll_ms: int = 400) -> None:
        super().__init__()
        self.ctx = ctx
        self.choice = choice
        self._closing = False
        self.setWindowTitle(APP_TITLE + ("  [TEST ENGINE: not a real generation]" if choice.is_test else ""))
        self.setWindowIcon(app_icon())
        self.pool = TaskPool(max_threads=2, parent=self)
        self.queue = JobQueue(ctx)
        self.interrupted_at_start = self.queue.recover_interrupted(stale_after_s=0)

        self.form_model = JobFormModel(self.pool, models_dir=ctx.models_dir, parent=self)
        self.form = JobForm(self.form_model, self.pool)
        self.table_model = JobTableModel(self.queue.store, poll_ms=poll_ms, parent=self)
        self.queue_panel = QueuePanel(self.queue, self.table_model)
        self.preview = PreviewPanel(self.pool, ctx.paths.data_dir / "cache" / "peaks")
        self.banner = InterruptedBanner()
        self.worker = WorkerHost(ctx, choice, parent=self)
        self.notifier = JobNotifier(self.windowIcon(), self)
        self._build_layout()
        self._build_menus()
        self._build_status_bar()
        self._connect()
        self.banner.offer([j.id for j in self.table_model.jobs() if j.state == "interrupted"])
        self.resize(1280, 800)
        if files:
            self.open_files(files)
        if start_worker:
            self.worker.start()
        QTimer.singleShot(300, self._prewarm)
        self.api_server = None
        self.apply_api_setting()

    def apply_api_setting(self) -> None:
        """Run the local HTTP API (api.server.ApiServer) while the window is open when the settings
        ask for it; the window's own worker runs the jobs, so the server runs none itself."""
        wanted = bool(self.ctx.settings.api_enabled)
        server = self.api_server
        if server is not None and (not wanted or server.port != int(self.ctx.settings.api_port)):
            self.api_server = None
            self.pool.submit(server.stop, None, lambda _e: None)
        if wanted and self.api_server is None:
            try:
                from multitalk_desktop.api.server import ApiServer
            except ImportError as err:
                self.statusBar().showMessage(f"The HTTP API is not available in this build ({err}).", 10000)
                return
            server = ApiServer(self.ctx, self.ctx.settings.api_host, int(self.ctx.settings.api_port),
                               announce=lambda text: None)
            self.api_server = server

            def failed(err: BaseException) -> None:
                self.api_server = None
                self.statusBar().showMessage(f"The HTTP API could not start: {err}", 15000)

            self.pool.submit(server.start, lambda _s: self.statusBar().showMessage(
                f"HTTP API listening on {server.url}", 8000), failed)

    def _prewarm(self) -> None:
        """Pay cold-start costs soon after start-up, while the user is still reading the window,
        not during the first job: import the media modules in the task pool (loading libsndfile,
        soxr and the ffmpeg helpers holds Python's GIL for tens of milliseconds), decode a tiny PNG
        there (Qt's image-format plugin scan, otherwise paid on the GUI thread by the first
        preview image) and read the multimedia libraries into the disk cache; then create the
        media player on the GUI thread from that warm cache (otherwise done when the first
        finished job is opened: 25 ms or more cold, far more after heavy disk I/O)."""
        from multitalk_desktop.gui.preview_panel import warm_image_decoders, warm_multimedia_files

        def work() -> None:
            import PIL.Image  # noqa: F401
            import soxr  # noqa: F401

            import multitalk_desktop.media.audio  # noqa: F401
            import multitalk_desktop.media.video  # noqa: F401
            import multitalk_desktop.media.waveform  # noqa: F401

            warm_image_decoders()
            warm_multimedia_files()

        def warmed(_result) -> None:
            if not self._closing and not getattr(self, "_shut_down", False):
                self.preview.prewarm_player()

        self.pool.submit(work, warmed, lambda _err: None)

    # ------------------------------------------------------------------ layout
    def _build_layout(self) -> None:
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.form)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(420)
        right = QSplitter(Qt.Orientation.Vertical)
        top = QWidget()
        top_col = QVBoxLayout(top)
        top_col.setContentsMargins(0, 0, 0, 0)
        top_col.setSpacing(0)
        top_col.addWidget(self.banner)
        top_col.addWidget(self.queue_panel, 1)
        right.addWidget(top)
        right.addWidget(self.preview)
        right.setStretchFactor(0, 2)
        right.setStretchFactor(1, 3)
        right.setSizes([300, 460])
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(scroll)
        split.addWidget(right)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setSizes([470, 810])
        self.setCentralWidget(split)

    def _action(self, menu, text: str, slot, shortcut: str | QKeySequence.StandardKey | None = None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.open_image_action = self._action(file_menu, "Open image…", self.form.choose_image, "Ctrl+O")
        self.add_voice_action = self._action(file_menu, "Add voice…", self.add_voice, "Ctrl+Shift+O")
        self._action(file_menu, "Open request (official JSON)…", self.open_request_json)
        file_menu.addSeparator()
        self.export_action = self._action(file_menu, "Export video…", self.export_selected, "Ctrl+E")
        file_menu.addSeparator()
        self._action(file_menu, "Quit", self.close, QKeySequence.StandardKey.Quit)
        job_menu = bar.addMenu("&Job")
        self.submit_action = self._action(job_menu, "Add to queue", self.form.submit, None)
        self.submit_action.setShortcutVisibleInContextMenu(True)
        self.cancel_action = self._action(job_menu, "Cancel selected job", self.queue_panel.cancel_selected, None)
        self._action(job_menu, "Retry selected job", lambda: self.queue_panel._act("retry"))
        self._action(job_menu, "Resume selected job", lambda: self.queue_panel._act("resume"))
        self._action(job_menu, "Open output folder", self.queue_panel.open_folder)
        tools = bar.addMenu("&Tools")
        self._action(tools, "Settings…", lambda: self.open_settings("general"), "Ctrl+,")
        self._action(tools, "Models…", lambda: self.open_settings("models"))
        self._action(tools, "System check…", lambda: self.open_settings("system"))
        help_menu = bar.addMenu("&Help")
        self._action(help_menu, "About", self.about)

    def _build_status_bar(self) -> None:
        self.engine_label = QLabel()
        self.statusBar().addPermanentWidget(self.engine_label)
        if self.choice.is_test:
            badge = QLabel("TEST ENGINE: jobs are fake (MULTITALK_DESKTOP_TEST_ENGINE)")
            badge.setObjectName("banner")
            self.statusBar().addWidget(badge)
        self._on_engine_state("stopped", "")

    def _connect(self) -> None:
        self.form.submit_requested.connect(self.submit)
        self.queue_panel.selection_changed.connect(self.preview.show_job)
        self.queue_panel.queue_changed.connect(self.worker.wake)
        self.preview.export_requested.connect(self.open_export)
        self.worker.job_started.connect(self._on_job_started)
        self.worker.job_progress.connect(self.table_model.set_live_progress)
        self.worker.job_progress.connect(self.preview.on_progress)
        self.worker.job_finished.connect(self._on_job_finished)
        self.worker.engine_state.connect(self._on_engine_state)
        self.banner.resume_all.connect(self.resume_jobs)

    # ------------------------------------------------------------------ actions
    def open_files(self, files: list[str]) -> None:
        """Files from the command line or a drop on the window: an image, voices (or videos), or an
        official request JSON."""
        for path in files:
            suffix = Path(path).suffix.lower()
            if suffix in IMAGE_SUFFIXES:
                self.form_model.set_image(str(Path(path).resolve()))
            elif suffix in AUDIO_SUFFIXES + VIDEO_SUFFIXES:
                self.form_model.add_voice(str(Path(path).resolve()))
            elif suffix == ".json":
                self.load_request_json(path)
            else:
                self.statusBar().showMessage(f"{Path(path).name}: not an image, voice or request file.", 8000)

    def add_voice(self) -> None:
        self.form.choose_voice(min(len(self.form_model.voices), 1))

    def open_request_json(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a request", "", "Requests (*.json)")
        if path:
            self.load_request_json(path)

    def load_request_json(self, path: str) -> None:
        try:
            self.form_model.load_request(request_from_official_json(path))
        except MultiTalkError as err:
            QMessageBox.warning(self, APP_TITLE, err.user_text())

    def submit(self, request) -> None:
        """Queue the request. The submit copies the inputs into the job folder and syncs them to
        disk (tens to hundreds of milliseconds, more for big files), so it runs in the task pool;
        `job_submitted` fires on the GUI thread when the job is in the database."""
        self.form.submit_button.setEnabled(False)
        self.statusBar().showMessage("Adding the job to the queue…")
        queue = self.queue

        def done(job: Job) -> None:
            self.table_model.refresh(force=True)
            self.queue_panel.select_job(job.id)
            self.worker.wake()
            self.form._update_submit()
            self.statusBar().showMessage(f"Job {job.id[:8]} queued.", 5000)
            self.job_submitted.emit(job)

        def failed(err: BaseException) -> None:
            self.form._update_submit()
            if isinstance(err, ValidationFailed):
                self.form_model.validate_now()
                self.statusBar().showMessage(err.message, 10000)
            elif isinstance(err, MultiTalkError):
                self.statusBar().clearMessage()
                QMessageBox.warning(self, APP_TITLE, err.user_text())
            else:
                self.statusBar().showMessage(f"The job could not be queued: {err}", 15000)

        self.pool.submit(lambda: queue.submit(request), done, failed)

    def resume_jobs(self, job_ids: list[str]) -> None:
        for job_id in job_ids:
            try:
                self.queue.resume(job_id)
            except MultiTalkError as err:
                self.statusBar().showMessage(err.user_text(), 8000)
        self.banner.hide()
        self.table_model.refresh(force=True)
        self.worker.wake()

    def export_selected(self) -> None:
        job = self.queue_panel.selected_job()
        if job is not None and job.state == "completed":
            self.open_export(job)
        else:
            self.statusBar().showMessage("Select a finished job to export its video.", 5000)

    def open_export(self, job: Job) -> None:
        from multitalk_desktop.gui.export_dialog import ExportDialog

        dialog = ExportDialog(job, self.pool, self)
        dialog.open()
        self._export_dialog = dialog

    def open_settings(self, page: str = "general") -> None:
        from multitalk_desktop.gui.settings_dialog import SettingsDialog

        server = self.api_server
        dialog = SettingsDialog(self.ctx, self.pool, self, page=page,
                                api_url=server.url if server is not None and server.running else None)
        dialog.settings_saved.connect(self._on_settings_saved)
        dialog.open()
        self._settings_dialog = dialog

    def _on_settings_saved(self, engine_changed: bool) -> None:
        self.apply_api_setting()
        self.form_model.set_models_dir(self.ctx.models_dir)
        if engine_changed:
            self.worker.reload_engine()
            self.statusBar().showMessage("Settings saved. The next job loads the engine with them.", 6000)
        else:
            self.statusBar().showMessage("Settings saved.", 4000)
        self.worker.wake()

    def about(self) -> None:
        from multitalk_desktop import __version__

        QMessageBox.about(self, APP_TITLE, f"<b>{APP_TITLE}</b> {__version__}<br>Talking videos from a portrait "
                          "and voices, on your own GPU (MeiGen-AI MultiTalk).")

    # ------------------------------------------------------------------ worker events
    def _on_job_started(self, job: Job) -> None:
        self.table_model.refresh(force=True)
        self._refresh_selected()

    def _on_job_finished(self, job: Job) -> None:
        self.table_model.refresh(force=True)
        self._refresh_selected()
        self.notifier.job_finished(job)
        if job.state == "failed":
            self.statusBar().showMessage(f"Job {job.id[:8]} failed: {job.error}", 15000)
        elif job.state == "completed":
            self.statusBar().showMessage(f"Job {job.id[:8]} finished: {job.output}", 10000)

    def _refresh_selected(self) -> None:
        self.queue_panel._selection_moved()

    def _on_engine_state(self, state: str, message: str) -> None:
        if self.choice.is_test:
            words = {"stopped": "Engine: test engine", "loading": "Engine: starting the test engine…",
                     "ready": "Engine: test engine ready"}
        else:
            words = {"stopped": "Engine: loads when the first job starts",
                     "loading": "Engine: loading the models (this can take a few minutes)…",
                     "ready": "Engine: MultiTalk loaded"}
        if state == "waiting":
            text = "Engine: another process runs the queue"
        else:
            text = words.get(state, f"Engine problem: {message}")
        self.engine_label.setText(text)
        self.engine_label.setToolTip(message)
        if state == "failed":
            self.statusBar().showMessage(f"The engine could not start: {message}", 20000)

    def open_models_page_if_missing(self) -> bool:
        """First start without model files: the models page says where they go and how to get
        them. Not with the test engine, which needs none. True when the page was opened."""
        if self.choice.is_test or self.models_ready():
            return False
        self.open_settings("models")
        return True

    def models_ready(self) -> bool:
        try:
            from multitalk_desktop.engine.model_files import check_models
        except ImportError:
            return False
        try:
            return bool(check_models(self.ctx.models_dir).ready)
        except Exception:
            return False

    # ------------------------------------------------------------------ closing
    def running_job_id(self) -> str | None:
        running = [j.id for j in self.table_model.jobs() if j.state == "running"]
        return self.worker.running_job_id or (running[0] if running and self.worker.is_running else None)

    def ask_to_close_with_running_job(self) -> bool:
        """True when the user agrees to cancel the running job and quit."""
        box = QMessageBox(QMessageBox.Icon.Question, APP_TITLE,
                          "A job is running. Cancel it and quit?\n\nQueued jobs stay in the queue and "
                          "start again the next time the app opens.", parent=self)
        quit_button = box.addButton("Cancel the job and quit", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("Keep working", QMessageBox.ButtonRole.RejectRole)
        box.setObjectName("closeRunningJobPrompt")
        self._close_prompt = box
        box.exec()
        return box.clickedButton() is quit_button

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._closing:
            event.accept()
            return
        running = self.running_job_id()
        if running and not self.ask_to_close_with_running_job():
            event.ignore()
            return
        self._closing = True
        if running:
            try:
                self.queue.cancel(running)
            except MultiTalkError:
                pass
        self.shutdown()
        event.accept()

    def shutdown(self) -> None:
        """Stop everything this window started, joining every thread. Safe to call twice."""
        if getattr(self, "_shut_down", False):
            return
        self._shut_down = True
        self.table_model.stop_polling()
        self.preview.stop_player()
        self.worker.stop()
        self.pool.shutdown()
        if self.api_server is not None:
            self.api_server.stop()
            self.api_server = None
        self.notifier.hide()
        self.queue.close()


def quit_after(window: MainWindow, ms: int) -> None:
    """Test-only (MULTITALK_DESKTOP_QUIT_AFTER_MS): close the window after `ms` milliseconds."""
    QTimer.singleShot(ms, window.close)
