"""`multitalk-desktop snapshots OUTDIR`: render the window offscreen to empty.png, form.png,
queue.png and preview.png (in a temporary data folder, with the test engine)."""

from __future__ import annotations

import argparse
import os

EXIT_CODES = ("Exit codes: 0 the PNG files were written (their paths are printed); 1 rendering "
              "failed; 2 bad usage.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("outdir", help="folder to write the PNG files into")


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from multitalk_desktop.gui.snapshots import render_snapshots

    for path in render_snapshots(args.outdir):
        print(path)
    return 0
