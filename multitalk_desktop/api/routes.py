"""The `/api/v1` endpoints. Handlers stay thin: the queue does the work, `translate` the naming."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from multitalk_desktop.api import health as health_module
from multitalk_desktop.api import schemas, translate
from multitalk_desktop.api.errors import ApiProblem, problems_from_pydantic
from multitalk_desktop.api.inputs import InputRefused, Staging, safe_suffix
from multitalk_desktop.api.keys import keys_equal
from multitalk_desktop.api.netcheck import UrlRefused, check_http_url
from multitalk_desktop.api.ratelimit import retry_after_header
from multitalk_desktop.api.state import ApiState
from multitalk_desktop.api.webhooks import iso_now, send_once, signed_headers
from multitalk_desktop.errors import IllegalTransition, ValidationFailed
from multitalk_desktop.jobs.store import FINAL_STATES, Job, JobNotFound, iso

JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
CANCEL_WAIT_S = 3.0  # DELETE waits this long for a running job to actually stop

bearer = HTTPBearer(auto_error=False, description="The key printed by `multitalk-desktop api-key`.")
router = APIRouter(prefix="/api/v1")

ERRORS = {
    401: {"model": schemas.ErrorBody, "description": "missing or wrong API key"},
    404: {"model": schemas.ErrorBody, "description": "no such job"},
    422: {"model": schemas.ErrorBody, "description": "invalid request, one entry per field"},
}


def api_state(request: Request) -> ApiState:
    return request.app.state.api


def require_key(request: Request,
                creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
    state = api_state(request)
    if creds is None or not keys_equal(creds.credentials, state.api_key.get()):
        raise HTTPException(401, "Missing or wrong API key: send `Authorization: Bearer <key>` "
                            "(`multitalk-desktop api-key` prints it).",
                            headers={"WWW-Authenticate": "Bearer"})
    return creds.credentials


Key = Annotated[str, Depends(require_key)]


def find_job(state: ApiState, job_id: str) -> Job:
    # Ids are checked before they reach anything else, so no id can name a path or a prefix match.
    if not JOB_ID.fullmatch(job_id):
        raise HTTPException(404, f"There is no job {job_id[:80]!r}.")
    try:
        return state.queue.store.get(job_id)
    except JobNotFound as err:
        raise HTTPException(404, f"There is no job {job_id!r}.") from err


# ----------------------------------------------------------------------------------- health


@router.get("/health", response_model=schemas.HealthResponse, tags=["service"])
def get_health(request: Request) -> dict:
    """Liveness and readiness; no key needed."""
    return health_module.health(api_state(request))


# --------------------------------------------------------------------------------- generate

_MULTIPART_SCHEMA = {
    "type": "object",
    "properties": {
        "request": {"type": "string", "description": "the JSON request (image/audio may be omitted "
                    "when uploaded as files)"},
        "image": {"type": "string", "format": "binary"},
        "audio": {"type": "array", "items": {"type": "string", "format": "binary"}, "maxItems": 2},
    },
}
GENERATE_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/GenerateRequest"}},
            "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
        },
    }
}


@router.post("/generate", response_model=schemas.GenerateResponse, openapi_extra=GENERATE_OPENAPI,
             responses={**ERRORS, 413: {"model": schemas.ErrorBody}, 429: {"model": schemas.ErrorBody}},
             tags=["jobs"])
async def generate(request: Request, key: Key) -> dict:
    """Queue a job. JSON body (the cloud shape), or multipart with a `request` JSON field and
    `image`/`audio` files."""
    state = api_state(request)
    wait = state.limiter.take(key)
    if wait > 0:
        raise HTTPException(429, f"Too many submissions; try again in {retry_after_header(wait)} s.",
                            headers={"Retry-After": retry_after_header(wait)})
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    staging = Staging(state.ctx)
    try:
        if ctype == "multipart/form-data":
            body, image, voices = await _read_multipart(request, staging)
        else:
            body, image, voices = _parse_body(await request.body()), None, []
        return await run_in_threadpool(_submit, state, body, image, voices, staging)
    finally:
        await run_in_threadpool(staging.cleanup)


def _parse_body(raw: bytes) -> schemas.GenerateRequest:
    try:
        return schemas.GenerateRequest.model_validate_json(raw or b"{}")
    except ValidationError as err:
        raise ApiProblem(422, "The request is not valid.", problems_from_pydantic(err)) from err


async def _read_multipart(request: Request, staging: Staging):
    form = await request.form(max_files=3, max_fields=10)
    try:
        raw = form.get("request") or "{}"
        if isinstance(raw, UploadFile):
            raw = await raw.read()
        body = _parse_body(raw.encode("utf-8") if isinstance(raw, str) else raw)
        image_files = [f for f in form.getlist("image") if isinstance(f, UploadFile)]
        voice_files = [f for f in form.getlist("audio") if isinstance(f, UploadFile)]
        problems = []
        if len(image_files) > 1:
            problems.append(("image", "Upload one image."))
        if len(voice_files) > 2:
            problems.append(("audio", f"{len(voice_files)} voices were uploaded; MultiTalk drives at "
                             "most two people."))
        if image_files and body.image_s3_url:
            problems.append(("image", "Give the image either as an upload or as image_s3_url, not both."))
        if voice_files and body.audio_s3_urls:
            problems.append(("audio", "Give the voices either as uploads or as audio_s3_urls, not both."))
        if problems:
            raise ApiProblem(422, "The request is not valid.", problems)
        image = await _save_upload(image_files[0], staging, "image") if image_files else None
        voices = [await _save_upload(f, staging, f"voice{k}") for k, f in enumerate(voice_files, 1)]
        return body, image, voices
    finally:
        await form.close()


async def _save_upload(upload: UploadFile, staging: Staging, stem: str) -> Path:
    dest = staging.path(stem, safe_suffix(upload.filename))
    with dest.open("wb") as fh:
        while chunk := await upload.read(1 << 20):
            fh.write(chunk)
    return dest


def _submit(state: ApiState, body: schemas.GenerateRequest, image: Path | None, voices: list[Path],
            staging: Staging) -> dict:
    _, problems = translate.merged_options(body)
    refs = translate.voice_refs(body)
    if len(refs) > 2:
        problems.append(("audio_s3_urls", f"{len(refs)} voices were given; MultiTalk drives at most "
                         "two people, so give one or two."))
    if body.webhook_url is not None:
        try:
            check_http_url(body.webhook_url, allow_private=state.ctx.settings.api_allow_private_webhooks,
                           what="webhook URL")
        except UrlRefused as err:
            problems.append(("webhook_url", str(err)))
    if problems:
        raise ApiProblem(422, "The request is not valid.", problems)
    if image is None and body.image_s3_url:
        try:
            image = state.resolver.resolve(body.image_s3_url, "image_s3_url", staging, "image")
        except InputRefused as err:
            problems.append((err.field, err.message))
    if not voices:
        for k, ref in enumerate(refs):
            try:
                voices.append(state.resolver.resolve(ref, f"audio_s3_urls[{k}]", staging, f"voice{k + 1}"))
            except InputRefused as err:
                problems.append((err.field, err.message))
    if problems:
        raise ApiProblem(422, "The request is not valid.", problems)
    req = translate.job_request(body, image, voices)
    try:
        job = state.queue.submit(req)
    except ValidationFailed as err:
        raise ApiProblem(422, "The request is not valid.",
                         [(translate.api_field(f), m) for f, m in err.problems]) from err
    if body.webhook_url:
        state.webhooks.subscribe(job.id, body.webhook_url)
    warnings = []
    for note in job.notes:
        fld, _, message = note.partition(": ")
        warnings.append({"field": translate.api_field(fld), "message": message or note})
    return {"job_id": job.id, "status": schemas.STATUS_FOR_STATE[job.state], "state": job.state,
            "created_at": iso(job.created_at), "warnings": warnings}


# ------------------------------------------------------------------------------------ jobs


@router.get("/jobs", response_model=schemas.JobListResponse, responses={401: ERRORS[401], 422: ERRORS[422]},
            tags=["jobs"])
def list_jobs(request: Request, _key: Key,
              limit: Annotated[int, Query(ge=1, le=1000)] = 10,
              offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
              status: schemas.CloudStatus | None = None,
              state: schemas.JobState | None = None,
              search: Annotated[str | None, Query(max_length=200)] = None) -> dict:
    """History, newest first. Filter by cloud `status` or by our precise `state`."""
    api = api_state(request)
    store = api.queue.store
    states: list[str | None] = [None]
    if state is not None:
        states = [state]
        if status is not None and state not in schemas.STATES_FOR_STATUS[status]:
            states = []
    elif status is not None:
        states = list(schemas.STATES_FOR_STATUS[status])
    if len(states) <= 1:
        jobs = store.list_jobs(state=states[0], search=search, limit=limit, offset=offset) if states else []
        total = store.count(state=states[0], search=search) if states else 0
    else:
        # A status covering two states (pending = queued + interrupted): merge the newest of each.
        merged: list[Job] = []
        for s in states:
            merged += store.list_jobs(state=s, search=search, limit=offset + limit, offset=0)
        merged.sort(key=lambda j: (j.created_at, j.id), reverse=True)
        jobs = merged[offset:offset + limit]
        total = sum(store.count(state=s, search=search) for s in states)
    base = str(request.base_url)
    return {"jobs": [translate.job_view(j, base) for j in jobs], "total": total, "limit": limit,
            "offset": offset}


@router.get("/jobs/{job_id}", response_model=schemas.JobStatusResponse, responses=ERRORS, tags=["jobs"])
def get_job(request: Request, job_id: str, _key: Key) -> dict:
    """Status (cloud vocabulary) and precise state, real progress, result or error."""
    return translate.job_view(find_job(api_state(request), job_id), str(request.base_url))


@router.delete("/jobs/{job_id}", response_model=schemas.JobStatusResponse,
               responses={**ERRORS, 409: {"model": schemas.ErrorBody, "description": "already ended"}},
               tags=["jobs"])
async def cancel_job(request: Request, job_id: str, _key: Key) -> dict:
    """Cancel for real: a queued job at once, a running one at the engine's next step. Cancelling a
    cancelled job again answers the same; a completed or failed job answers 409."""
    state = api_state(request)
    job = await run_in_threadpool(_cancel, state, job_id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CANCEL_WAIT_S
    while job.state == "running" and loop.time() < deadline:
        await asyncio.sleep(0.05)
        job = await run_in_threadpool(state.queue.store.get, job.id)
    return translate.job_view(job, str(request.base_url))


def _cancel(state: ApiState, job_id: str) -> Job:
    job = find_job(state, job_id)
    if job.state == "cancelled" or (job.state == "running" and job.cancel_requested):
        return job
    try:
        return state.queue.cancel(job.id)
    except IllegalTransition as err:
        job = state.queue.store.get(job.id)
        if job.state == "cancelled":
            return job
        raise ApiProblem(409, f"The job is already {job.state}; there is nothing to cancel.") from err


@router.get("/jobs/{job_id}/download", tags=["jobs"],
            responses={200: {"content": {"video/mp4": {}}, "description": "the MP4, Range supported"},
                       206: {"description": "partial content (Range)"},
                       401: ERRORS[401], 404: ERRORS[404],
                       409: {"model": schemas.ErrorBody, "description": "not completed"}})
def download(request: Request, job_id: str,
             creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
             url: Annotated[bool, Query(description="answer a signed URL instead of the file")] = False,
             expires_in: Annotated[int, Query(ge=60, le=7 * 86400)] = 3600,
             expires: Annotated[int | None, Query(ge=0, le=2**40)] = None,
             signature: Annotated[str | None, Query(max_length=128)] = None):
    """The MP4 (streamed, with Range), or with `?url=1` a time-limited signed URL to it that needs
    no key."""
    state = api_state(request)
    signed = JOB_ID.fullmatch(job_id) is not None and state.download_signature_ok(job_id, expires, signature)
    if not signed:
        require_key(request, creds)
    job = find_job(state, job_id)
    if job.state != "completed" or not job.output:
        raise ApiProblem(409, f"The job is {job.state}; its video can be downloaded once it is completed.")
    path = Path(job.output)
    if not path.is_file():
        raise HTTPException(404, "The job's video file is no longer there (deleted or moved).")
    if url:
        exp, sig = state.sign_download(job.id, expires_in)
        link = (str(request.base_url).rstrip("/") + translate.download_path(job.id)
                + f"?expires={exp}&signature={sig}")
        return schemas.SignedUrlResponse(url=link, expires_at=iso(exp)).model_dump()
    return FileResponse(path, media_type="video/mp4", filename=path.name)


# ----------------------------------------------------------------------------------- webhooks


@router.post("/webhook-test", response_model=schemas.WebhookTestResponse,
             responses={401: ERRORS[401], 422: ERRORS[422]}, tags=["webhooks"])
async def webhook_test(request: Request, body: schemas.WebhookTestRequest, _key: Key) -> dict:
    """Send one signed test delivery to `url` now and report what happened."""
    state = api_state(request)
    try:
        await run_in_threadpool(check_http_url, body.url,
                                allow_private=state.ctx.settings.api_allow_private_webhooks,
                                what="webhook URL")
    except UrlRefused as err:
        raise ApiProblem(422, "The request is not valid.", [("url", str(err))]) from err
    payload = {"job_id": "webhook-test", "status": "test", "state": "test", "timestamp": iso_now()}
    raw = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    headers = signed_headers(state.webhook_secret.get(), raw, "test", "test")
    outcome = await run_in_threadpool(send_once, body.url, raw, headers)
    return {"url": body.url, "delivered": outcome.delivered, "status_code": outcome.status_code,
            "error": outcome.error, "elapsed_ms": outcome.elapsed_ms}


def job_payload(state: ApiState, job_id: str) -> tuple[str, dict] | None:
    """For the webhook dispatcher: the payload once the job has ended."""
    try:
        job = state.queue.store.get(job_id)
    except JobNotFound as err:
        raise KeyError(job_id) from err
    if job.state not in FINAL_STATES:
        return None
    return f"job.{job.state}", translate.webhook_payload(job, state.base_url)
