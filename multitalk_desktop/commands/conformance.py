"""`multitalk-desktop conformance DIR`: run the engine's functions on a folder of reference
fixtures (inputs and outputs of the official MultiTalk code) and compare within tolerance.

Prints one line per case (each compared output with its maximum absolute error and tolerance);
`--json` prints the whole report as JSON instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_CODES = ("Exit codes: 0 every case passed; 1 a case failed, or the folder has no usable case; "
              "2 bad usage or DIR is not a folder.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", metavar="DIR", help="folder of <case>.json + <case>.safetensors fixtures")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--tolerances", metavar="FILE", default=None,
                        help="a tolerance file in the format of the bundled one (default: bundled)")


def run(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    if not folder.is_dir():
        print(f"multitalk-desktop conformance: {folder} is not a folder.", file=sys.stderr)
        return 2
    # Deferred: torch and the engine load only when the command runs.
    from multitalk_desktop.engine.conformance.runner import load_tolerances, run_folder

    tolerances = load_tolerances(args.tolerances)

    def show(result) -> None:
        if not args.json:
            print(result.line(), flush=True)

    report = run_folder(folder, tolerances, on_case=show)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        for problem in report.problems:
            print(f"PROBLEM  {problem}")
        passed = sum(c.ok for c in report.cases)
        print(f"{passed}/{len(report.cases)} cases passed" + ("" if report.ok else " - CONFORMANCE FAILED"))
    return 0 if report.ok else 1
