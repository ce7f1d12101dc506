"""The words on a job's progress bar, e.g. "clip 2/5 - step 13/40 - 3 min left": what the GPU
is doing right now, in the order a creator asks (which part, how far, how long)."""

from __future__ import annotations

PHASE_WORDS = {
    "queued": "Waiting",
    "loading": "Loading the models",
    "encoding": "Reading the voices and the portrait",
    "denoising": "Generating",
    "decoding": "Decoding frames",
    "exporting": "Writing the video",
    "done": "Done",
}


def format_eta(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return ""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{max(1, seconds)} s left"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min left"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min left"


def running_text(progress: dict) -> str:
    phase = progress.get("phase") or "loading"
    clip, clips = int(progress.get("clip") or 0), int(progress.get("clips") or 0)
    step, steps = int(progress.get("step") or 0), int(progress.get("steps") or 0)
    eta = format_eta(progress.get("eta_seconds"))
    parts: list[str] = []
    if phase == "denoising" and clips:
        parts.append(f"clip {max(clip, 1)}/{clips}")
        if steps:
            parts.append(f"step {step}/{steps}")
    elif phase == "decoding" and clips:
        parts.append(f"clip {max(clip, 1)}/{clips}")
        parts.append("decoding")
    else:
        parts.append(PHASE_WORDS.get(phase, phase.capitalize()) + "…")
    if eta:
        parts.append(eta)
    return " - ".join(parts)


def job_progress_text(state: str, progress: dict, error: str | None = None,
                      queue_position: int | None = None) -> str:
    if state == "running":
        return running_text(progress)
    if state == "queued":
        return f"Waiting · #{queue_position} in the queue" if queue_position else "Waiting"
    if state == "completed":
        return "Done"
    if state == "failed":
        first = (error or "").strip().splitlines()[0] if error else ""
        return "Failed" + (f": {first}" if first else "")
    if state == "cancelled":
        return "Cancelled"
    if state == "interrupted":
        clip, clips = int(progress.get("clip") or 0), int(progress.get("clips") or 0)
        where = f" at clip {clip}/{clips}" if clips else ""
        return f"Interrupted{where} · resume or retry"
    return state


def progress_fraction(state: str, progress: dict) -> float:
    if state == "completed":
        return 1.0
    try:
        return max(0.0, min(1.0, float(progress.get("percent") or 0.0) / 100.0))
    except (TypeError, ValueError):
        return 0.0
