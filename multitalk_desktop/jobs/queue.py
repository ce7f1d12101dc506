"""The queue service: what a user can do to jobs (submit, cancel, retry, resume, reorder) on top
of the store, plus the file side of a job (its folder, its copied inputs, retention).

Shared by the GUI, the CLI and the HTTP API; several processes may each hold a JobQueue on the
same data folder at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sqlite3
import uuid
from pathlib import Path

from multitalk_desktop.config import AppContext, load_context
from multitalk_desktop.errors import IllegalTransition, MultiTalkError
from multitalk_desktop.jobs.inputs import copy_inputs, remove_unused_blobs, restore_inputs
from multitalk_desktop.jobs.naming import output_name, place_without_overwrite
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
        worker process is gone becomes `interrupted`. Returns the ids it changed (interrupted, or
        completed by adopting their video).

        A worker that died while putting its finished video in place (see `complete_with_output`)
        left the video's path on the job: a whole video there is adopted (the job ends
        `completed`, nothing is lost); a partial one, or one of a job the user cancelled, is
        removed before the job becomes `interrupted`."""
        threshold = self.stale_after_s if stale_after_s is None else stale_after_s
        changed = []
        for job in self.store.stale_running(threshold):
            if not worker_is_gone(job.worker_id):
                continue
            with self.store.write() as c:
                stale = self.store.stale_in(c, job.id, threshold)
                if stale is None:
                    continue
                placing = self.store.placing_in(c, job.id)
                if placing and not stale.cancel_requested and _is_whole(placing):
                    self.store.transition_in(
                        c, job.id, "completed",
                        f"output {Path(placing['path']).name} was in place when worker "
                        f"{job.worker_id} stopped: kept",
                        **_completion_columns(c, job.id, placing))
                else:
                    if placing:
                        self._remove_unreferenced(c, placing["path"])  # before the commit: crash-safe
                    self.store.mark_interrupted_in(
                        c, job.id, f"worker {job.worker_id} stopped sending heartbeats")
            changed.append(job.id)
        return changed

    def complete_with_output(self, job: Job, worker_id: str, produced: Path, notes: list[str],
                             produced_by: str | None) -> Job:
        """Put a finished video in outputs/ and mark the job completed, unless a cancel got there
        first (the job ends cancelled) or the job is no longer this worker's; then the video is
        discarded. A cancel lands either before or finds the job completed, never both; a
        completed job always has its file.

        The output's path is committed on the job before the video is linked into outputs/, so a
        crash between the link and the completion leaves a video `recover_interrupted` knows
        about, not an orphan. `produced` should already sit on the outputs disk
        (naming.stage_beside) so that nothing slow happens while the database is locked."""
        outputs_dir = self.ctx.outputs_dir
        placing = {"size": produced.stat().st_size, "notes": notes, "produced_by": produced_by}
        recorded: list[str] = []

        def announce(candidate: Path) -> None:
            if not self.store.record_placing(job.id, worker_id, {"path": str(candidate), **placing}):
                raise _NotOurs
            recorded.append(str(candidate))

        try:
            try:
                final: Path | None = place_without_overwrite(
                    produced, outputs_dir, output_name(job.created_at, job.prompt, job.id), announce)
            except _NotOurs:
                final = None
            with self.store.write() as c:
                row = c.execute("SELECT state, cancel_requested, worker_id FROM jobs WHERE id = ?",
                                (job.id,)).fetchone()
                state, cancel_requested, worker = row if row else (None, 0, None)
                ours = state == "running" and worker == worker_id
                if ours and final is not None and not cancel_requested:
                    return self.store.transition_in(
                        c, job.id, "completed", f"output {final.name}",
                        **_completion_columns(c, job.id, {"path": str(final), **placing}))
                if ours and cancel_requested:
                    self.store.transition_in(c, job.id, "cancelled",
                                             "cancelled just before the result was kept")
                if final is not None:
                    self._remove_unreferenced(c, str(final))
        except BaseException:
            # The caller ends the job failed or interrupted, which forgets the recorded name:
            # take back what was placed under it (a half copy, or a video no job will name).
            with contextlib.suppress(Exception), self.store.write() as c:
                for path in recorded:
                    self._remove_unreferenced(c, path)
            raise
        _discard(produced)  # still there when the placement stopped before linking
        return self.store.get(job.id)

    def _remove_unreferenced(self, c: sqlite3.Connection, path: str) -> None:
        """Delete a video that is being placed, unless a job already names it as its output (a
        recovery may have adopted it meanwhile): a completed job's video is never deleted."""
        if not self.store.output_referenced_in(c, path):
            _discard(Path(path))

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


class _NotOurs(Exception):
    """The job stopped being this worker's (cancelled, or recovered by another process) before its
    video was linked into outputs/."""


def _is_whole(placing: dict) -> bool:
    """The placed file is all there: hard links appear whole; the copy fallback is checked by
    size (the source was fsynced before the copy began)."""
    try:
        return Path(placing["path"]).stat().st_size == int(placing["size"])
    except (OSError, KeyError, TypeError, ValueError):
        return False


def _completion_columns(c: sqlite3.Connection, job_id: str, placing: dict) -> dict:
    """What a completed job's row says: its output, the engine's notes and provenance, progress
    at 100 % with the clip count the run reached."""
    row = c.execute("SELECT progress FROM jobs WHERE id = ?", (job_id,)).fetchone()
    clips = int((json.loads(row[0]) if row and row[0] else {}).get("clips") or 0)
    columns: dict = {
        "output": placing["path"], "error": None, "notes": list(placing.get("notes") or []),
        "progress": {"phase": "done", "clip": clips, "clips": clips, "step": 0, "steps": 0,
                     "percent": 100.0, "eta_seconds": 0},
    }
    if placing.get("produced_by"):
        columns["produced_by"] = placing["produced_by"]
    return columns


def _discard(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
