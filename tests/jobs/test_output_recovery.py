"""A worker that dies while putting its finished video in place: the video is adopted when it is
whole (the job ends completed), removed when it is partial or the job was cancelled, and a video
a completed job names is never deleted. No orphan video is left in outputs/ either way."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

from multitalk_desktop.engine.test_engine import TestEngine
from multitalk_desktop.jobs.queue import JobQueue
from multitalk_desktop.jobs.runner import Runner
from tests.jobs import media_factory

REPO = Path(__file__).resolve().parents[2]

# A worker whose process ends (no cleanup, no completion) right after the video is linked into
# outputs/; with "cancel", another process's cancel lands just before that.
DIE_AFTER_LINK = textwrap.dedent("""
    import os, sys
    from multitalk_desktop.config import load_context
    from multitalk_desktop.engine.test_engine import TestEngine
    from multitalk_desktop.jobs import queue as queue_module
    from multitalk_desktop.jobs.queue import JobQueue
    from multitalk_desktop.jobs.runner import Runner

    real_place = queue_module.place_without_overwrite

    def place_then_die(*args, **kwargs):
        real_place(*args, **kwargs)
        if sys.argv[1] == "cancel":
            with JobQueue(load_context()) as other:
                other.cancel(other.list(state="running")[0].id)
        os._exit(9)

    queue_module.place_without_overwrite = place_then_die
    with JobQueue(load_context()) as q:
        Runner(q, TestEngine).run_next()
""")


def outputs(queue: JobQueue) -> list[Path]:
    return sorted(queue.ctx.outputs_dir.glob("*.mp4"))


def die_after_link(how: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", DIE_AFTER_LINK, how], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr


def dead_worker_id() -> str:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a worker that existed and is gone
    return f"{proc.pid}@{socket.gethostname()}"


def test_whole_video_of_a_worker_that_died_after_the_link_is_adopted(queue, small_request):
    job = queue.submit(small_request)
    die_after_link("plain")
    before = queue.get(job.id)
    assert before.state == "running" and before.output is None  # the completion never committed
    [video] = outputs(queue)

    assert queue.recover_interrupted(stale_after_s=0) == [job.id]
    after = queue.get(job.id)
    assert after.state == "completed" and after.output == str(video) and after.error is None
    assert after.produced_by == "test-engine" and after.progress["percent"] == 100.0
    assert "Audio: aac" in media_factory.ffprobe_text(video)
    assert outputs(queue) == [video]
    kinds = [(e.kind, e.to_state) for e in queue.events(job.id)]
    assert ("placing_output", None) in kinds and kinds[-1] == ("state", "completed")
    assert queue.recover_interrupted(stale_after_s=0) == []  # settled once


def test_video_of_a_job_cancelled_before_the_worker_died_is_removed(queue, small_request):
    job = queue.submit(small_request)
    die_after_link("cancel")
    assert len(outputs(queue)) == 1

    assert queue.recover_interrupted(stale_after_s=0) == [job.id]
    after = queue.get(job.id)
    assert after.state == "interrupted" and after.output is None
    assert outputs(queue) == []


def claim_for_dead_worker(queue: JobQueue, small_request):
    job = queue.submit(small_request)
    worker = dead_worker_id()
    queue.store.claim(worker)
    return job, worker


def test_partial_copy_is_removed_and_the_job_interrupted(queue, small_request):
    job, worker = claim_for_dead_worker(queue, small_request)
    partial = queue.ctx.outputs_dir / "2024-01-01_video_deadbeef.mp4"
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(b"x" * 10)  # the copy fallback stopped after 10 of 1000 bytes
    assert queue.store.record_placing(job.id, worker, {"path": str(partial), "size": 1000})

    assert queue.recover_interrupted(stale_after_s=0) == [job.id]
    assert queue.get(job.id).state == "interrupted" and not partial.exists()


def test_recorded_name_without_a_file_just_interrupts(queue, small_request):
    job, worker = claim_for_dead_worker(queue, small_request)
    missing = queue.ctx.outputs_dir / "never-linked.mp4"
    assert queue.store.record_placing(job.id, worker, {"path": str(missing), "size": 1000})

    assert queue.recover_interrupted(stale_after_s=0) == [job.id]
    assert queue.get(job.id).state == "interrupted" and outputs(queue) == []


def test_video_a_completed_job_names_is_never_removed(queue, small_request):
    queue.submit(small_request)
    done = Runner(queue, TestEngine).run_next()
    kept = Path(done.output)
    job, worker = claim_for_dead_worker(queue, small_request)
    # A recorded name that (however it happened) points at the other job's video, size wrong.
    assert queue.store.record_placing(job.id, worker, {"path": str(kept), "size": 1})

    assert queue.recover_interrupted(stale_after_s=0) == [job.id]
    assert queue.get(job.id).state == "interrupted"
    assert kept.is_file() and queue.get(done.id).output == str(kept)


def test_placement_is_refused_once_the_job_is_cancelled_or_not_ours(queue, small_request):
    job, worker = claim_for_dead_worker(queue, small_request)
    assert not queue.store.record_placing(job.id, "someone-else@host", {"path": "x.mp4", "size": 1})
    queue.store.request_cancel(job.id)
    assert not queue.store.record_placing(job.id, worker, {"path": "x.mp4", "size": 1})


def test_a_normal_completion_leaves_no_placing_record(queue, small_request):
    queue.submit(small_request)
    done = Runner(queue, TestEngine).run_next()
    assert done.state == "completed"
    with queue.store.write() as c:
        assert queue.store.placing_in(c, done.id) is None
