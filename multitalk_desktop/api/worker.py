"""The worker arrangement: one process per machine drives the GPU.

The store's atomic claim already makes it impossible for two workers to take the same job. What it
cannot stop is two processes (the window and `serve`, say) each loading the 14 B model and fighting
over one GPU's memory. So whoever wants to run jobs first takes `<data>/worker.lock`, an OS file
lock (flock on Linux, msvcrt on Windows) that the OS releases when the process dies, so a crash
never leaves it stale. The loser keeps accepting and queueing jobs and tries the lock again every
few seconds: when the window closes, the server takes over its queue, and the other way round.

The window should take the same lock (`MachineWorkerLock(ctx).try_acquire()`) before it starts
its runner.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from multitalk_desktop.config import AppContext
from multitalk_desktop.jobs.worker_lock import RETRY_S, MachineWorkerLock, lock_path  # noqa: F401


class WorkerThread:
    """Runs `Runner.run_until` in a thread while this process holds the machine's worker lock."""

    def __init__(self, ctx: AppContext, make_runner: Callable[[], object],
                 log: Callable[[str], None] | None = None, idle_wait_s: float = 0.2) -> None:
        self.lock = MachineWorkerLock(ctx)
        self.make_runner = make_runner
        self.log = log or (lambda text: None)
        self.idle_wait_s = idle_wait_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runner = None

    @property
    def active(self) -> bool:
        return self.lock.held

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="api-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 60.0) -> None:
        """Stops between jobs. A job still running after `timeout` is left to the heartbeat rule:
        once this process is gone it becomes `interrupted` and can be resumed."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        announced = False
        while not self._stop.is_set():
            if not self.lock.try_acquire():
                if not announced:
                    self.log("Another process (the window or a worker) runs jobs on this machine; "
                             "this server queues jobs and takes over when it stops.")
                    announced = True
                self._stop.wait(RETRY_S)
                continue
            self.log("This server runs queued jobs on this machine.")
            try:
                self.runner = self.make_runner()
                self.runner.run_until(self._stop, idle_wait=self.idle_wait_s)
            except Exception as err:
                self.log(f"The worker stopped: {type(err).__name__}: {err}")
                self._stop.wait(RETRY_S)
            finally:
                runner, self.runner = self.runner, None
                if runner is not None:
                    for close in (runner.close, getattr(getattr(runner, "queue", None), "close", None)):
                        try:
                            if close is not None:
                                close()
                        except Exception:
                            pass
                self.lock.release()
