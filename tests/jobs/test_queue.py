"""The queue service: submit copies inputs, cancel/retry/resume/move, stale-worker recovery,
retention with files."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time

import pytest

from multitalk_desktop.errors import IllegalTransition, ValidationFailed
from multitalk_desktop.jobs.queue import worker_is_gone
from multitalk_desktop.jobs.spec import JobRequest


def sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_submit_copies_inputs_into_the_job_folder(queue, small_request, media):
    job = queue.submit(small_request)
    inputs = queue.job_dir(job.id) / "inputs"
    assert sorted(p.name for p in inputs.iterdir()) == ["image.png", "voice1.wav"]
    assert job.request["image"] == str(inputs / "image.png")
    assert sha(job.request["image"]) == sha(media / "face.png")
    assert job.sources["image"] == str((media / "face.png").resolve())
    assert job.state == "queued" and job.attempts == 1
    assert job.request["seed"] == 7 and job.request["steps"] == 2
    assert job.notes and "padded" in job.notes[0]  # a 1 s voice: the warning stays with the job


def test_same_inputs_are_stored_once(queue, small_request):
    a = queue.submit(small_request)
    b = queue.submit(small_request)
    ia, ib = os.stat(a.request["image"]), os.stat(b.request["image"])
    assert (ia.st_ino, ia.st_dev) == (ib.st_ino, ib.st_dev)  # one blob, hard-linked twice
    blobs = [p for p in queue.blobs_dir.rglob("*") if p.is_file()]
    assert len(blobs) == 2  # the image and the voice


def test_originals_can_vanish_after_submit(queue, small_request, tmp_path, media):
    moved = tmp_path / "mine.png"
    moved.write_bytes((media / "face.png").read_bytes())
    job = queue.submit(JobRequest(image=str(moved), audio=small_request.audio, steps=2))
    moved.unlink()
    assert os.path.getsize(job.request["image"]) > 0


def test_submit_refuses_invalid_requests_and_writes_nothing(queue, tmp_path):
    with pytest.raises(ValidationFailed) as err:
        queue.submit(JobRequest(image=str(tmp_path / "none.png"), audio=[]))
    assert {f for f, _ in err.value.problems} == {"image", "audio"}
    assert queue.store.count() == 0
    assert not any(queue.paths.jobs_dir.iterdir())


def test_submitted_seed_is_recorded_when_random(queue, small_request):
    small_request.seed = None
    job = queue.submit(small_request)
    assert isinstance(job.request["seed"], int)
    assert queue.get(job.id).request["seed"] == job.request["seed"]


def test_cancel_queued_job_is_immediate(queue, small_request):
    job = queue.submit(small_request)
    assert queue.cancel(job.id).state == "cancelled"
    with pytest.raises(IllegalTransition):
        queue.cancel(job.id)


def test_cancel_running_job_raises_its_flag(queue, small_request):
    job = queue.submit(small_request)
    queue.store.claim(f"{os.getpid()}@{socket.gethostname()}")
    after = queue.cancel(job.id)
    assert after.state == "running" and after.cancel_requested


def test_retry_requeues_same_id_and_counts_attempts(queue, small_request):
    job = queue.submit(small_request)
    other = queue.submit(small_request)
    queue.store.claim("w@h")
    queue.store.transition(job.id, "failed", error="boom")
    (queue.job_dir(job.id) / "clips").mkdir()
    (queue.job_dir(job.id) / "clips" / "clip_001.done").write_text("ok")
    again = queue.retry(job.id)
    assert (again.id, again.state, again.attempts, again.error) == (job.id, "queued", 2, None)
    assert not (queue.job_dir(job.id) / "clips").exists()  # retry starts over
    assert [j.id for j in queue.store.queued()] == [other.id, job.id]  # back of the queue
    kinds = [(e.from_state, e.to_state) for e in queue.events(job.id) if e.to_state]
    assert kinds == [(None, "queued"), ("queued", "running"), ("running", "failed"), ("failed", "queued")]
    with pytest.raises(IllegalTransition):
        queue.retry(other.id)  # queued: nothing to retry


def test_resume_keeps_finished_clips_and_only_for_interrupted(queue, small_request):
    job = queue.submit(small_request)
    queue.store.claim("w@h")
    clips = queue.job_dir(job.id) / "clips"
    clips.mkdir()
    (clips / "clip_001.done").write_text("ok")
    queue.store.transition(job.id, "interrupted")
    resumed = queue.resume(job.id)
    assert resumed.state == "queued" and resumed.attempts == 2
    assert (clips / "clip_001.done").exists()
    with pytest.raises(IllegalTransition):
        queue.resume(job.id)


def test_move_reorders(queue, small_request):
    ids = [queue.submit(small_request).id for _ in range(3)]
    assert [j.id for j in queue.move(ids[2][:8], 1)] == [ids[2], ids[0], ids[1]]


def test_stale_job_of_a_dead_worker_becomes_interrupted(queue, small_request):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a worker that existed and is gone
    job = queue.submit(small_request)
    queue.store.claim(f"{proc.pid}@{socket.gethostname()}")
    assert queue.recover_interrupted(stale_after_s=30) == []  # heartbeat still fresh
    time.sleep(0.3)
    assert queue.recover_interrupted(stale_after_s=0.2) == [job.id]
    after = queue.get(job.id)
    assert after.state == "interrupted" and "Resume or retry" in after.error


def test_stale_job_of_a_live_worker_stays_running(queue, small_request):
    job = queue.submit(small_request)
    queue.store.claim(f"{os.getpid()}@{socket.gethostname()}")
    time.sleep(0.3)
    assert queue.recover_interrupted(stale_after_s=0.2) == []
    assert queue.get(job.id).state == "running"


def test_worker_liveness_rules():
    assert not worker_is_gone(f"{os.getpid()}@{socket.gethostname()}")
    assert worker_is_gone(None) and worker_is_gone("garbage")
    assert worker_is_gone("123@some-other-host")  # cannot be checked: the stale heartbeat decides


def test_retention_deletes_old_finished_jobs_with_their_files(queue, small_request):
    jobs = [queue.submit(small_request) for _ in range(5)]
    # j0 completed (with an output file), j1 failed, j2 running, j3 and j4 queued
    queue.store.claim("w@h")
    out = queue.ctx.outputs_dir / "video.mp4"
    out.write_bytes(b"mp4")
    queue.store.transition(jobs[0].id, "completed", output=str(out))
    queue.store.claim("w@h")
    queue.store.transition(jobs[1].id, "failed")
    queue.store.claim("w@h")
    removed = queue.apply_retention(keep_last=1)
    assert sorted(removed) == sorted([jobs[0].id, jobs[1].id])
    assert not out.exists()
    assert not queue.job_dir(jobs[0].id).exists() and not queue.job_dir(jobs[1].id).exists()
    for kept in jobs[2:]:
        assert queue.get(kept.id).state in ("running", "queued")
        assert (queue.job_dir(kept.id) / "inputs" / "image.png").exists()
    assert queue.store.events(jobs[0].id) == []
    assert len([p for p in queue.blobs_dir.rglob("*") if p.is_file()]) == 2  # still used: kept


def test_retention_removes_blobs_no_job_uses(queue, small_request):
    job = queue.submit(small_request)
    queue.cancel(job.id)
    assert queue.apply_retention(keep_days=0, keep_last=0) == []  # default keeps everything
    queue.store._conn.execute("UPDATE jobs SET created_at = created_at - 40 * 86400")
    assert queue.apply_retention(keep_days=30) == [job.id]
    assert [p for p in queue.blobs_dir.rglob("*") if p.is_file()] == []


def test_input_links_lost_in_a_crash_are_restored_from_their_blobs(queue, small_request):
    from multitalk_desktop.engine.test_engine import TestEngine
    from multitalk_desktop.jobs.runner import Runner

    job = queue.submit(small_request)
    lost = queue.job_dir(job.id) / "inputs" / "voice1.wav"
    lost.unlink()  # what a power cut before the folder reached the disk could leave
    done = Runner(queue, TestEngine).run_next()
    assert done.state == "completed" and lost.exists()
    assert "restored input links" in queue.log_path(job.id).read_text()
