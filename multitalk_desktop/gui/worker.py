"""The job runner, hosted in a QThread (napari/Picard style: a worker object moved to its own
thread; results travel back to the GUI thread as queued signals).

The engine is created lazily inside the worker thread (loading it imports torch and reads many
gigabytes, which must never happen on the GUI thread) and kept between jobs by the Runner. When
the settings that shape it change (models folder, VRAM profile, device, compiled mode),
`reload_engine()` drops it between jobs, never during one: the next job loads it again with the
new settings. The worker has its own database connection; the GUI's table model sees its writes
through `data_version()` and its progress through the signals here, without waiting for the
database.
"""

from __future__ import annotations

import threading
import traceback

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from multitalk_desktop.config import AppContext
from multitalk_desktop.engine.protocol import ProgressEvent
from multitalk_desktop.errors import MultiTalkError
from multitalk_desktop.gui.engine_choice import EngineChoice
from multitalk_desktop.jobs.queue import JobQueue
from multitalk_desktop.jobs.runner import Runner
from multitalk_desktop.jobs.store import Job
from multitalk_desktop.jobs.worker_lock import RETRY_S, MachineWorkerLock

IDLE_WAIT_S = 0.3  # how soon a newly queued job starts when the worker is idle


class RunnerWorker(QObject):
    """Lives in the worker thread. `run()` loops until `stop()`; every callback becomes a signal."""

    job_started = Signal(object)  # Job
    job_progress = Signal(str, object)  # job id, ProgressEvent
    job_finished = Signal(object)  # Job in its final state
    engine_state = Signal(str, str)  # state ("loading", "ready", "failed", "stopped"), message
    stopped = Signal()

    def __init__(self, ctx: AppContext, choice: EngineChoice) -> None:
        super().__init__()
        self._ctx = ctx
        self._choice = choice
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._reload = threading.Event()
        self._runner: Runner | None = None

    def _make_engine(self):
        from multitalk_desktop.jobs.engines import make_engine

        self.engine_state.emit("loading", "Loading the engine…")
        settings = self._ctx.settings
        models_dir, device, profile = self._ctx.models_dir, settings.device, settings.profile
        compile_blocks = settings.compile_blocks
        engine = make_engine(self._choice.kind, models_dir=models_dir, device=device,
                             profile=profile, step_seconds=self._choice.step_seconds,
                             max_frames=settings.max_frames or None, compile_blocks=compile_blocks)
        # The settings it was made with, in the status bar's tooltip: which ones the next job uses.
        self.engine_state.emit("ready", f"{getattr(engine, 'name', 'engine')}: profile {profile}, "
                               f"device {device}, compile {'on' if compile_blocks else 'off'}, "
                               f"models {models_dir}")
        return engine

    @Slot()
    def run(self) -> None:
        queue = JobQueue(self._ctx)
        listener = _Listener(self)
        runner = Runner(queue, self._make_engine, listener=listener)
        self._runner = runner
        # One process per GPU runs jobs: `serve` or `worker` may already hold it. The queue is
        # shared, so jobs submitted here still run there, and this window takes over when it stops.
        gpu_lock = MachineWorkerLock(self._ctx)
        told_busy = False
        try:
            queue.apply_retention()  # the user's keep-last-N / N-days settings; 0 keeps all
            while not self._stop.is_set():
                if not queue.store.queued():
                    # Runner.run_next loads the engine before it claims; with nothing queued the
                    # engine (gigabytes of GPU memory) must not be loaded just because the window is open.
                    self._wake.wait(IDLE_WAIT_S)
                    self._wake.clear()
                    continue
                if not gpu_lock.try_acquire():
                    if not told_busy:
                        self.engine_state.emit(
                            "waiting", "Another MultiTalk process (serve or a worker) is running "
                            "jobs on this machine; it runs this queue too.")
                        told_busy = True
                    self._stop.wait(RETRY_S)
                    continue
                told_busy = False
                if self._reload.is_set():
                    # Between jobs (this loop never runs during one): the next run_next makes a new
                    # engine from the settings as they are now.
                    self._reload.clear()
                    runner.close()
                    self.engine_state.emit("stopped", "")
                try:
                    job = runner.run_next()
                except MultiTalkError as err:
                    # e.g. model files missing: the queued jobs stay queued, the window says why,
                    # and the next try waits for a nudge (a new job, fixed settings).
                    self.engine_state.emit("failed", err.user_text())
                    self._wait_for_wake()
                    continue
                except Exception as err:
                    traceback.print_exc()
                    self.engine_state.emit("failed", f"{type(err).__name__}: {err}")
                    self._wait_for_wake()
                    continue
                if job is None:
                    self._wake.wait(IDLE_WAIT_S)
                    self._wake.clear()
        finally:
            try:
                runner.close()
            finally:
                gpu_lock.release()
                queue.close()
                self._runner = None
                self.engine_state.emit("stopped", "")
                self.stopped.emit()

    def _wait_for_wake(self) -> None:
        self._wake.clear()
        self._wake.wait()
        self._wake.clear()

    # Called from the GUI thread
    def wake(self) -> None:
        self._wake.set()

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def reload_engine(self) -> None:
        self._reload.set()
        self._wake.set()

    @property
    def current_job_id(self) -> str | None:
        runner = self._runner
        return runner.current_job_id if runner is not None else None


class _Listener:
    """The Runner calls `job_started` etc. in the worker thread; these emit the worker's signals of
    the same names (queued to the GUI thread). A separate object because on the worker itself
    those names are the signals."""

    def __init__(self, worker: RunnerWorker) -> None:
        self._worker = worker

    def job_started(self, job: Job) -> None:
        self._worker.job_started.emit(job)

    def job_progress(self, job_id: str, event: ProgressEvent) -> None:
        self._worker.job_progress.emit(job_id, event)

    def job_finished(self, job: Job) -> None:
        self._worker.job_finished.emit(job)


class WorkerHost(QObject):
    """Owns the thread and the worker; the window talks to this from the GUI thread."""

    job_started = Signal(object)
    job_progress = Signal(str, object)
    job_finished = Signal(object)
    engine_state = Signal(str, str)

    def __init__(self, ctx: AppContext, choice: EngineChoice, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.choice = choice
        self._thread: QThread | None = None
        self._worker: RunnerWorker | None = None
        self.running_job_id: str | None = None
        self.engine_status = ("stopped", "")

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.isRunning()

    def start(self) -> None:
        if self.is_running:
            return
        thread = QThread()
        thread.setObjectName("multitalk-runner")
        worker = RunnerWorker(self.ctx, self.choice)
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        # Direct: the GUI thread is blocked in thread.wait() while this fires, so a queued quit
        # would never be delivered (QThread.quit is thread-safe, and before exec() it makes exec
        # return at once).
        worker.stopped.connect(thread.quit, Qt.ConnectionType.DirectConnection)
        worker.job_started.connect(self._on_started)
        worker.job_progress.connect(self.job_progress)
        worker.job_finished.connect(self._on_finished)
        worker.engine_state.connect(self._on_engine_state)
        self._thread, self._worker = thread, worker
        thread.start()

    def wake(self) -> None:
        if self._worker is not None:
            self._worker.wake()

    def reload_engine(self) -> None:
        """The engine settings changed: the loaded engine is dropped after the running job (if any)
        and the next job loads a new one. Without a worker running, the next start reads them."""
        if self._worker is not None:
            self._worker.reload_engine()

    def stop(self, timeout_ms: int = 60_000) -> bool:
        """Ask the loop to end after the current job (cancel that first if it must not finish)
        and join the thread. True when the thread ended in time."""
        thread, worker = self._thread, self._worker
        if thread is None or worker is None:
            return True
        worker.request_stop()
        ended = thread.wait(timeout_ms)
        if ended:
            # Deliver the last queued signals (job_finished, stopped) before the objects go.
            from PySide6.QtCore import QCoreApplication

            QCoreApplication.sendPostedEvents(None, 0)
            self._thread, self._worker = None, None
            worker.deleteLater()
            thread.deleteLater()
        return ended

    def _on_started(self, job: Job) -> None:
        self.running_job_id = job.id
        self.job_started.emit(job)

    def _on_finished(self, job: Job) -> None:
        if self.running_job_id == job.id:
            self.running_job_id = None
        self.job_finished.emit(job)

    def _on_engine_state(self, state: str, message: str) -> None:
        self.engine_status = (state, message)
        self.engine_state.emit(state, message)
