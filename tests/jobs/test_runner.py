"""The runner: a job's whole life through an engine, failures, cancel, and the race between a
cancel and a finished result."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from multitalk_desktop.engine.test_engine import TestEngine
from multitalk_desktop.errors import IllegalTransition, MultiTalkError, OutOfMemory
from multitalk_desktop.jobs.queue import JobQueue
from multitalk_desktop.jobs.runner import Runner
from tests.jobs import media_factory


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def job_started(self, job):
        self.calls.append(("started", job.id))

    def job_progress(self, job_id, event):
        self.calls.append(("progress", job_id, event))

    def job_finished(self, job):
        self.calls.append(("finished", job.id, job.state))


class FailingOnce:
    """Raises `error` on the first job, then works like the test engine."""

    name = "test-engine"

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.inner = TestEngine()

    def generate(self, inputs, on_progress=None, cancel=None):
        if self.error is not None:
            err, self.error = self.error, None
            raise err
        return self.inner.generate(inputs, on_progress, cancel)

    def close(self):
        pass


def outputs(queue: JobQueue) -> list[Path]:
    return sorted(queue.ctx.outputs_dir.glob("*.mp4"))


def leftovers(queue: JobQueue, job_id: str) -> list[Path]:
    return list(queue.job_dir(job_id).glob("*.tmp.mp4"))


def test_job_runs_to_completed_with_its_video_in_outputs(queue, small_request):
    job = queue.submit(small_request)
    listener = Recorder()
    done = Runner(queue, TestEngine, listener=listener).run_next()
    assert done.state == "completed" and done.produced_by == "test-engine"
    out = Path(done.output)
    assert out.parent == queue.ctx.outputs_dir
    assert re.fullmatch(rf"\d{{4}}-\d\d-\d\d_a-small-test-job_{job.id[:8]}\.mp4", out.name)
    assert "Audio: aac" in media_factory.ffprobe_text(out)
    assert leftovers(queue, job.id) == []
    assert done.progress["percent"] == 100.0
    kinds = [c[0] for c in listener.calls]
    assert kinds[0] == "started" and kinds[-1] == "finished" and "progress" in kinds
    assert listener.calls[-1] == ("finished", job.id, "completed")
    assert [(e.from_state, e.to_state) for e in queue.events(job.id) if e.to_state][-1] == ("running", "completed")
    assert "ended completed" in queue.log_path(job.id).read_text()


def test_empty_queue_returns_none(queue):
    assert Runner(queue, TestEngine).run_next() is None


def test_existing_output_name_is_never_overwritten(queue, small_request):
    job = queue.submit(small_request)
    from multitalk_desktop.jobs.naming import output_name

    taken = queue.ctx.outputs_dir / output_name(job.created_at, job.prompt, job.id)
    taken.write_bytes(b"someone else's video")
    done = Runner(queue, TestEngine).run_next()
    assert taken.read_bytes() == b"someone else's video"
    assert Path(done.output).name == taken.stem + "-2.mp4"


def test_out_of_memory_fails_with_a_plain_hint_and_the_next_job_runs(queue, small_request):
    first, second = queue.submit(small_request), queue.submit(small_request)
    runner = Runner(queue, lambda: FailingOnce(OutOfMemory()))
    jobs = runner.drain()
    assert [j.id for j in jobs] == [first.id, second.id]
    failed = queue.get(first.id)
    assert failed.state == "failed"
    assert "ran out of memory" in failed.error and "lower VRAM profile" in failed.error
    assert queue.get(second.id).state == "completed"


def test_unexpected_error_fails_readably_with_the_trace_in_the_log(queue, small_request):
    job = queue.submit(small_request)
    done = Runner(queue, lambda: FailingOnce(ZeroDivisionError("division by zero"))).run_next()
    assert done.state == "failed"
    assert "ZeroDivisionError" in done.error and "Traceback" not in done.error
    assert "log.txt" in done.error
    log = queue.log_path(job.id).read_text()
    assert "Traceback" in log and "ZeroDivisionError" in log


def test_project_error_becomes_the_jobs_error_text(queue, small_request):
    queue.submit(small_request)
    done = Runner(queue, lambda: FailingOnce(MultiTalkError("The voice is broken.", "Record it again."))).run_next()
    assert done.error == "The voice is broken. Record it again."


def test_engine_that_cannot_load_leaves_the_job_queued(queue, small_request):
    job = queue.submit(small_request)

    def broken():
        raise MultiTalkError("The MultiTalk engine is not available in this build.")

    with pytest.raises(MultiTalkError):
        Runner(queue, broken).run_next()
    assert queue.get(job.id).state == "queued"


def run_in_thread(runner: Runner) -> tuple[threading.Thread, list]:
    result: list = []
    thread = threading.Thread(target=lambda: result.append(runner.run_next()))
    thread.start()
    return thread, result


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached in time")


def test_cancel_of_a_running_job_stops_the_engine(queue, small_request):
    small_request.steps = 100
    job = queue.submit(small_request)
    runner = Runner(queue, lambda: TestEngine(step_seconds=0.02), progress_interval_s=0.05)
    thread, result = run_in_thread(runner)
    try:
        wait_for(lambda: queue.get(job.id).progress.get("step", 0) >= 2)
        queue.cancel(job.id)
    finally:
        thread.join(30)
    assert result[0].state == "cancelled"
    assert result[0].progress["step"] < 90  # stopped early, not run to the end
    assert outputs(queue) == [] and leftovers(queue, job.id) == []


def test_progress_is_written_at_most_a_few_times_a_second(queue, small_request):
    small_request.steps = 100
    queue.submit(small_request)
    listener = Recorder()
    runner = Runner(queue, lambda: TestEngine(step_seconds=0.01), listener=listener)
    writes_before = queue.store._own_writes
    started = time.monotonic()
    runner.run_next()
    elapsed = time.monotonic() - started
    writes = queue.store._own_writes - writes_before
    progress_events = sum(1 for c in listener.calls if c[0] == "progress")
    assert progress_events > 100  # the listener sees every step
    assert writes <= 4 * elapsed + 6  # claim, completion and ~4 progress writes a second


def test_heartbeat_is_refreshed_while_a_step_is_long(queue, small_request):
    small_request.steps = 3
    job = queue.submit(small_request)
    runner = Runner(queue, lambda: TestEngine(step_seconds=0.4), heartbeat_interval_s=0.1)
    thread, _ = run_in_thread(runner)
    try:
        wait_for(lambda: queue.get(job.id).state == "running")
        first = queue.get(job.id).heartbeat_at
        wait_for(lambda: queue.get(job.id).heartbeat_at > first + 0.15, timeout=5)
    finally:
        thread.join(30)


class CancelJustBeforeReturning:
    """The cancel arrives (from another process's connection) after the video is written but
    before the runner keeps it: the worst moment."""

    name = "test-engine"

    def __init__(self, queue: JobQueue) -> None:
        self.inner = TestEngine()
        self.other = JobQueue(queue.ctx)

    def generate(self, inputs, on_progress=None, cancel=None):
        result = self.inner.generate(inputs, on_progress, cancel)
        assert Path(result.output_path).exists()
        self.other.cancel(inputs.extra["job_id"])
        return result

    def close(self):
        self.other.close()


def test_cancel_arriving_with_the_result_wins_and_no_video_is_kept(queue, small_request):
    job = queue.submit(small_request)
    runner = Runner(queue, lambda: CancelJustBeforeReturning(queue))
    done = runner.run_next()
    runner.close()
    assert done.state == "cancelled" and done.output is None
    assert outputs(queue) == [] and leftovers(queue, job.id) == []


def test_cancel_after_completion_is_refused_and_the_video_stays(queue, small_request):
    job = queue.submit(small_request)
    Runner(queue, TestEngine).run_next()
    with pytest.raises(IllegalTransition):
        queue.cancel(job.id)
    assert queue.get(job.id).state == "completed" and len(outputs(queue)) == 1


def test_cancel_racing_completion_ends_in_exactly_one_consistent_state(queue, small_request):
    states = set()
    for attempt in range(8):
        job = queue.submit(small_request)
        runner = Runner(queue, TestEngine)
        thread, result = run_in_thread(runner)
        wait_for(lambda job=job: queue.store.get(job.id).state != "queued")
        time.sleep(0.015 * attempt)  # cancel earlier and later around the finish
        try:
            queue.cancel(job.id)
        except IllegalTransition:
            pass  # already completed: the cancel is refused, the video stays
        thread.join(30)
        final = queue.get(job.id)
        states.add(final.state)
        assert final.state in ("completed", "cancelled")
        assert final.state == result[0].state
        assert leftovers(queue, job.id) == []
        if final.state == "completed":
            assert Path(final.output).is_file()
        else:
            assert final.output is None
        finals = [e.to_state for e in queue.events(job.id) if e.to_state in ("completed", "cancelled")]
        assert len(finals) == 1
    assert len(outputs(queue)) == sum(1 for j in queue.list(limit=100) if j.state == "completed")


def test_resume_continues_after_the_last_finished_clip(queue, media):
    from multitalk_desktop.jobs.spec import JobRequest

    job = queue.submit(JobRequest(image=str(media / "face.png"), audio=[str(media / "voice4s.wav")],
                                  steps=2, seed=1))
    queue.store.claim("ghost@nowhere")
    clips = queue.job_dir(job.id) / "clips"
    clips.mkdir(parents=True)
    (clips / "clip_001.done").write_text("ok")
    queue.store.transition(job.id, "interrupted")
    queue.resume(job.id)
    listener = Recorder()
    done = Runner(queue, TestEngine, listener=listener).run_next()
    assert done.state == "completed" and done.attempts == 2
    assert {c[2].clip for c in listener.calls if c[0] == "progress" and c[2].phase == "denoising"} == {2}
