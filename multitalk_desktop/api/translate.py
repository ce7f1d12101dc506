"""Between the API's shapes (the cloud service's names) and the jobs layer's (`JobRequest`, `Job`)."""

from __future__ import annotations

import re
from pathlib import Path

from multitalk_desktop.api.schemas import STATUS_FOR_STATE, GenerateRequest
from multitalk_desktop.jobs.spec import JobRequest
from multitalk_desktop.jobs.store import EMPTY_PROGRESS, Job, iso

# JobRequest field -> where the API takes it from (for the field names in a 422).
API_FIELD = {
    "image": "image_s3_url",
    "audio": "audio_s3_urls",
    "prompt": "prompt",
    "resolution": "options.resolution",
    "steps": "options.sample_steps",
    "audio_type": "options.audio_type",
    "audio_guidance": "options.audio_cfg",
    "text_guidance": "options.text_cfg",
    "color_correction": "options.color_correction",
    "seed": "options.seed",
    "mode": "options.mode",
    "boxes": "options.boxes",
    "max_duration": "options.max_duration",
}
# `options` name -> JobRequest field: the same table read the other way, so the two never drift.
OPTION_FIELD = {api[len("options."):]: ours for ours, api in API_FIELD.items() if api.startswith("options.")}
# Ours, accepted at the top level too (the issue lists them beside the cloud shape).
TOP_LEVEL_EXTRAS = ("seed", "mode", "boxes", "text_cfg")


def api_field(spec_field: str) -> str:
    """`audio[2]` -> `audio_s3_urls[1]`, `steps` -> `options.sample_steps` (JSON indices are 0-based)."""
    m = re.fullmatch(r"(\w+)\[(\d+)\]", spec_field)
    if m:
        return f"{API_FIELD.get(m.group(1), m.group(1))}[{int(m.group(2)) - 1}]"
    return API_FIELD.get(spec_field, spec_field)


def voice_refs(body: GenerateRequest) -> list[str]:
    refs = body.audio_s3_urls
    if refs is None:
        return []
    return [refs] if isinstance(refs, str) else list(refs)


def merged_options(body: GenerateRequest) -> tuple[dict, list[tuple[str, str]]]:
    """`options` plus the top-level extras; the same option given twice with two values is a
    problem, not a silent pick."""
    options = body.options.model_dump(exclude_none=True) if body.options else {}
    problems = []
    for name in TOP_LEVEL_EXTRAS:
        value = getattr(body, name)
        if value is None:
            continue
        if name in options and options[name] != value:
            problems.append((name, f"{name} is given both at the top level and in options, with "
                             "different values; give it once."))
        options[name] = value
    return options, problems


def job_request(body: GenerateRequest, image: Path | None, voices: list[Path]) -> JobRequest:
    """Every accepted option lands in the request; what is absent takes the CLI's defaults."""
    options, _ = merged_options(body)
    req = JobRequest(image=str(image) if image else "", audio=[str(v) for v in voices])
    req.prompt = body.prompt
    for option, field_name in OPTION_FIELD.items():
        if option in options:
            value = options[option]
            setattr(req, field_name, [tuple(b) for b in value] if option == "boxes" else value)
    return req


def download_path(job_id: str) -> str:
    return f"/api/v1/jobs/{job_id}/download"


def job_view(job: Job, base_url: str) -> dict:
    """The `GET /jobs/{id}` body: cloud `status`, our `state`, real progress, result or error."""
    result = None
    if job.state == "completed" and job.output:
        out = Path(job.output)
        try:
            size = out.stat().st_size
        except OSError:
            size = None
        result = {"download_url": base_url.rstrip("/") + download_path(job.id), "filename": out.name,
                  "size_bytes": size}
    # The API shows the request as the caller gave it, not the job folder's copies.
    request = {k: v for k, v in job.request.items() if k not in ("image", "audio")}
    return {
        "job_id": job.id,
        "status": STATUS_FOR_STATE.get(job.state, "pending"),
        "state": job.state,
        "progress": {k: job.progress.get(k, v) for k, v in EMPTY_PROGRESS.items()},
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
        "result": result,
        "error": job.error,
        "attempts": job.attempts,
        "cancel_requested": job.cancel_requested,
        "request": request,
    }


def webhook_payload(job: Job, base_url: str) -> dict:
    """`{job_id, status, timestamp, result | error}` as the cloud service meant to send it, plus
    `state` and `progress`."""
    from multitalk_desktop.api.webhooks import iso_now

    view = job_view(job, base_url)
    payload = {"job_id": job.id, "status": view["status"], "state": job.state, "timestamp": iso_now()}
    if view["result"] is not None:
        payload["result"] = view["result"]
    else:
        payload["error"] = job.error or ("The job was cancelled." if job.state == "cancelled" else None)
    return payload
