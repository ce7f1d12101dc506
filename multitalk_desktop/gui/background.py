"""Work that must not run on the GUI thread (waveform peaks, thumbnails, validation probes,
exports, downloads), run on a private thread pool with the result posted back to the GUI thread.

Picard-style: `pool.submit(fn, on_done, on_error)`; the callbacks run on the GUI thread because the
relay object that emits them lives there (a signal emitted from a pool thread to a receiver in
another thread is queued). The pool belongs to a window and is joined when the window closes, so
no worker thread outlives it (a running thread at interpreter exit aborts the process).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal


class _Relay(QObject):
    """Lives in the GUI thread; pool threads emit its signals to reach the GUI thread."""

    done = Signal(object)
    failed = Signal(object)


class _Task(QRunnable):
    def __init__(self, fn: Callable[[], Any], relay: _Relay) -> None:
        super().__init__()
        self._fn = fn
        self._relay = relay
        self.setAutoDelete(True)

    def run(self) -> None:
        try:
            result = self._fn()
        except BaseException as err:  # reported to the GUI, never lost in a pool thread
            err.__traceback_text__ = traceback.format_exc()  # type: ignore[attr-defined]
            self._relay.failed.emit(err)
        else:
            self._relay.done.emit(result)


class TaskPool(QObject):
    """A small thread pool owned by the window; `shutdown()` joins it."""

    def __init__(self, max_threads: int = 2, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_threads)
        self._relays: set[_Relay] = set()
        self._closed = False

    def submit(
        self,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        if self._closed:
            return
        relay = _Relay()
        self._relays.add(relay)

        def finish_ok(result: Any) -> None:
            self._relays.discard(relay)
            if on_done is not None and not self._closed:
                on_done(result)

        def finish_err(err: BaseException) -> None:
            self._relays.discard(relay)
            if on_error is not None and not self._closed:
                on_error(err)

        relay.done.connect(finish_ok)
        relay.failed.connect(finish_err)
        self._pool.start(_Task(fn, relay))

    def wait(self, msecs: int = -1) -> bool:
        return self._pool.waitForDone(msecs)

    def shutdown(self) -> None:
        """Stop accepting work and join every pool thread."""
        self._closed = True
        self._pool.clear()
        self._pool.waitForDone()
