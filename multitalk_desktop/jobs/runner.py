"""Runs queued jobs through an engine: claim, generate, put the video in place, mark the job.

Qt-free and torch-free: the GUI hosts a Runner in a QThread and turns the listener callbacks into
signals; `worker` runs one headless. The engine is created once (`engine_factory`) and kept.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from multitalk_desktop.engine.protocol import CancelToken, Engine, GenerationInputs, ProgressEvent
from multitalk_desktop.errors import Cancelled, IllegalTransition, MultiTalkError, OutOfMemory
from multitalk_desktop.jobs.naming import stage_beside
from multitalk_desktop.jobs.queue import JobQueue
from multitalk_desktop.jobs.store import Job, this_worker_id

PROGRESS_INTERVAL_S = 0.25  # at most ~4 progress writes a second
HEARTBEAT_INTERVAL_S = 5.0
CANCEL_POLL_S = 0.1
RECOVER_INTERVAL_S = 5.0


def progress_dict(event: ProgressEvent) -> dict:
    return {"phase": event.phase, "clip": event.clip, "clips": event.clips, "step": event.step,
            "steps": event.steps, "percent": round(float(event.percent), 2),
            "eta_seconds": None if event.eta_s is None else round(float(event.eta_s), 1)}


def _notify(listener: object, name: str, *args: object) -> None:
    method = getattr(listener, name, None) if listener is not None else None
    if method is not None:
        method(*args)


class Runner:
    def __init__(self, queue: JobQueue, engine_factory: Callable[[], Engine], worker_id: str | None = None,
                 listener: object | None = None, heartbeat_interval_s: float = HEARTBEAT_INTERVAL_S,
                 progress_interval_s: float = PROGRESS_INTERVAL_S) -> None:
        self.queue = queue
        self.store = queue.store
        self.engine_factory = engine_factory
        self.worker_id = worker_id or this_worker_id()
        self.listener = listener
        self.heartbeat_interval_s = heartbeat_interval_s
        self.progress_interval_s = progress_interval_s
        self._engine: Engine | None = None
        self._last_recover = 0.0
        self.current_job_id: str | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = self.engine_factory()
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    # ------------------------------------------------------------------ loops

    def run_next(self) -> Job | None:
        """Claim one queued job and run it to a final state. None when the queue is empty."""
        self._recover(force=True)
        engine = self.engine  # load before claiming: a broken engine must not eat a job
        job = self.store.claim(self.worker_id, produced_by=getattr(engine, "name", None))
        if job is None:
            return None
        return self._run(job, engine)

    def run_until(self, stop: threading.Event, idle_wait: float = 0.5) -> None:
        while not stop.is_set():
            if self.run_next() is None:
                stop.wait(idle_wait)

    def drain(self) -> list[Job]:
        """Run until the queue is empty (`worker --once`)."""
        done = []
        while (job := self.run_next()) is not None:
            done.append(job)
        return done

    def _recover(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_recover >= RECOVER_INTERVAL_S:
            self._last_recover = now
            self.queue.recover_interrupted()

    # ------------------------------------------------------------------ one job

    def _run(self, job: Job, engine: Engine) -> Job:
        self.current_job_id = job.id
        job_dir = self.queue.job_dir(job.id)
        job_dir.mkdir(parents=True, exist_ok=True)
        log = _JobLog(self.queue.log_path(job.id))
        log.write(f"attempt {job.attempts} claimed by {self.worker_id} with engine {getattr(engine, 'name', '?')}")
        temp_output = job_dir / f"render-{job.attempts}.tmp.mp4"
        cancel = CancelToken()
        cancel.add_check(_ThrottledFlag(lambda: self.store.is_cancel_requested(job.id)))
        beat = _Heartbeat(self, job.id)
        _notify(self.listener, "job_started", job)
        beat.start()
        try:
            result_job = self._generate(job, engine, temp_output, cancel, beat, log)
        except BaseException:
            # The process is going down (Ctrl+C, SystemExit): say so now rather than waiting for
            # the heartbeat rule.
            beat.stop()
            self._end(job.id, "interrupted", log, "the worker was stopped while running this job",
                      error="The worker was stopped while this job ran. Resume or retry it.")
            _discard(temp_output)
            raise
        finally:
            beat.stop()
            self.current_job_id = None
        _notify(self.listener, "job_finished", result_job)
        return result_job

    def _generate(self, job: Job, engine: Engine, temp_output: Path, cancel: CancelToken,
                  beat: _Heartbeat, log: _JobLog) -> Job:
        req = job.request
        inputs = GenerationInputs(
            image=Path(req["image"]), audio=[Path(a) for a in req["audio"]], output_path=temp_output,
            work_dir=self.queue.job_dir(job.id),  # the engine keeps its clips in <job>/clips/
            boxes=[tuple(b) for b in req["boxes"]] if req.get("boxes") else None,
            prompt=req.get("prompt") or "", audio_type=req.get("audio_type", "add"),
            resolution=req.get("resolution", "480p"), mode=req.get("mode", "quality"),
            steps=int(req["steps"]), seed=int(req["seed"]),
            text_guidance=float(req["text_guidance"]), audio_guidance=float(req["audio_guidance"]),
            color_correction=float(req.get("color_correction", 1.0)),
            max_duration=req.get("max_duration"),
            extra={"job_id": job.id, "attempt": job.attempts},
        )
        inputs.work_dir.mkdir(parents=True, exist_ok=True)

        def on_progress(event: ProgressEvent) -> None:
            beat.progress(progress_dict(event))
            _notify(self.listener, "job_progress", job.id, event)

        try:
            restored = self.queue.restore_inputs(job)
            if restored:
                log.write(f"restored input links lost by a crash: {', '.join(restored)}")
            result = engine.generate(inputs, on_progress=on_progress, cancel=cancel)
        except Cancelled:
            _discard(temp_output)
            return self._end(job.id, "cancelled", log, "cancelled while running")
        except OutOfMemory as err:
            _discard(temp_output)
            log.write(traceback.format_exc())
            return self._end(job.id, "failed", log, "out of memory", error=err.user_text())
        except MultiTalkError as err:
            _discard(temp_output)
            log.write(traceback.format_exc())
            return self._end(job.id, "failed", log, err.message, error=err.user_text())
        except Exception as err:
            _discard(temp_output)
            log.write(traceback.format_exc())
            text = (f"The job stopped with an unexpected error ({type(err).__name__}: {err}). "
                    f"Details are in {self.queue.log_path(job.id)}.")
            return self._end(job.id, "failed", log, f"{type(err).__name__}: {err}", error=text)
        beat.stop()
        try:
            return self._complete(job, Path(result.output_path), result, log)
        except Exception as err:
            _discard(temp_output)
            log.write(traceback.format_exc())
            return self._end(job.id, "failed", log, f"saving the video failed: {err}",
                             error=f"The video was made but could not be saved ({err}). "
                                   "Check the free space of the outputs folder, then retry.")

    def _complete(self, job: Job, produced: Path, result: object, log: _JobLog) -> Job:
        """Put the video in place and mark the job completed (JobQueue.complete_with_output: a
        cancel lands before or not at all; a crash mid-way leaves a video recovery adopts)."""
        if not produced.is_file():
            return self._end(job.id, "failed", log, "engine returned no file",
                             error="The engine finished without writing a video.")
        produced = stage_beside(produced, self.queue.ctx.outputs_dir)  # slow part, before the lock
        notes = list(job.notes) + [str(n) for n in getattr(result, "notes", [])]
        produced_by = getattr(result, "produced_by", None) or job.produced_by
        final_job = self.queue.complete_with_output(job, self.worker_id, produced, notes, produced_by)
        log.write(f"ended {final_job.state}" + (f": {final_job.output}" if final_job.output else ""))
        return final_job

    def _end(self, job_id: str, state: str, log: _JobLog, message: str, **columns: object) -> Job:
        log.write(f"ended {state}: {message}")
        try:
            return self.store.transition(job_id, state, message, expect=("running",), **columns)
        except IllegalTransition:
            # Someone else decided first (e.g. marked interrupted): their word stands.
            return self.store.get(job_id)


class _ThrottledFlag:
    """The cancel flag lives in SQLite; the engine may ask every few milliseconds."""

    def __init__(self, read: Callable[[], bool], interval_s: float = CANCEL_POLL_S) -> None:
        self._read = read
        self._interval = interval_s
        self._last = 0.0
        self._value = False

    def __call__(self) -> bool:
        now = time.monotonic()
        if not self._value and now - self._last >= self._interval:
            self._last = now
            self._value = self._read()
        return self._value


class _Heartbeat:
    """A thread that refreshes the job's heartbeat every few seconds and writes the latest progress
    at most every `progress_interval_s` (slow engines' long steps still show they are alive)."""

    def __init__(self, runner: Runner, job_id: str) -> None:
        self._runner = runner
        self._job_id = job_id
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._pending: dict | None = None
        self._last_write = 0.0
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{job_id[:8]}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def progress(self, progress: dict) -> None:
        with self._lock:
            self._pending = progress
        self._wake.set()

    def stop(self) -> None:
        if not self._stop.is_set():
            self._stop.set()
            self._wake.set()
            if self._thread.is_alive() and threading.current_thread() is not self._thread:
                self._thread.join()
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
        try:
            self._runner.store.heartbeat(self._job_id, self._runner.worker_id, pending)
        except Exception:  # a busy database must not kill the job; the next beat retries
            if pending is not None:
                with self._lock:
                    self._pending = self._pending or pending
        self._last_write = time.monotonic()

    def _loop(self) -> None:
        runner = self._runner
        while not self._stop.is_set():
            since = time.monotonic() - self._last_write
            has_progress = self._pending is not None
            wait = (runner.progress_interval_s if has_progress else runner.heartbeat_interval_s) - since
            if wait > 0:
                self._wake.wait(min(wait, runner.heartbeat_interval_s))
                self._wake.clear()
                continue
            self._flush()


class _JobLog:
    """jobs/<id>/log.txt: what happened, with stack traces that `error` leaves out."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, text: str) -> None:
        try:
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(f"{datetime.now().isoformat(timespec='seconds')} {text.rstrip()}\n")
        except OSError:
            pass


def _discard(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
