"""Queue benchmark (figures printed, not a timed test).

1. 1000 submits of the same small inputs through JobQueue.submit (validation, content-hashed input
   copies, one synchronous=FULL transaction each). Target on a 2-core machine: under 5 s.
2. With 10,000 jobs in history: list the newest 50, filter by state, search the prompt.
   Target: under 20 ms each.

Runs in a temporary MULTITALK_DESKTOP_HOME; touches nothing of the user's.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_inputs(folder: Path) -> tuple[Path, Path]:
    import numpy as np
    import soundfile
    from PIL import Image

    image = folder / "face.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(image)
    voice = folder / "voice.wav"
    t = np.arange(16000 * 4) / 16000
    soundfile.write(str(voice), (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    return image, voice


def fsync_latency_ms(folder: Path, n: int = 100) -> float:
    """What one durable commit costs at least on this disk: the floor under every submit."""
    path = folder / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        started = time.perf_counter()
        for _ in range(n):
            os.write(fd, b"x" * 64)
            os.fsync(fd)
        return (time.perf_counter() - started) / n * 1000
    finally:
        os.close(fd)
        path.unlink()


def timed_ms(fn, repeat: int = 20) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), max(samples)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="queue-bench-") as home:
        os.environ["MULTITALK_DESKTOP_HOME"] = home
        from multitalk_desktop.config import load_context
        from multitalk_desktop.jobs.queue import JobQueue
        from multitalk_desktop.jobs.spec import JobRequest

        image, voice = make_inputs(Path(home))
        queue = JobQueue(load_context())
        sync = queue.store._conn.execute("PRAGMA synchronous").fetchone()[0]
        journal = queue.store._conn.execute("PRAGMA journal_mode").fetchone()[0]
        req = JobRequest(image=str(image), audio=[str(voice)], prompt="A person talks about the weather",
                         seed=1)
        started = time.perf_counter()
        for _ in range(1000):
            queue.submit(req)
        submit_s = time.perf_counter() - started
        print(f"journal_mode={journal} synchronous={'FULL' if sync == 2 else sync}  "
              f"disk fsync {fsync_latency_ms(Path(home)):.2f} ms (one per submit)")
        print(f"1000 submits: {submit_s:.2f} s ({submit_s:.2f} ms each)  target < 5 s")

        # Grow the history to 10,000 jobs with a realistic mix of states.
        store = queue.store
        now = time.time()
        states = ("completed",) * 6 + ("failed", "cancelled", "interrupted", "queued")
        with store.write() as c:
            c.executemany(
                "INSERT INTO jobs (id, state, created_at, updated_at, request, prompt, position) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(f"hist{i:05d}", states[i % len(states)], now - 86400 + i, now - 86400 + i,
                  '{"prompt": "x"}', f"scene number {i} with {'rain' if i % 7 == 0 else 'sun'}", 2000 + i)
                 for i in range(9000)])
        total = store.count()
        print(f"history: {total} jobs")
        for label, fn in (
            ("list newest 50", lambda: store.list_jobs(limit=50)),
            ("filter state=failed, 50", lambda: store.list_jobs(state="failed", limit=50)),
            ("filter state=queued, 50", lambda: store.list_jobs(state="queued", limit=50)),
            ("search prompt 'rain', 50", lambda: store.list_jobs(search="rain", limit=50)),
            ("page 100 (offset 5000)", lambda: store.list_jobs(limit=50, offset=5000)),
            ("count by state", lambda: store.count(state="completed")),
        ):
            median, worst = timed_ms(fn)
            print(f"{label:<26} median {median:6.2f} ms  worst {worst:6.2f} ms  target < 20 ms")
        queue.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
