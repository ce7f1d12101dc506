"""`multitalk-desktop worker [--once]`: run queued jobs headless (one worker per GPU)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

EXIT_CODES = ("Exit codes: 0 every job it ran completed (or was cancelled); 1 a job failed, the "
              "engine could not be loaded, or (with --once) another process is running jobs on this "
              "machine; 2 bad usage; 130 stopped by Ctrl+C or SIGTERM (the running job is marked "
              "interrupted).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from multitalk_desktop.jobs.cli_support import add_engine_arguments

    parser.add_argument("--once", action="store_true", help="drain the queue, then exit")
    parser.add_argument("--idle-wait", type=float, default=1.0, metavar="S",
                        help="seconds between looks at an empty queue (default 1)")
    add_engine_arguments(parser)


class _PrintListener:
    """One line when a job starts, at each new clip or phase, and when it ends."""

    def __init__(self) -> None:
        self._last: tuple = ()

    def job_started(self, job) -> None:
        print(f"{job.id[:8]} started (attempt {job.attempts})", file=sys.stderr, flush=True)

    def job_progress(self, job_id, event) -> None:
        key = (event.phase, event.clip)
        if key != self._last:
            self._last = key
            where = f" clip {event.clip}/{event.clips}" if event.clips else ""
            print(f"{job_id[:8]} {event.phase}{where} {event.percent:.0f}%", file=sys.stderr, flush=True)

    def job_finished(self, job) -> None:
        tail = job.output or job.error or ""
        print(f"{job.id[:8]} {job.state} {tail}".rstrip(), file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from multitalk_desktop.config import load_context
    from multitalk_desktop.jobs.cli_support import EXIT_FAILED
    from multitalk_desktop.jobs.engines import make_engine

    ctx = load_context()
    models = args.models or str(ctx.models_dir)
    device = args.device or ctx.settings.device
    profile = args.profile or ctx.settings.profile
    compile_blocks = ctx.settings.compile_blocks if args.compile is None else args.compile
    kind = "test" if args.test_engine else "real"
    if args.test_engine:
        print("worker: using the TEST engine (fake videos, for tests only).", file=sys.stderr)

    def factory():
        return make_engine(kind, models, device=device, profile=profile,
                           step_seconds=args.test_step_seconds, max_frames=ctx.settings.max_frames,
                           compile_blocks=compile_blocks)

    def on_sigterm(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_sigterm)

    from multitalk_desktop.jobs.worker_lock import RETRY_S, MachineWorkerLock

    # One process per GPU: the window or `serve` may already be running jobs here.
    lock = MachineWorkerLock(ctx)
    if not lock.try_acquire():
        busy = ("Another MultiTalk process (the window, `serve` or a worker) is running jobs on "
                "this machine.")
        if args.once:
            print(f"worker: {busy} Its queue is the same as this one; close it or let it finish.",
                  file=sys.stderr)
            return EXIT_FAILED
        print(f"worker: {busy} Waiting to take over when it stops.", file=sys.stderr, flush=True)
        try:
            while not lock.try_acquire():
                threading.Event().wait(RETRY_S)
        except KeyboardInterrupt:
            return 130
    try:
        return _run_with_lock(args, ctx, factory)
    finally:
        lock.release()


def _run_with_lock(args: argparse.Namespace, ctx, factory) -> int:
    from multitalk_desktop.errors import MultiTalkError
    from multitalk_desktop.jobs.cli_support import EXIT_FAILED, EXIT_OK
    from multitalk_desktop.jobs.queue import JobQueue
    from multitalk_desktop.jobs.runner import Runner

    failed = 0
    with JobQueue(ctx) as queue:
        removed = queue.apply_retention()  # settings keep_last_jobs / keep_days; 0 keeps all
        if removed:
            print(f"worker: retention removed {len(removed)} old job(s).", file=sys.stderr)
        runner = Runner(queue, factory, listener=_PrintListener())
        try:
            if args.once:
                jobs = runner.drain()
                failed = sum(1 for j in jobs if j.state == "failed")
                print(f"worker: ran {len(jobs)} job(s), {failed} failed.", file=sys.stderr)
            else:
                print(f"worker {runner.worker_id}: waiting for jobs (Ctrl+C to stop).", file=sys.stderr)
                stop = threading.Event()
                while not stop.is_set():
                    job = runner.run_next()
                    if job is None:
                        stop.wait(args.idle_wait)
                    elif job.state == "failed":
                        failed += 1
        except MultiTalkError as err:
            print(err.user_text(), file=sys.stderr)
            return EXIT_FAILED
        except Exception as err:  # the engine failed to load in a way it did not foresee
            print(f"worker: the engine could not be started ({type(err).__name__}: {err}).", file=sys.stderr)
            return EXIT_FAILED
        except KeyboardInterrupt:
            print("worker: stopped.", file=sys.stderr)
            return 130
        finally:
            runner.close()
    return EXIT_FAILED if failed else EXIT_OK
