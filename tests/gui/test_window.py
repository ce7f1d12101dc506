"""The main window with the test engine in its worker thread: submit, progress, cancel, restart,
closing with a running job."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from multitalk_desktop.gui.queue_model import COL_PROGRESS
from multitalk_desktop.jobs.queue import JobQueue
from multitalk_desktop.jobs.spec import JobRequest
from tests.gui.conftest import wait_for_report


def fill_form(qtbot, window, examples, voices=("1-man.WAV", "1-woman.WAV"), steps=4):
    window.open_files([str(examples / "multi3.png")] + [str(examples / v) for v in voices])
    window.form.steps_spin.setValue(steps)
    assert wait_for_report(qtbot, window.form_model).ok
    qtbot.waitUntil(window.form.submit_button.isEnabled, timeout=5000)


def submit(qtbot, window):
    with qtbot.waitSignal(window.job_submitted, timeout=20000) as blocker:
        window.submit(window.form_model.request())
    return blocker.args[0]


def progress_text(window, job_id):
    row = window.table_model.row_of(job_id)
    return "" if row is None else window.table_model.index(row, COL_PROGRESS).data()


def test_submit_creates_a_job_in_the_store(qtbot, make_window, examples, ctx):
    window = make_window(start_worker=False)
    fill_form(qtbot, window, examples)
    with qtbot.waitSignal(window.job_submitted, timeout=20000):
        window.form.submit_button.click()
    jobs = window.queue.list()
    assert len(jobs) == 1 and jobs[0].state == "queued"
    assert jobs[0].request["steps"] == 4 and len(jobs[0].request["audio"]) == 2
    assert window.queue_panel.selected_job().id == jobs[0].id
    # another process (a fresh connection) sees the same row
    with JobQueue(ctx) as other:
        assert other.get(jobs[0].id).state == "queued"


def test_the_queue_follows_the_worker_until_the_video_plays(qtbot, make_window, examples):
    window = make_window(step_seconds=0.03)
    fill_form(qtbot, window, examples, voices=("1-man.WAV",), steps=6)
    seen = []
    window.worker.job_progress.connect(lambda job_id, ev: seen.append(progress_text(window, job_id)))
    job = submit(qtbot, window)
    qtbot.waitUntil(lambda: any("clip 1/" in t and "step" in t for t in seen), timeout=20000)
    assert any(" - step " in t for t in seen)
    qtbot.waitUntil(lambda: window.queue.get(job.id).state == "completed", timeout=60000)
    qtbot.waitUntil(lambda: progress_text(window, job.id) == "Done", timeout=5000)
    # the finished job's preview: player source set, timeline lanes and thumbnails loaded
    window.queue_panel.select_job(job.id)
    qtbot.waitUntil(lambda: bool(window.preview.timeline.lanes()) and bool(window.preview.timeline._thumbs),
                    timeout=20000)
    assert window.preview.play_button.isEnabled() and window.preview.export_button.isEnabled()
    assert window.notifier.messages and window.notifier.messages[-1][0] == "Video ready"


def test_cancel_from_the_window_stops_the_running_job(qtbot, make_window, examples):
    window = make_window(step_seconds=0.1)
    fill_form(qtbot, window, examples, steps=40)
    job = submit(qtbot, window)
    qtbot.waitUntil(lambda: window.worker.running_job_id == job.id, timeout=20000)
    window.queue_panel.select_job(job.id)
    qtbot.waitUntil(window.queue_panel.cancel_button.isEnabled, timeout=5000)
    window.queue_panel.cancel_button.click()
    qtbot.waitUntil(lambda: window.queue.get(job.id).state == "cancelled", timeout=10000)
    # the database says cancelled a moment before the worker's job_finished signal arrives
    qtbot.waitUntil(lambda: window.worker.running_job_id is None, timeout=5000)
    assert window.queue.get(job.id).output is None


def test_a_restart_shows_the_persisted_queue_and_offers_to_resume(qtbot, make_window, examples, ctx):
    with JobQueue(ctx) as q:
        req = JobRequest(image=str(examples / "single1.png"), audio=[str(examples / "1.wav")], steps=3)
        crashed = q.submit(req)
        waiting = q.submit(req)
        # a worker that died mid-job (no such process)
        q.store.claim("999999999@" + __import__("socket").gethostname(), produced_by="test-engine")
    window = make_window(start_worker=False)
    states = {j.id: j.state for j in window.table_model.jobs()}
    assert states == {crashed.id: "interrupted", waiting.id: "queued"}
    assert window.banner.isVisibleTo(window) and window.banner.job_ids() == [crashed.id]
    window.banner.resume_button.click()
    assert window.queue.get(crashed.id).state == "queued"
    assert not window.banner.isVisibleTo(window)


def test_a_failed_job_shows_its_error_with_a_copy_button(qtbot, make_window, examples, ctx):
    from multitalk_desktop.errors import OutOfMemory

    with JobQueue(ctx) as q:
        job = q.submit(JobRequest(image=str(examples / "single1.png"), audio=[str(examples / "1.wav")]))
        q.store.claim("x@y")
        q.store.transition(job.id, "failed", "oom", error=OutOfMemory().user_text())
    window = make_window(start_worker=False)
    window.queue_panel.select_job(job.id)
    details = window.preview.details
    qtbot.waitUntil(lambda: details.copy_error_button.isVisibleTo(window), timeout=5000)
    assert "lower VRAM profile" in details.error_label.text()
    details.copy_error_button.click()
    assert QApplication.clipboard().text().startswith("The GPU ran out of memory.")


def test_closing_with_a_running_job_asks_then_cancels_and_joins_the_thread(qtbot, make_window, examples):
    window = make_window(step_seconds=0.1)
    fill_form(qtbot, window, examples, steps=40)
    job = submit(qtbot, window)
    qtbot.waitUntil(lambda: window.worker.running_job_id == job.id, timeout=20000)

    def answer(button_text):
        box = next(w for w in QApplication.topLevelWidgets()
                   if isinstance(w, QMessageBox) and w.objectName() == "closeRunningJobPrompt" and w.isVisible())
        next(b for b in box.buttons() if b.text() == button_text).click()

    QTimer.singleShot(200, lambda: answer("Keep working"))
    assert not window.close()
    assert window.worker.is_running
    QTimer.singleShot(200, lambda: answer("Cancel the job and quit"))
    assert window.close()
    assert not window.worker.is_running
    with JobQueue(window.ctx) as q:
        assert q.get(job.id).state == "cancelled"


def test_the_preview_shows_the_engines_latest_image_while_the_job_runs(qtbot, make_window, examples):
    window = make_window(step_seconds=0.03)
    fill_form(qtbot, window, examples, voices=("1-man.WAV",), steps=6)
    view = window.preview.video_view
    shown = []  # (image, badge) in the panel right after each progress event that carried a preview

    def after_progress(job_id, event):
        # connected after the panel's own slot, so the panel has already handled this event
        if event.preview_png and window.worker.running_job_id == job_id:
            shown.append((view.image(), view._badge))

    window.worker.job_progress.connect(after_progress)
    job = submit(qtbot, window)
    assert window.preview.job.id == job.id  # the new job is selected
    qtbot.waitUntil(lambda: len(shown) >= 3, timeout=30000)
    first, later = shown[0][0], shown[1][0]  # half-way through clip 1, then its last step
    assert first is not None and max(first.width(), first.height()) == 64  # the engine's small PNG
    assert first != later  # the picture changes as the steps go by
    assert "step" in shown[-1][1]  # with what the engine is doing written over it
    qtbot.waitUntil(lambda: window.queue.get(job.id).state == "completed", timeout=60000)


def test_a_job_waits_while_another_process_holds_the_gpu_lock_then_runs(qtbot, make_window, examples, ctx):
    from multitalk_desktop.jobs.worker_lock import MachineWorkerLock

    other_process = MachineWorkerLock(ctx)  # a separate open file: flock treats it as another holder
    assert other_process.try_acquire()
    try:
        window = make_window()
        fill_form(qtbot, window, examples, voices=("1-man.WAV",), steps=2)
        job = submit(qtbot, window)
        qtbot.waitUntil(lambda: window.engine_label.text() == "Engine: another process runs the queue",
                        timeout=10000)
        assert "Another MultiTalk process" in window.engine_label.toolTip()
        qtbot.wait(400)
        assert window.queue.get(job.id).state == "queued"
        assert window.worker.running_job_id is None
    finally:
        other_process.release()
    qtbot.waitUntil(lambda: window.queue.get(job.id).state == "completed", timeout=30000)
    assert window.engine_label.text() != "Engine: another process runs the queue"


def test_an_empty_queue_says_what_to_do_and_a_search_without_hits_says_so(qtbot, make_window):
    from multitalk_desktop.gui.queue_panel import NO_JOBS_TEXT

    window = make_window(start_worker=False)
    table = window.queue_panel.table
    assert window.table_model.rowCount() == 0 and table.empty_text == NO_JOBS_TEXT
    window.queue_panel.search_edit.setText("duet")
    assert table.empty_text == "No job matches “duet”."
    window.queue_panel.search_edit.clear()
    assert table.empty_text == NO_JOBS_TEXT
