"""Render the main window offscreen to PNGs, so the look can be reviewed without a screen:
`python -m multitalk_desktop.gui.snapshots OUTDIR` (or `multitalk-desktop snapshots OUTDIR`).

empty.png    a fresh window
form.png     the example portrait, two voices, their boxes and the expected length
queue.png    a running, a completed, a failed (out of memory) and a queued job
preview.png  the finished job playing over its timeline (waveform lanes, thumbnails)

Everything happens in a temporary data folder with the test engine, so the user's jobs, settings
and models are never touched. The completed job is really run by the runner and the test engine;
the running and failed jobs are staged in the database (a claim with a progress heartbeat, and a
failure with the engine's real out-of-memory message), because a snapshot cannot wait for a GPU.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "resources" / "examples"
NAMES = ("empty.png", "form.png", "queue.png", "preview.png")


def _pump(app, seconds: float, until=None) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        if until is not None and until():
            return True
        time.sleep(0.01)
    return until() if until is not None else True


def _save(window, path: Path) -> Path:
    window.grab().save(str(path))
    return path


def render_snapshots(outdir: str | os.PathLike) -> list[Path]:
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    saved_home = os.environ.get("MULTITALK_DESKTOP_HOME")
    with tempfile.TemporaryDirectory(prefix="multitalk-snapshots-") as home:
        os.environ["MULTITALK_DESKTOP_HOME"] = home
        try:
            return _render(out)
        finally:
            if saved_home is None:
                os.environ.pop("MULTITALK_DESKTOP_HOME", None)
            else:
                os.environ["MULTITALK_DESKTOP_HOME"] = saved_home


def _render(out: Path) -> list[Path]:
    from multitalk_desktop.config import load_context
    from multitalk_desktop.engine.test_engine import TestEngine
    from multitalk_desktop.errors import OutOfMemory
    from multitalk_desktop.gui.app import make_application
    from multitalk_desktop.gui.engine_choice import EngineChoice
    from multitalk_desktop.gui.main_window import MainWindow
    from multitalk_desktop.jobs.runner import Runner
    from multitalk_desktop.jobs.spec import JobRequest

    app = make_application()
    ctx = load_context()
    window = MainWindow(ctx, EngineChoice("test"), start_worker=False)
    written: list[Path] = []
    try:
        window.resize(1280, 800)
        window.show()
        _pump(app, 0.3)
        written.append(_save(window, out / "empty.png"))

        image = str(EXAMPLES / "multi3.png")
        man, woman = str(EXAMPLES / "1-man.WAV"), str(EXAMPLES / "1-woman.WAV")
        window.open_files([image, man, woman])
        window.form.prompt_edit.setPlainText(
            "In a cozy recording studio, a man and a woman are singing together.")
        model = window.form_model
        _pump(app, 20, lambda: model.report is not None and not model.validating
              and window.form.box_editor._image is not None)
        _pump(app, 0.3)
        written.append(_save(window, out / "form.png"))

        queue = window.queue
        base = model.request()

        def submit(prompt: str, seed: int, mode: str = "quality") -> str:
            req = JobRequest(**{**base.__dict__, "prompt": prompt, "seed": seed, "mode": mode,
                                "steps": 8 if mode == "fast" else 40})
            return queue.submit(req).id

        done_id = submit("A man and a woman sing a duet in a cozy recording studio.", 7, "fast")
        Runner(queue, lambda: TestEngine()).run_next()
        failed_id = submit("Two friends chat on a sunny balcony, warm light.", 11)
        worker = "snapshot@staged"
        queue.store.claim(worker, produced_by="test-engine")
        queue.store.transition(failed_id, "failed", "out of memory", error=OutOfMemory().user_text())
        running_id = submit("A podcast host interviews a guest, soft studio light.", 21)
        from multitalk_desktop.jobs.store import this_worker_id

        queue.store.claim(this_worker_id(), produced_by="test-engine")
        queue.store.heartbeat(running_id, this_worker_id(), {
            "phase": "denoising", "clip": 2, "clips": 5, "step": 13, "steps": 40,
            "percent": 26.5, "eta_seconds": 184})
        submit("Two singers face each other and laugh between verses.", 33)
        window.table_model.refresh(force=True)
        window.queue_panel.select_job(failed_id)
        _pump(app, 1.0)
        written.append(_save(window, out / "queue.png"))

        window.queue_panel.select_job(done_id)
        _pump(app, 30, lambda: bool(window.preview.timeline.lanes())
              and window.preview.timeline.lanes()[0].peaks is not None
              and window.preview.video_view.image() is not None)
        window.preview.timeline.set_position(int(window.preview.timeline.duration() * 0.4))
        _pump(app, 0.3)
        written.append(_save(window, out / "preview.png"))
        del running_id
    finally:
        window._closing = True
        window.close()
        window.shutdown()
        window.deleteLater()
        _pump(app, 0.1)
    return written


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: python -m multitalk_desktop.gui.snapshots OUTDIR", file=sys.stderr)
        return 2
    for path in render_snapshots(argv[0]):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
