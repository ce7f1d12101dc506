"""Small pieces the job commands (`submit`, `jobs`, `worker`, `generate`) share: the engine flags,
printing problems one per line with their field, and the human-readable job lines."""

from __future__ import annotations

import argparse
import sys

from multitalk_desktop.config import DEVICES, PROFILES
from multitalk_desktop.errors import ValidationFailed
from multitalk_desktop.jobs.spec import Report
from multitalk_desktop.jobs.store import Job

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_engine_arguments(parser: argparse.ArgumentParser, hidden_test_engine: bool = True) -> None:
    g = parser.add_argument_group("engine")
    g.add_argument("--models", metavar="DIR", help="models folder (default: the one in settings)")
    g.add_argument("--device", choices=[d for d in DEVICES if d != "auto"] + ["auto"], default=None,
                   help="cuda or cpu (default: settings, then auto)")
    g.add_argument("--profile", choices=PROFILES, default=None, help="VRAM profile (default: settings)")
    g.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="compile the model for speed: the first job starts slower; NVIDIA GPUs "
                        "only, elsewhere the model runs as usual (default: settings, where it is "
                        "off unless turned on)")
    if hidden_test_engine:
        # For tests only: swaps in the fake engine; every job it touches records "test-engine".
        parser.add_argument("--test-engine", action="store_true", help=argparse.SUPPRESS)
        parser.add_argument("--test-step-seconds", type=float, default=0.0, help=argparse.SUPPRESS)


def print_validation(err: ValidationFailed) -> None:
    for fld, message in err.problems:
        print(f"{fld}: {message}", file=sys.stderr)


def print_warnings(report: Report | None = None, notes: list[str] | None = None) -> None:
    for w in (report.warnings if report else []):
        print(f"warning: {w.field}: {w.message}", file=sys.stderr)
    for note in notes or []:
        print(f"warning: {note}", file=sys.stderr)


def job_line(job: Job) -> str:
    p = job.progress
    if job.state == "running" and p.get("clips"):
        progress = f"{p.get('percent', 0):5.1f}% clip {p.get('clip')}/{p.get('clips')} step {p.get('step')}/{p.get('steps')}"
    elif job.state == "running":
        progress = p.get("phase", "")
    else:
        progress = ""
    created = job.to_json()["created_at"][:19].replace("T", " ")
    prompt = job.prompt if len(job.prompt) <= 40 else job.prompt[:39] + "…"
    return f"{job.id[:8]}  {job.state:<11} {created}  {progress:<34} {prompt}"
