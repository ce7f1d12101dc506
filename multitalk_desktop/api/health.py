"""What `GET /health` reports: GPUs (via nvidia-smi, no torch), model files, queue depth, worker.
The slow parts are cached so a monitoring loop polling health costs nothing."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time

from multitalk_desktop import __version__
from multitalk_desktop.api.state import ApiState
from multitalk_desktop.api.webhooks import iso_now

CACHE_S = 30.0

_lock = threading.Lock()
_gpu_cache: tuple[float, list[dict]] | None = None
_models_cache: dict[str, tuple[float, bool, list[str]]] = {}


def gpus() -> list[dict]:
    global _gpu_cache
    with _lock:
        if _gpu_cache and time.monotonic() - _gpu_cache[0] < CACHE_S:
            return _gpu_cache[1]
    found: list[dict] = []
    exe = shutil.which("nvidia-smi")
    if exe:
        try:
            out = subprocess.run(
                [exe, "--query-gpu=name,memory.total,memory.free", "--format=csv,noheader,nounits"],
                capture_output=True, text=True, timeout=5, check=False).stdout
            for line in out.strip().splitlines():
                parts = [p.strip() for p in line.split(",")]
                if len(parts) == 3:
                    total, free = (float(p) / 1024 if p.replace(".", "").isdigit() else None for p in parts[1:])
                    found.append({"name": parts[0], "vram_total_gb": total, "vram_free_gb": free})
        except (OSError, subprocess.SubprocessError):
            pass
    with _lock:
        _gpu_cache = (time.monotonic(), found)
    return found


def models_state(models_dir: str) -> tuple[bool, list[str]]:
    with _lock:
        cached = _models_cache.get(models_dir)
        if cached and time.monotonic() - cached[0] < CACHE_S:
            return cached[1], cached[2]
    try:
        from multitalk_desktop.engine.model_files import check_models

        report = check_models(models_dir)
        ready, missing = report.ready, list(report.missing) + list(report.broken)
    except Exception as err:  # a broken manifest must not break health
        ready, missing = False, [f"({type(err).__name__}: {err})"]
    with _lock:
        _models_cache[models_dir] = (time.monotonic(), ready, missing)
    return ready, missing


def health(state: ApiState) -> dict:
    ready, missing = models_state(str(state.ctx.models_dir))
    queue_depth = state.queue.store.count("queued")
    worker = state.worker_status()
    problems = []
    if state.options.engine_kind == "real" and not ready:
        problems.append(f"models not ready ({len(missing)} file(s) missing or broken; run "
                        "`multitalk-desktop models check`)")
    if worker == "none":
        problems.append("no worker runs jobs on this machine (jobs stay queued until the window, "
                        "`serve` or `worker` runs them)")
    return {
        "status": "healthy" if not problems else "; ".join(problems),
        "version": __version__,
        "timestamp": iso_now(),
        "gpus": gpus(),
        "models_ready": ready,
        "models_missing": missing[:50],
        "queue_depth": queue_depth,
        "worker": worker,
    }
