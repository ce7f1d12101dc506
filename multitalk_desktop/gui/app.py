"""`run_app(files)`: the QApplication and the main window.

Torch is not imported here (the engine loads lazily in the worker thread), so the window opens
in about a second. Test-only environment variables, documented in docs/GUI.md:
`MULTITALK_DESKTOP_TEST_ENGINE=1` (fake engine, clearly marked) and
`MULTITALK_DESKTOP_QUIT_AFTER_MS=N` (close the window after N ms, for the Xvfb smoke test).
"""

from __future__ import annotations

import os
import signal
import sys
import time

QUIT_AFTER_ENV = "MULTITALK_DESKTOP_QUIT_AFTER_MS"
_STARTED = time.perf_counter()


def make_application(argv: list[str] | None = None):
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    from multitalk_desktop.gui.theme import app_icon, apply_theme

    app = QApplication.instance()
    if app is None:
        # Fractional scale factors (125 %, 150 %) as the screen asks, not rounded to 100/200 %.
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication(argv or [sys.argv[0]])
    app.setApplicationName("MultiTalk Desktop")
    app.setOrganizationName("MultiTalkDesktop")
    app.setApplicationDisplayName("MultiTalk Desktop")
    app.setDesktopFileName("multitalk-desktop")
    app.setWindowIcon(app_icon())
    apply_theme(app)
    return app


def run_app(files: list[str]) -> int:
    from PySide6.QtCore import QTimer

    from multitalk_desktop.config import load_context
    from multitalk_desktop.gui.engine_choice import TEST_ENGINE_FLAG, engine_choice_from_env
    from multitalk_desktop.gui.main_window import MainWindow

    choice = engine_choice_from_env(files)
    files = [f for f in files if f != TEST_ENGINE_FLAG]
    app = make_application()
    ctx = load_context()
    window = MainWindow(ctx, choice, files)
    window.show()
    shown_after = time.perf_counter() - _STARTED
    if os.environ.get("MULTITALK_DESKTOP_PRINT_STARTUP"):
        print(f"window shown after {shown_after:.2f} s", flush=True)
    QTimer.singleShot(0, window.open_models_page_if_missing)
    quit_after = os.environ.get(QUIT_AFTER_ENV)
    if quit_after:
        QTimer.singleShot(int(quit_after), window.close)
    # Ctrl+C / SIGTERM close the window the normal way (jobs cancelled, threads joined).
    signal.signal(signal.SIGINT, lambda *_: QTimer.singleShot(0, window.close))
    signal.signal(signal.SIGTERM, lambda *_: QTimer.singleShot(0, window.close))
    heartbeat = QTimer()
    heartbeat.timeout.connect(lambda: None)  # lets Python run its signal handlers while Qt waits
    heartbeat.start(250)
    code = app.exec()
    window.shutdown()
    return int(code)
