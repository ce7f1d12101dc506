"""The queue service: what a user can do to jobs (submit, cancel, retry, resume, reorder) on top
of the store, plus the file side of a job (its folder, its copied inputs, retention).

Shared by the GUI, the CLI and the HTTP API; several processes may each hold a JobQueue on the
same data folder at once.
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from pathlib import Path

from multitalk_desktop.config import AppContext, load_context
from multitalk_desktop.errors import IllegalTransition, MultiTalkError
from multitalk_desktop.jobs.inputs import copy_inputs, remove_unused_blobs, restore_inputs
from multitalk_desktop.jobs.spec import JobRequest, validate
from multitalk_desktop.jobs.store import STALE_HEARTBEAT_S, Event, Job, JobStore

CLIPS_FOLDER = "clips"  # finished clips the engine keeps so `resume` can continue
INPUTS_FOLDER = "inputs"
LOG_FILE = "log.txt"


def worker_is_gone(worker_id: str | None) -> bool:
    """True when the worker process that owns a job no longer exists. Only this host's processes
    can be checked; another host's worker counts as gone once its heartbeat is stale."""
    if not worker_id or "@" not in worker_id:
        return True
    pid_text, host = worker_id.split("@", 1)
    if host != socket.gethostname():
        return True
    try:
        pid = int(pid_text)
    except ValueError:
        return True
    if pid == os.getpid():
        return False
    import psutil

    try:
        proc = psutil.Process(pid)
        return proc.status() == psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return not psutil.pid_exists(pid)


class JobQueue:
    def __init__(self, ctx: AppContext | None = None, stale_after_s: float = STALE_HEARTBEAT_S) -> None:
        self.ctx = ctx or load_context()
        self.paths = self.ctx.paths.ensure()
        self.store = JobStore(self.paths.database)
        self.stale_after_s = stale_after_s
        self.blobs_dir = self.paths.data_dir / "blobs"

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> JobQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ folders

    def job_dir(self, job_id: str) -> Path:
        return self.paths.job_dir(job_id)

    def log_path(self, job_id: str) -> Path:
        return self.job_dir(job_id) / LOG_FILE

    # ------------------------------------------------------------------ reads

    def get(self, job_id: str) -> Job:
        return self.store.find(job_id)

    def list(self, state: str | None = None, search: str | None = None, limit: int = 50,
             offset: int = 0) -> list[Job]:
        return self.store.list_jobs(state=state, search=search, limit=limit, offset=offset)

    def events(self, job_id: str) -> list[Event]:
        return self.store.events(self.get(job_id).id)

    # ------------------------------------------------------------------ actions

    def submit(self, req: JobRequest) -> Job:
        """Validate (raising ValidationFailed with every problem), copy the inputs into the job's
        folder, then record the job. When this returns, the job survives a crash."""
        resolved = req.resolved()
        report = validate(resolved, models_dir=self.ctx.models_dir)
        report.raise_if_invalid()
        job_id = uuid.uuid4().hex
        inputs_dir = self.job_dir(job_id) / INPUTS_FOLDER
        image = Path(resolved.image).expanduser()
        voices = [Path(a).expanduser() for a in resolved.audio]
        # Inputs first: a crash before the row is written leaves an orphan folder, never a job
        # whose inputs are missing.
        image_copy, voice_copies, blobs = copy_inputs(image, voices, inputs_dir, self.blobs_dir)
        stored = resolved.to_dict()
        stored["image"] = str(image_copy)
        stored["audio"] = [str(v) for v in voice_copies]
        sources = {"image": str(image.resolve()), "audio": [str(v.resolve()) for v in voices],
                   "blobs": blobs}
        notes = [str(w) for w in report.warnings]
        return self.store.create_job(job_id, stored, sources=sources, notes=notes)

    def restore_inputs(self, job: Job) -> list[str]:
        """Make sure the job's input copies are there (a power cut may have lost the links, never
        the blobs they point to). Raises MultiTalkError when an input cannot be restored."""
        blobs = (job.sources or {}).get("blobs") or {}
        try:
            return restore_inputs(self.job_dir(job.id) / INPUTS_FOLDER, blobs, self.blobs_dir)
        except OSError as err:
            raise MultiTalkError(f"The copy of this job's input files is gone ({err.filename}).",
                                 "Submit the job again from the original files.") from err

    def cancel(self, job_id: str) -> Job:
        """Queued (or interrupted): cancelled at once. Running: its cancel flag is raised and the
        runner ends it `cancelled` at the engine's next step."""
        job = self.get(job_id)
        if job.state == "running":
            self.recover_interrupted()
            job = self.store.get(job.id)
        if job.state in ("queued", "interrupted"):
            try:
                return self.store.transition(job.id, "cancelled", "cancelled by the user",
                                             expect=(job.state,))
            except IllegalTransition:
                job = self.store.get(job.id)  # claimed meanwhile: cancel the running job below
        if job.state == "running":
            return self.store.request_cancel(job.id)
        raise IllegalTransition(f"Job {job.id[:8]} is already {job.state}; there is nothing to cancel.")

    def retry(self, job_id: str) -> Job:
        """A failed, cancelled or interrupted job goes back to the end of the queue, same id,
        from scratch (its finished clips are dropped)."""
        job = self.get(job_id)
        if job.state not in ("failed", "cancelled", "interrupted"):
            raise IllegalTransition(f"Job {job.id[:8]} is {job.state}; only failed, cancelled or "
                                    "interrupted jobs can be retried.")
        shutil.rmtree(self.job_dir(job.id) / CLIPS_FOLDER, ignore_errors=True)
        return self._requeue(job, "retry")

    def resume(self, job_id: str) -> Job:
        """An interrupted job goes back to the queue and continues after its last finished clip."""
        job = self.get(job_id)
        if job.state != "interrupted":
            raise IllegalTransition(f"Job {job.id[:8]} is {job.state}; only interrupted jobs can be "
                                    "resumed (use retry for failed or cancelled ones).")
        clips = self.job_dir(job.id) / CLIPS_FOLDER
        kept = clips.is_dir() and any(clips.iterdir())
        return self._requeue(job, "resume" if kept else "resume (no finished clips kept: starts over)")

    def _requeue(self, job: Job, why: str) -> Job:
        with self.store.write() as c:
            return self.store.transition_in(
                c, job.id, "queued", why, expect=(job.state,),
                attempts=job.attempts + 1, error=None, output=None, cancel_requested=0,
                worker_id=None, heartbeat_at=None, position=self.store.next_position(c),
                progress={"phase": "queued", "clip": 0, "clips": 0, "step": 0, "steps": 0,
                          "percent": 0.0, "eta_seconds": None})

    def move(self, job_id: str, position: int) -> list[Job]:
        """Reorder the queue: `position` 1 runs next. Returns the queue in its new order."""
        return self.store.set_position(self.get(job_id).id, position)

    def recover_interrupted(self, stale_after_s: float | None = None) -> list[str]:
        """CLI.md's rule: a running job whose heartbeat is older than the threshold and whose
        worker process is gone becomes `interrupted`. Returns the ids it changed."""
        threshold = self.stale_after_s if stale_after_s is None else stale_after_s
        changed = []
        for job in self.store.stale_running(threshold):
            if not worker_is_gone(job.worker_id):
                continue
            if self.store.mark_interrupted_if_stale(
                    job.id, threshold, f"worker {job.worker_id} stopped sending heartbeats"):
                changed.append(job.id)
        return changed

    def apply_retention(self, keep_last: int | None = None, keep_days: float | None = None) -> list[str]:
        """Delete finished jobs beyond the newest `keep_last` or older than `keep_days`, with
        their folders and output videos (0 or None keeps all). Queued and running jobs are never
        touched. Defaults come from the settings."""
        keep_last = self.ctx.settings.keep_last_jobs if keep_last is None else keep_last
        keep_days = self.ctx.settings.keep_days if keep_days is None else keep_days
        doomed = self.store.retention_candidates(keep_last or 0, keep_days or 0)
        outputs = {j: self.store.get(j).output for j in doomed}
        # Rows first: a crash in between leaves stray files, never a job pointing at missing ones.
        self.store.delete_jobs(doomed)
        removed = []
        for job_id in doomed:
            try:
                self.store.get(job_id)
                continue  # became active again between the two steps (retried): keep it
            except Exception:
                pass
            shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
            out = outputs.get(job_id)
            if out:
                try:
                    Path(out).unlink()
                except OSError:
                    pass
            removed.append(job_id)
        if removed:
            remove_unused_blobs(self.blobs_dir)
        return removed
