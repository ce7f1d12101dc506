"""The HTTP API's request and response shapes. Requests reject unknown fields (`extra="forbid"`)
so a misspelt option is a 422 naming it, never silently ignored as the cloud service did.

Ranges are not repeated here: `jobs.spec.validate` checks them (one source of truth with the CLI
and the window), and its problems come back as the same field-level 422 list.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# The cloud service's status words, and which of our precise states each covers.
STATUS_FOR_STATE = {
    "queued": "pending",
    "interrupted": "pending",  # waits for a resume/retry; nothing runs, nothing is lost
    "running": "processing",
    "completed": "completed",
    "failed": "failed",
    "cancelled": "cancelled",
}
STATES_FOR_STATUS: dict[str, tuple[str, ...]] = {}
for _state, _status in STATUS_FOR_STATE.items():
    STATES_FOR_STATUS.setdefault(_status, ())
    STATES_FOR_STATUS[_status] += (_state,)

CloudStatus = Literal["pending", "processing", "completed", "failed", "cancelled"]
JobState = Literal["queued", "running", "completed", "failed", "cancelled", "interrupted"]

Box = tuple[int, int, int, int]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GenerateOptions(_Strict):
    """The cloud service's options, plus ours. Every one given reaches the job."""

    resolution: str | None = Field(None, description="480p, 720p, or WxH (multiples of 16) such as 832x480")
    sample_steps: int | None = Field(None, description="denoising steps, 1-100 (default 40 quality, 8 fast)")
    audio_type: Literal["add", "para"] | None = Field(
        None, description="add: speakers take turns; para: they speak at once")
    audio_cfg: float | None = Field(None, description="audio guidance scale, 0-20 (default 4 quality, 2 fast)")
    color_correction: float | None = Field(None, description="0-1, between clips of long videos (default 1.0)")
    # ours
    seed: int | None = Field(None, description="0 to 2**32-1; default random (recorded with the job)")
    mode: Literal["quality", "fast"] | None = Field(None, description="fast = step-distilled LoRA")
    boxes: list[Box] | None = Field(
        None, description="one [x0, y0, x1, y1] per voice, source-image pixels (default left/right halves)")
    text_cfg: float | None = Field(None, description="text guidance scale, 0-20 (default 5 quality, 1 fast)")
    max_duration: float | None = Field(None, description="cap on output seconds")


class GenerateRequest(_Strict):
    """The cloud request shape. `image_s3_url`/`audio_s3_urls` take local paths, file://, http(s)://
    or s3:// URLs. `seed`, `mode`, `boxes` and `text_cfg` may also be given at the top level."""

    prompt: str | None = Field(None, description="scene description (default: a neutral sentence)")
    image_s3_url: str | None = Field(None, description="portrait image: path, file://, http(s):// or s3://")
    audio_s3_urls: str | list[str] | None = Field(
        None, description="one voice (a string or a list of one) or two voices (a list of two)")
    webhook_url: str | None = Field(None, description="http(s) URL notified when the job ends")
    options: GenerateOptions | None = None
    seed: int | None = None
    mode: Literal["quality", "fast"] | None = None
    boxes: list[Box] | None = None
    text_cfg: float | None = None


class FieldProblem(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    detail: str
    errors: list[FieldProblem] = Field(default_factory=list)


class GenerateResponse(BaseModel):
    job_id: str
    status: CloudStatus
    state: JobState
    created_at: str
    warnings: list[FieldProblem] = Field(default_factory=list)


class Progress(BaseModel):
    phase: str | None = None
    clip: int = 0
    clips: int = 0
    step: int = 0
    steps: int = 0
    percent: float = 0.0
    eta_seconds: float | None = None


class JobResult(BaseModel):
    download_url: str
    filename: str
    size_bytes: int | None = None


class JobStatusResponse(BaseModel):
    job_id: str
    status: CloudStatus
    state: JobState
    progress: Progress
    created_at: str
    updated_at: str
    result: JobResult | None = None
    error: str | None = None
    attempts: int = 0
    cancel_requested: bool = False
    request: dict = Field(default_factory=dict)


class JobListResponse(BaseModel):
    jobs: list[JobStatusResponse]
    total: int
    limit: int
    offset: int


class SignedUrlResponse(BaseModel):
    url: str
    expires_at: str


class WebhookTestRequest(_Strict):
    url: str = Field(..., description="http(s) URL to send a signed test delivery to")


class WebhookTestResponse(BaseModel):
    url: str
    delivered: bool
    status_code: int | None = None
    error: str | None = None
    elapsed_ms: int


class GpuInfo(BaseModel):
    name: str
    vram_total_gb: float | None = None
    vram_free_gb: float | None = None


class HealthResponse(BaseModel):
    status: str = Field(..., description='"healthy", or the reason it is not')
    version: str
    timestamp: str
    gpus: list[GpuInfo]
    models_ready: bool
    models_missing: list[str] = Field(default_factory=list)
    queue_depth: int
    worker: str = Field(..., description="who runs jobs on this machine: this server, another process, or none")
