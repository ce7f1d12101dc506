"""The `multitalk-desktop` command. Its contract (names, flags, JSON, exit codes) is CLI.md.

Exit codes: 0 success, 1 the work failed, 2 bad usage or an invalid request.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from multitalk_desktop import __version__

# name -> (module under multitalk_desktop.commands, one-line help). Modules load lazily.
COMMANDS: dict[str, tuple[str, str]] = {
    "generate": ("generate", "run one job in the foreground with a progress bar and write the MP4"),
    "submit": ("submit", "queue a job and print its id (or the job as JSON)"),
    "jobs": ("jobs", "list, show, cancel, retry, resume and move jobs"),
    "worker": ("worker", "run queued jobs headless (--once: drain the queue, then exit)"),
    "models": ("models", "check, download or make (tiny) the models folder"),
    "doctor": ("doctor", "system check (GPU, driver, disk, ffmpeg, models)"),
    "conformance": ("conformance", "run the engine against a folder of reference fixtures"),
    "selftest": ("selftest", "tiny models, a two-speaker job, output checked; prints OK"),
    "snapshots": ("snapshots", "render the window offscreen to empty.png, form.png, queue.png and preview.png"),
    "serve": ("serve", "run the local HTTP API"),
    "api-key": ("api_key", "print (or rotate) the local HTTP API key"),
}
# CLI.md's rule; a command module whose codes say more defines its own EXIT_CODES.
EXIT_CODES = ("Exit codes: 0 success, 1 the work failed, 2 bad usage or an invalid request (every "
              "problem printed, one per line, with its field).")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="multitalk-desktop",
        usage="%(prog)s [-h] [--version] [FILES... | COMMAND ...]",
        description="Talking videos from a portrait and voices, on your own GPU. "
        "Without a command, opens the window (image and audio files given go into the job form).",
        epilog=EXIT_CODES + " `multitalk-desktop COMMAND --help` tells more.",
    )
    parser.add_argument("--version", action="version", version=f"multitalk-desktop {__version__}")
    # prog: the commands' usage lines start `multitalk-desktop COMMAND`, not the FILES usage above.
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", prog="multitalk-desktop")
    for name, (module, help_text) in COMMANDS.items():
        mod = importlib.import_module(f"multitalk_desktop.commands.{module}")
        p = sub.add_parser(name, help=help_text, description=help_text,
                           epilog=getattr(mod, "EXIT_CODES", EXIT_CODES))
        mod.add_arguments(p)
        p.set_defaults(_module=mod)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and not argv[0].startswith("-")):
        return gui_main(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        return gui_main([])
    try:
        return int(args._module.run(args) or 0)
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130


def gui_main(files: list[str] | None = None) -> int:
    """Open the window; files given go into the job form."""
    from multitalk_desktop.gui.app import run_app

    return run_app(list(sys.argv[1:] if files is None else files))
