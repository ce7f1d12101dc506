"""Resume after a real kill: a `worker --once` process on tiny models is SIGKILLed as soon as its
first clip is on disk; the job is found interrupted, resumed, and the next worker generates only
the remaining clips; the final MP4 is as long as the voice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from multitalk_desktop.config import load_context
from multitalk_desktop.jobs.queue import JobQueue
from multitalk_desktop.jobs.runner import Runner
from multitalk_desktop.jobs.spec import JobRequest
from multitalk_desktop.media.video import probe_video

from .helpers import EXAMPLES, SIZE, duration

REPO = Path(__file__).resolve().parents[2]
CLIPS = 3  # the 6.4 s voice


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the worker exited early: {proc.communicate()}")
        time.sleep(0.005)
    raise AssertionError("the worker did not finish a clip in time")


def test_worker_killed_after_its_first_clip_resumes_with_only_the_remaining_clips(
    tiny_models, engine, voices, isolated_home
):
    queue = JobQueue(load_context())
    try:
        job = queue.submit(JobRequest(image=str(EXAMPLES / "multi3.png"), audio=[str(voices["long"])],
                                      resolution=SIZE, steps=2, seed=11, prompt="A man is talking."))
        clips = queue.job_dir(job.id) / "clips"
        env = {**os.environ, "PYTHONPATH": str(REPO), "MULTITALK_DESKTOP_HOME": str(isolated_home)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "multitalk_desktop", "worker", "--once", "--models", str(tiny_models),
             "--device", "cpu"], env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            # A clip counts as finished once its motion state (written right after it) is there.
            wait_for((clips / "motion.npz").exists, proc)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        with np.load(clips / "motion.npz") as motion:
            finished = int(motion["clip"]) + 1
        assert 1 <= finished < CLIPS, finished

        # The heartbeat rule with a short threshold: stale heartbeat + dead process.
        deadline = time.monotonic() + 15
        while queue.recover_interrupted(stale_after_s=0.3) != [job.id]:
            assert time.monotonic() < deadline, "the killed job was never found interrupted"
            time.sleep(0.1)
        queue.resume(job.id)

        denoised: set[int] = set()

        class Clips:
            def job_progress(self, job_id, event):
                if event.phase == "denoising":
                    denoised.add(event.clip)

        done = Runner(queue, lambda: engine, listener=Clips()).run_next()
        assert done.state == "completed", done.error
        assert denoised == set(range(finished + 1, CLIPS + 1))  # only the remaining clips
        assert any(f"Resumed after clip {finished} of {CLIPS}" in n for n in done.notes)
        info = probe_video(Path(done.output))
        voice = duration(voices["long"])
        assert info.frames == int(voice * 25) - 3
        assert abs(info.audio_duration_s - voice) < 0.05
        assert not clips.exists()  # the kept clips go once the video is made
    finally:
        queue.close()
