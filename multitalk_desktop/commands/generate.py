"""`multitalk-desktop generate REQUEST --out OUT.mp4`: one job in the foreground, with a progress
bar on stderr. Ctrl-C cancels at the next step and writes nothing."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

EXIT_CODES = ("Exit codes: 0 the video was written (its path is printed on stdout, progress goes to "
              "stderr); 1 it could not be made, or Ctrl+C cancelled it (nothing is written); 2 bad "
              "usage or an invalid request (every problem printed, one per line, with its field).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from multitalk_desktop.jobs.cli_support import add_engine_arguments
    from multitalk_desktop.jobs.spec import add_request_arguments

    add_request_arguments(parser)
    add_engine_arguments(parser)
    parser.add_argument("--out", metavar="OUT.mp4", required=True, help="where to write the video")


def run(args: argparse.Namespace) -> int:
    from multitalk_desktop.config import load_context
    from multitalk_desktop.engine.protocol import CancelToken, GenerationInputs
    from multitalk_desktop.errors import Cancelled, MultiTalkError, ValidationFailed
    from multitalk_desktop.jobs.cli_support import (
        EXIT_FAILED,
        EXIT_OK,
        EXIT_USAGE,
        print_validation,
        print_warnings,
    )
    from multitalk_desktop.jobs.spec import request_from_args, validate

    ctx = load_context()
    models = Path(args.models).expanduser() if args.models else ctx.models_dir
    try:
        req = request_from_args(args)
        report = validate(req, models_dir=models)
        report.raise_if_invalid()
    except ValidationFailed as err:
        print_validation(err)
        return EXIT_USAGE
    print_warnings(report)
    r = req.resolved()
    bar = ProgressBar()
    try:
        engine = make_engine(args, ctx, models, bar)
    except MultiTalkError as err:
        bar.finish()
        print(err.user_text(), file=sys.stderr)
        return EXIT_FAILED

    cancel = CancelToken()
    previous = signal.signal(signal.SIGINT, lambda *_: cancel.cancel())
    try:
        with tempfile.TemporaryDirectory(prefix="multitalk-generate-") as work:
            inputs = GenerationInputs(
                image=Path(r.image), audio=[Path(a) for a in r.audio], output_path=Path(args.out).expanduser(),
                work_dir=Path(work), boxes=r.boxes, prompt=r.prompt or "", audio_type=r.audio_type,
                resolution=r.resolution, mode=r.mode, steps=int(r.steps), seed=int(r.seed),
                text_guidance=float(r.text_guidance), audio_guidance=float(r.audio_guidance),
                color_correction=float(r.color_correction), max_duration=r.max_duration,
            )
            result = engine.generate(inputs, on_progress=bar, cancel=cancel)
    except Cancelled:
        bar.finish()
        print("Cancelled; nothing was written.", file=sys.stderr)
        return EXIT_FAILED
    except MultiTalkError as err:
        bar.finish()
        print(err.user_text(), file=sys.stderr)
        return EXIT_FAILED
    finally:
        signal.signal(signal.SIGINT, previous)
        engine.close()
    bar.finish()
    print_warnings(notes=result.notes)
    print(f"Wrote {result.output_path} ({result.frames} frames, {result.frames / result.fps:.2f} s, "
          f"seed {r.seed}).", file=sys.stderr)
    print(result.output_path)
    return EXIT_OK


def make_engine(args, ctx, models: Path, bar):
    if getattr(args, "test_engine", False):
        from multitalk_desktop.jobs.engines import make_engine as make

        return make("test", models, step_seconds=getattr(args, "test_step_seconds", 0.0))
    from multitalk_desktop.engine.engine import MultiTalkEngine

    device = args.device or ctx.settings.device or "auto"
    profile = args.profile or ctx.settings.profile or "auto"
    compile_blocks = ctx.settings.compile_blocks if args.compile is None else args.compile
    return MultiTalkEngine.load(models, profile=profile, device=device,
                                max_frames=ctx.settings.max_frames or None, on_progress=bar,
                                compile_blocks=compile_blocks)


class ProgressBar:
    """One updating line on a terminal; one line per phase change otherwise (logs, pipes)."""

    WIDTH = 28

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last_line = ""
        self.last_phase = None
        self.last_draw = 0.0

    def __call__(self, event) -> None:
        if event.eta_s is not None:
            m, s = divmod(int(event.eta_s), 60)
            eta = f" ETA {m}:{s:02d}"
        else:
            eta = ""
        where = f" clip {event.clip}/{event.clips}" if event.clips else ""
        step = f" step {event.step}/{event.steps}" if event.phase == "denoising" else ""
        filled = int(self.WIDTH * event.percent / 100)
        line = (f"[{'#' * filled}{'-' * (self.WIDTH - filled)}] {event.percent:5.1f}% "
                f"{event.phase}{where}{step}{eta} {event.message}").rstrip()
        if self.tty:
            now = time.monotonic()
            if now - self.last_draw < 0.1 and event.phase == self.last_phase:
                return
            self.last_draw = now
            print("\r" + line.ljust(len(self.last_line)), end="", file=sys.stderr, flush=True)
        elif event.phase != self.last_phase or event.message:
            print(line, file=sys.stderr, flush=True)
        self.last_line, self.last_phase = line, event.phase

    def finish(self) -> None:
        if self.tty and self.last_line:
            print(file=sys.stderr)
        self.last_line = ""
