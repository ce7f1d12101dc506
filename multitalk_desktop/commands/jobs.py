"""`multitalk-desktop jobs list|show|cancel|retry|resume|move`: the queue and its history."""

from __future__ import annotations

import argparse
import json
import sys

STATES = ("queued", "running", "completed", "failed", "cancelled", "interrupted")
ID_HELP = "job id (or its first characters)"
EXIT_CODES = ("Exit codes: 0 done; 1 the action is not possible in the job's state (e.g. cancelling "
              "a completed job); 2 bad usage, no such job or an ambiguous id.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="jobs_action", metavar="ACTION")
    sub.required = True

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, epilog=EXIT_CODES)

    p = action("list", "history, newest first")
    p.add_argument("--state", choices=STATES, help="only the jobs in this state")
    p.add_argument("--search", metavar="TEXT", help="words in the prompt")
    p.add_argument("--limit", type=int, default=50, metavar="N", help="at most N jobs (default 50)")
    p.add_argument("--offset", type=int, default=0, metavar="N", help="skip the newest N (default 0)")
    p.add_argument("--json", action="store_true", help="print the jobs as JSON")
    p = action("show", "one job with its events")
    p.add_argument("id", help=ID_HELP)
    p.add_argument("--json", action="store_true", help="print the job and its events as JSON")
    for name, help_text in (("cancel", "cancel a queued job now, a running one at its next step"),
                            ("retry", "queue a failed, cancelled or interrupted job again, from scratch"),
                            ("resume", "queue an interrupted job again; it continues after its last "
                                       "finished clip")):
        p = action(name, help_text)
        p.add_argument("id", help=ID_HELP)
        p.add_argument("--json", action="store_true", help="print the job as JSON")
    p = action("move", "move a queued job to another place in the queue")
    p.add_argument("id", help=ID_HELP)
    p.add_argument("--to", type=int, required=True, metavar="POS", help="1 = runs next")
    p.add_argument("--json", action="store_true", help="print the queue in its new order as JSON")


def run(args: argparse.Namespace) -> int:
    from multitalk_desktop.errors import IllegalTransition, MultiTalkError
    from multitalk_desktop.jobs.cli_support import EXIT_FAILED, EXIT_OK, EXIT_USAGE, job_line
    from multitalk_desktop.jobs.queue import JobQueue
    from multitalk_desktop.jobs.store import JobNotFound

    with JobQueue() as queue:
        queue.recover_interrupted()
        try:
            action = args.jobs_action
            if action == "list":
                if args.limit < 0 or args.offset < 0:
                    print("--limit and --offset must be 0 or more.", file=sys.stderr)
                    return EXIT_USAGE
                jobs = queue.list(state=args.state, search=args.search, limit=args.limit, offset=args.offset)
                if args.json:
                    print(json.dumps([j.to_json() for j in jobs], indent=2))
                else:
                    for j in jobs:
                        print(job_line(j))
                    total = queue.store.count(state=args.state, search=args.search)
                    print(f"({len(jobs)} of {total} shown)", file=sys.stderr)
                return EXIT_OK
            if action == "show":
                job = queue.get(args.id)
                events = queue.store.events(job.id)
                if args.json:
                    data = job.to_json()
                    data["events"] = [e.to_json() for e in events]
                    print(json.dumps(data, indent=2))
                else:
                    _print_job(job, events, queue.log_path(job.id))
                return EXIT_OK
            if action == "move":
                jobs = queue.move(args.id, args.to)
                if args.json:
                    print(json.dumps([j.to_json() for j in jobs], indent=2))
                else:
                    for pos, j in enumerate(jobs, start=1):
                        print(f"{pos:3d}. {job_line(j)}")
                return EXIT_OK
            job = getattr(queue, action)(args.id)
            if args.json:
                print(json.dumps(job.to_json(), indent=2))
            elif action == "cancel" and job.state == "running":
                print(f"{job.id[:8]}: cancel requested; the job stops at its next step.")
            else:
                print(f"{job.id[:8]}: {job.state}")
            return EXIT_OK
        except JobNotFound as err:
            print(err.user_text(), file=sys.stderr)
            return EXIT_USAGE
        except IllegalTransition as err:
            print(err.user_text(), file=sys.stderr)
            return EXIT_FAILED
        except MultiTalkError as err:
            print(err.user_text(), file=sys.stderr)
            return EXIT_USAGE


def _print_job(job, events, log_path) -> None:
    data = job.to_json()
    req = data["request"]
    print(f"id:          {job.id}")
    print(f"state:       {job.state}" + ("  (cancel requested)" if job.cancel_requested else ""))
    print(f"created:     {data['created_at']}   updated: {data['updated_at']}")
    print(f"attempts:    {job.attempts}")
    if job.produced_by:
        print(f"produced by: {job.produced_by}" + ("  (fake engine: not a real video)" if job.produced_by == "test-engine" else ""))
    if job.worker_id:
        print(f"worker:      {job.worker_id}")
    p = data["progress"]
    print(f"progress:    {p['phase']} {p['percent']}%  clip {p['clip']}/{p['clips']}  step {p['step']}/{p['steps']}")
    print(f"prompt:      {req.get('prompt')}")
    print(f"image:       {req.get('image')}")
    for k, a in enumerate(req.get("audio") or [], start=1):
        print(f"voice {k}:     {a}")
    print(f"settings:    {req.get('resolution')} {req.get('mode')} steps {req.get('steps')} seed {req.get('seed')} "
          f"guidance {req.get('text_guidance')}/{req.get('audio_guidance')} audio {req.get('audio_type')}")
    if job.output:
        print(f"output:      {job.output}")
    if job.error:
        print(f"error:       {job.error}")
    for note in job.notes:
        print(f"note:        {note}")
    print(f"log:         {log_path}")
    print("events:")
    for e in events:
        move = f"{e.from_state or ''} -> {e.to_state}" if e.to_state else ""
        print(f"  {e.to_json()['at']}  {e.kind:<16} {move:<24} {e.message or ''}")
