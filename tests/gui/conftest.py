"""Fixtures for the window tests: real widgets offscreen, a real SQLite store in the per-test
data folder, the test engine in a real worker QThread. Every fixture that starts a thread joins
it in its teardown and checks that it ended (a live QThread at exit aborts pytest)."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import multitalk_desktop.gui  # noqa: E402,F401  (PySide6 refcount guard before Qt is used)


@pytest.fixture
def ctx(isolated_home):
    from multitalk_desktop.config import load_context

    return load_context()


@pytest.fixture
def pool(qtbot):
    from multitalk_desktop.gui.background import TaskPool

    p = TaskPool()
    yield p
    p.shutdown()


@pytest.fixture
def make_window(qtbot, ctx):
    """make_window(step_seconds=0.0, start_worker=True) -> MainWindow with the test engine."""
    from multitalk_desktop.gui.engine_choice import EngineChoice
    from multitalk_desktop.gui.main_window import MainWindow

    windows = []

    def make(step_seconds: float = 0.0, start_worker: bool = True):
        # Not qtbot.addWidget: pytest-qt closes those before this fixture's teardown, and a
        # window closed with a job still running (a test that failed midway) asks the user in a
        # modal box, which would hang the run instead of reporting the failure.
        w = MainWindow(ctx, EngineChoice("test", step_seconds), start_worker=start_worker, poll_ms=100)
        windows.append(w)
        return w

    yield make
    for w in windows:
        w._closing = True
        w.shutdown()
        w.close()
        w.deleteLater()
        assert not w.worker.is_running, "the worker thread outlived its window"


@pytest.fixture
def voice_video(tmp_path):
    """A real MP4 with picture and sound (1.5 s of a 220 Hz tone)."""
    from multitalk_desktop.media.video import write_mp4

    t = np.arange(int(1.5 * 16000)) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    frames = np.full((38, 48, 64, 3), 90, np.uint8)
    return write_mp4(frames, 25, tmp_path / "talk.mp4", audio=audio, sample_rate=16000)


def wait_for_report(qtbot, model, timeout=15000):
    qtbot.waitUntil(lambda: model.report is not None and not model.validating, timeout=timeout)
    return model.report
