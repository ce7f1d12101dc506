"""GUI responsiveness: start-up time to a visible window, and the longest event-loop stall while a
job runs (target: under 50 ms).

    .venv/bin/python bench/gui_stall_bench.py [--step-seconds 0.02] [--steps 20]

The stall is measured with a 5 ms QTimer: the largest gap between two ticks, minus the 5 ms
interval, from the job's start until its preview (player, waveform lanes, thumbnails) is loaded.
The job runs in the window's real worker QThread with the test engine (torch-free), so this
measures the GUI's own work (signals, table refreshes, painting), not the GPU. Runs in a
temporary data folder, offscreen unless QT_QPA_PLATFORM says otherwise.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "resources" / "examples"


def startup_seconds(home: str) -> float:
    """From launching `python -m multitalk_desktop` to the window being shown."""
    env = dict(os.environ, MULTITALK_DESKTOP_HOME=home, MULTITALK_DESKTOP_TEST_ENGINE="1",
               MULTITALK_DESKTOP_PRINT_STARTUP="1", MULTITALK_DESKTOP_QUIT_AFTER_MS="300")
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "multitalk_desktop"], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    shown = None
    for line in proc.stdout:
        if line.startswith("window shown") and shown is None:
            shown = time.perf_counter() - start
    proc.wait(timeout=60)
    if shown is None:
        raise SystemExit(f"the window never reported being shown (exit code {proc.returncode})")
    return shown


def stall_ms(home: str, step_seconds: float, steps: int) -> tuple[float, int, float]:
    os.environ["MULTITALK_DESKTOP_HOME"] = home
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QTimer

    from multitalk_desktop.config import load_context
    from multitalk_desktop.gui.app import make_application
    from multitalk_desktop.gui.engine_choice import EngineChoice
    from multitalk_desktop.gui.main_window import MainWindow

    app = make_application()
    window = MainWindow(load_context(), EngineChoice("test", step_seconds))
    window.show()
    window.open_files([str(EXAMPLES / "multi3.png"), str(EXAMPLES / "1-man.WAV"), str(EXAMPLES / "1-woman.WAV")])
    window.form.steps_spin.setValue(steps)
    deadline = time.monotonic() + 30
    while (window.form_model.report is None or window.form_model.validating
           or window.form.box_editor._image is None) and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.005)
    gaps: list[float] = []
    last = [time.perf_counter()]
    measuring = [False]

    def tick() -> None:
        now = time.perf_counter()
        if measuring[0]:
            gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.setInterval(5)
    timer.timeout.connect(tick)
    timer.start()
    progress_events = [0]
    window.worker.job_progress.connect(lambda *_: progress_events.__setitem__(0, progress_events[0] + 1))
    submitted: list = []
    window.job_submitted.connect(submitted.append)
    measuring[0] = True
    window.submit(window.form_model.request())
    while not submitted:
        app.processEvents()
        time.sleep(0.001)
    job = submitted[0]
    started = time.perf_counter()
    finished = [False]
    window.worker.job_finished.connect(lambda j: finished.__setitem__(0, True))
    window.preview.timeline_loaded.connect(lambda: finished.__setitem__(0, finished[0] and "loaded"))
    while finished[0] != "loaded" and time.perf_counter() - started < 600:
        app.processEvents()
        time.sleep(0.001)
        if finished[0] is True:
            window.queue_panel.select_job(job.id)
    measuring[0] = False
    elapsed = time.perf_counter() - started
    timer.stop()
    window._closing = True
    window.close()
    window.shutdown()
    worst = max(gaps) * 1000 - 5 if gaps else 0.0
    return worst, progress_events[0], elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step-seconds", type=float, default=0.02)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gui-bench-") as a, tempfile.TemporaryDirectory(prefix="gui-bench-") as b:
        shown = startup_seconds(a)
        worst, events, elapsed = stall_ms(b, args.step_seconds, args.steps)
    print(f"start-up to a visible window: {shown:.2f} s (process launch to window shown, test engine)")
    print(f"longest event-loop stall during a running job: {worst:.1f} ms "
          f"(target < 50 ms; {events} progress events over {elapsed:.1f} s, 5 ms probe timer)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
