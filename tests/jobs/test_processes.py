"""Real processes on one database: concurrent claiming, and workers killed with SIGKILL."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from multitalk_desktop.engine.test_engine import TestEngine
from multitalk_desktop.jobs.runner import Runner
from multitalk_desktop.jobs.spec import JobRequest
from multitalk_desktop.jobs.store import JobStore

REPO = Path(__file__).resolve().parents[2]

CLAIM_LOOP = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from multitalk_desktop.jobs.store import JobStore
    db, go, name = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    store = JobStore(db)
    Path(str(go) + "." + name).touch()  # ready
    while not go.exists():
        time.sleep(0.005)
    while (job := store.claim(name)) is not None:
        print(job.id, flush=True)
        time.sleep(0.002)  # "runs" the job outside any transaction, as a real worker does
        store.transition(job.id, "completed", output=None)
    store.close()
""")


def test_two_worker_processes_claim_200_jobs_each_exactly_once(tmp_path):
    db = tmp_path / "jobs.sqlite3"
    store = JobStore(db)
    ids = [f"job{i:03d}" for i in range(200)]
    for job_id in ids:
        store.create_job(job_id, {"prompt": job_id})
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", CLAIM_LOOP, str(db), str(go), f"w{k}@test"],
                              stdout=subprocess.PIPE, text=True, env=env) for k in (1, 2)]
    # Both import and open the database first, then start together.
    wait_for(lambda: all(Path(f"{go}.w{k}@test").exists() for k in (1, 2)))
    go.touch()
    claimed = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        claimed.append(out.split())
    assert all(claimed), "both workers should have claimed some jobs"
    everything = claimed[0] + claimed[1]
    assert len(everything) == 200 and sorted(everything) == ids  # none twice, none missed
    for job_id in ids:
        runs = [e for e in store.events(job_id) if e.to_state == "running"]
        assert len(runs) == 1
    assert store.count(state="completed") == 200 and store.integrity_ok()
    store.close()


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def wait_for(predicate, timeout=30.0, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"worker exited early: {proc.communicate()}")
        time.sleep(0.01)
    raise AssertionError("condition not reached in time")


KILL_POINTS = {
    # just claimed: the engine is loading or has barely started
    "claimed": lambda q, job: q.store.get(job.id).state == "running",
    # inside the first clip, a few denoising steps in
    "mid-clip": lambda q, job: q.store.get(job.id).progress.get("step", 0) >= 2,
    # the first clip is finished and kept; the second is being made
    "second-clip": lambda q, job: (q.job_dir(job.id) / "clips" / "clip_001.done").exists()
    and q.store.get(job.id).progress.get("clip") == 2,
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_worker_killed_mid_job_leaves_an_interrupted_job_that_retry_completes(queue, media, point, isolated_home):
    req = JobRequest(image=str(media / "face.png"), audio=[str(media / "voice4s.wav")], steps=10, seed=3,
                     prompt="crash test")
    job = queue.submit(req)
    inputs_before = {p.name: sha(p) for p in (queue.job_dir(job.id) / "inputs").iterdir()}
    env = {**os.environ, "PYTHONPATH": str(REPO), "MULTITALK_DESKTOP_HOME": str(isolated_home)}
    proc = subprocess.Popen([sys.executable, "-m", "multitalk_desktop", "worker", "--once", "--test-engine",
                             "--test-step-seconds", "0.05"], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: KILL_POINTS[point](queue, job), proc=proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert queue.get(job.id).state == "running"  # nobody has told the database yet

    # The heartbeat rule (threshold shortened for the test): stale heartbeat + dead process.
    wait_for(lambda: queue.recover_interrupted(stale_after_s=0.5) == [job.id], timeout=15)
    interrupted = queue.get(job.id)
    assert interrupted.state == "interrupted"
    assert {p.name: sha(p) for p in (queue.job_dir(job.id) / "inputs").iterdir()} == inputs_before
    transitions = [(e.from_state, e.to_state) for e in queue.events(job.id) if e.to_state]
    assert transitions == [(None, "queued"), ("queued", "running"), ("running", "interrupted")]
    assert queue.store.integrity_ok()
    assert list(queue.ctx.outputs_dir.iterdir()) == []

    again = queue.resume(job.id) if point == "second-clip" else queue.retry(job.id)
    assert again.state == "queued" and again.attempts == 2
    seen_clips = set()

    class Clips:
        def job_progress(self, job_id, event):
            if event.phase == "denoising":
                seen_clips.add(event.clip)

    done = Runner(queue, TestEngine, listener=Clips()).run_next()
    assert done.state == "completed" and Path(done.output).is_file()
    assert seen_clips == ({2} if point == "second-clip" else {1, 2})
    assert queue.store.integrity_ok()
    assert list(queue.job_dir(job.id).glob("*.tmp.mp4")) == []


def test_sigterm_stops_the_worker_and_marks_its_job_interrupted_at_once(queue, media, isolated_home):
    job = queue.submit(JobRequest(image=str(media / "face.png"), audio=[str(media / "voice4s.wav")],
                                  steps=50, seed=3))
    env = {**os.environ, "PYTHONPATH": str(REPO), "MULTITALK_DESKTOP_HOME": str(isolated_home)}
    proc = subprocess.Popen([sys.executable, "-m", "multitalk_desktop", "worker", "--test-engine",
                             "--test-step-seconds", "0.05"], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: queue.store.get(job.id).progress.get("step", 0) >= 1, proc=proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 130
    stopped = queue.get(job.id)
    assert stopped.state == "interrupted" and "stopped" in stopped.error
    assert list(queue.job_dir(job.id).glob("*.tmp.mp4")) == []
