"""`multitalk-desktop submit REQUEST [--json]`: validate, copy the inputs, queue the job."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_CODES = ("Exit codes: 0 queued; 1 the job could not be queued; 2 bad usage or an invalid request "
              "(every problem printed, one per line, with its field).")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from multitalk_desktop.jobs.cli_support import add_engine_arguments
    from multitalk_desktop.jobs.spec import add_request_arguments

    add_request_arguments(parser)
    add_engine_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the queued job as JSON")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from multitalk_desktop.config import load_context
    from multitalk_desktop.errors import MultiTalkError, ValidationFailed
    from multitalk_desktop.jobs.cli_support import (
        EXIT_FAILED,
        EXIT_OK,
        EXIT_USAGE,
        print_validation,
        print_warnings,
    )
    from multitalk_desktop.jobs.queue import JobQueue
    from multitalk_desktop.jobs.spec import request_from_args

    try:
        req = request_from_args(args)
    except ValidationFailed as err:
        print_validation(err)
        return EXIT_USAGE
    ctx = load_context()
    if args.models:
        ctx = replace(ctx, settings=replace(ctx.settings, models_dir=str(Path(args.models).expanduser())))
    with JobQueue(ctx) as queue:
        try:
            job = queue.submit(req)
        except ValidationFailed as err:
            print_validation(err)
            return EXIT_USAGE
        except MultiTalkError as err:
            print(err.user_text(), file=sys.stderr)
            return EXIT_FAILED
    print_warnings(notes=job.notes)
    print(json.dumps(job.to_json(), indent=2) if args.json else job.id)
    return EXIT_OK
