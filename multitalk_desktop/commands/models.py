"""`multitalk-desktop models check [DIR] | download [DIR] | make-tiny DIR`: the models folder."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

EXIT_CODES = ("Exit codes: 0 done (check: the folder is ready); 1 check: not ready, download: a "
              "file failed, make-tiny: the folder could not be written; 2 bad usage.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION")

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, epilog=EXIT_CODES)

    check = action("check", "verify every model file; exit 1 when not ready")
    check.add_argument("dir", nargs="?", help="models folder (default: the one in settings)")
    check.add_argument("--quick", action="store_true",
                       help="skip the sha256 comparison (presence, sizes and headers only)")
    download = action("download", "download what is missing (resumable, verified)")
    download.add_argument("dir", nargs="?", help="models folder (default: the one in settings)")
    download.add_argument("--endpoint", help="hub address (default: HF_ENDPOINT or huggingface.co)")
    download.add_argument("--no-optional", action="store_true",
                          help="skip optional files (the fast-mode LoRA)")
    tiny = action("make-tiny", "write a tiny random models folder (tests, selftest)")
    tiny.add_argument("dir", help="folder to write")


def models_dir(arg: str | None) -> Path:
    if arg:
        return Path(arg).expanduser()
    from multitalk_desktop.config import load_context

    return load_context().models_dir


def run(args: argparse.Namespace) -> int:
    action = getattr(args, "models_command", None)
    if action == "check":
        return run_check(models_dir(args.dir), deep=not args.quick)
    if action == "download":
        return run_download(models_dir(args.dir), args.endpoint, not args.no_optional)
    if action == "make-tiny":
        return run_make_tiny(Path(args.dir).expanduser())
    print("usage: multitalk-desktop models check|download|make-tiny [DIR]", file=sys.stderr)
    return 2


def run_check(root: Path, deep: bool) -> int:
    from multitalk_desktop.engine.model_files import check_models

    def on_file(rel: str) -> None:
        if deep and sys.stderr.isatty():
            print(f"\rchecking {rel[-70:]:<70}", end="", file=sys.stderr, flush=True)

    report = check_models(root, deep=deep, on_file=on_file)
    if deep and sys.stderr.isatty():
        print("\r" + " " * 80 + "\r", end="", file=sys.stderr)
    for problem in report.problems:
        print(str(problem))
    for rel in report.optional_missing:
        print(f"{rel}: optional, not present (fast mode needs it; `models download` fetches it).")
    if report.unverified and report.ready:
        print(f"note: {len(report.unverified)} files have no recorded hash yet (not downloaded by this "
              "app); `models download` verifies them against the hub.")
    print(report.summary())
    return 0 if report.ready else 1


def run_download(root: Path, endpoint: str | None, include_optional: bool) -> int:
    from multitalk_desktop.engine.download import DownloadProgress, download_models

    tty = sys.stderr.isatty()
    last = {"t": 0.0}

    def show(p: DownloadProgress) -> None:
        if p.phase in ("downloading", "verifying") and tty:
            now = time.monotonic()
            if p.phase == "downloading" and now - last["t"] < 0.2 and p.done_bytes != p.total_bytes:
                return
            last["t"] = now
            total = f"/{p.total_bytes / 1e6:.1f}" if p.total_bytes else ""
            print(f"\r[{p.file_index}/{p.files}] {p.phase} {p.path[-48:]} {p.done_bytes / 1e6:.1f}{total} MB   ",
                  end="", file=sys.stderr, flush=True)
        elif p.phase in ("done", "skipped", "failed", "converting"):
            if tty:
                print("\r" + " " * 100 + "\r", end="", file=sys.stderr)
            extra = f": {p.message}" if p.message else ""
            print(f"[{p.file_index}/{p.files}] {p.phase} {p.path}{extra}", file=sys.stderr)

    report = download_models(root, endpoint=endpoint, on_progress=show, include_optional=include_optional)
    for path, reason in report.failed:
        print(f"{path}: {reason}")
    print(f"{len(report.downloaded)} downloaded, {len(report.skipped)} already present, "
          f"{len(report.failed)} failed.")
    return 0 if report.ok else 1


def run_make_tiny(root: Path) -> int:
    from multitalk_desktop.engine.engine import quiet_library_output
    from multitalk_desktop.engine.make_tiny import make_tiny_models

    start = time.monotonic()
    quiet_library_output()
    make_tiny_models(root)
    print(f"Tiny models written to {root} in {time.monotonic() - start:.1f} s.")
    return 0
