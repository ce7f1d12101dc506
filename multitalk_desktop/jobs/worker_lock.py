"""One process per machine (per GPU slot) drives the GPU.

The store's atomic claim already makes it impossible for two workers to take the same job. What it
cannot stop is two processes (the window, `serve`, `worker`) each loading the 14 B model and
fighting over one GPU's memory. So whoever wants to run jobs first takes `<data>/worker.lock`, an
OS file lock (flock on Linux, msvcrt on Windows) that the OS releases when the process dies, so a
crash never leaves it stale. With several GPUs, give each worker its own `CUDA_VISIBLE_DEVICES` and
`MULTITALK_WORKER_SLOT` (a number): each slot has its own lock file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from multitalk_desktop.config import AppContext

LOCK_FILE = "worker.lock"
RETRY_S = 3.0


def lock_path(ctx: AppContext) -> Path:
    slot = os.environ.get("MULTITALK_WORKER_SLOT", "").strip()
    name = f"worker{slot}.lock" if slot.isdigit() else LOCK_FILE
    return ctx.paths.data_dir / name


class MachineWorkerLock:
    def __init__(self, ctx: AppContext) -> None:
        self.path = lock_path(ctx)
        self._fh = None

    @property
    def held(self) -> bool:
        return self._fh is not None

    def try_acquire(self) -> bool:
        if self._fh is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
                import msvcrt

                fh.seek(0)
                msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return False
        # Who holds it, for people looking at the folder; the lock, not the text, is the truth.
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._fh = fh
        return True

    def release(self) -> None:
        if self._fh is None:
            return
        try:
            if sys.platform == "win32":  # pragma: no cover
                import msvcrt

                self._fh.seek(0)
                msvcrt.locking(self._fh.fileno(), msvcrt.LK_UNLCK, 1)
            else:
                import fcntl

                fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
        finally:
            self._fh.close()
            self._fh = None

    def someone_holds_it(self) -> bool:
        """True when a worker (this process or another) runs jobs on this machine."""
        if self.held:
            return True
        if self.try_acquire():
            self.release()
            return False
        return True
