"""One worker per machine: the window, `serve` and `worker` share one GPU lock."""

from __future__ import annotations

import subprocess
import sys

from multitalk_desktop.config import load_context
from multitalk_desktop.jobs.worker_lock import MachineWorkerLock


def test_worker_once_refuses_while_another_process_holds_the_gpu_lock():
    lock = MachineWorkerLock(load_context())
    assert lock.try_acquire()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "multitalk_desktop", "worker", "--once", "--test-engine"],
            capture_output=True, text=True, timeout=60,
        )
    finally:
        lock.release()
    assert proc.returncode == 1
    assert "Another MultiTalk process" in proc.stderr


def test_the_lock_is_free_again_once_released():
    first, second = MachineWorkerLock(load_context()), MachineWorkerLock(load_context())
    assert first.try_acquire()
    assert not second.try_acquire()
    first.release()
    assert second.try_acquire()
    second.release()
