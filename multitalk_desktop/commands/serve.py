"""`multitalk-desktop serve [--host H] [--port P]`: the local HTTP API (docs/API.md).

By default the server also runs queued jobs on this machine's GPU, but only while no other process
(the window, `worker`) does: one lock file per machine decides (see multitalk_desktop/api/worker.py).
Stops on Ctrl+C or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

EXIT_CODES = ("Exit codes: 0 stopped by Ctrl+C or SIGTERM; 1 could not start (e.g. the port is "
              "taken) or stopped unexpectedly; 2 bad usage or a bad --port.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from multitalk_desktop.jobs.cli_support import add_engine_arguments

    parser.add_argument("--host", default=None,
                        help="address to listen on (default: settings, 127.0.0.1); anything but "
                             "loopback exposes the API to the network")
    parser.add_argument("--port", type=int, default=None, help="port (default: settings, 8765; 0 = any free)")
    parser.add_argument("--no-worker", action="store_true",
                        help="only accept and report jobs; leave running them to the window or `worker`")
    parser.add_argument("--rate-limit", type=float, default=None, metavar="N",
                        help="POST /generate per minute per key (default 120, burst 60; 0 = off)")
    parser.add_argument("--max-upload-mb", type=int, default=None, metavar="MB",
                        help="largest multipart upload and http(s) download (default 1024)")
    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from multitalk_desktop.api.inputs import InputLimits, MiB
    from multitalk_desktop.api.keys import key_path
    from multitalk_desktop.api.ratelimit import RateLimit
    from multitalk_desktop.api.server import ApiServer
    from multitalk_desktop.api.state import ApiOptions
    from multitalk_desktop.config import load_context
    from multitalk_desktop.errors import MultiTalkError

    ctx = load_context()
    host = args.host or ctx.settings.api_host
    port = ctx.settings.api_port if args.port is None else args.port
    if not 0 <= port <= 65535:
        print(f"--port: {port} is not a port number (0-65535).", file=sys.stderr)
        return 2
    if args.models:
        ctx = replace(ctx, settings=replace(ctx.settings, models_dir=args.models))
    if args.device or args.profile:
        ctx = replace(ctx, settings=replace(ctx.settings, device=args.device or ctx.settings.device,
                                            profile=args.profile or ctx.settings.profile))
    if args.compile is not None:
        ctx = replace(ctx, settings=replace(ctx.settings, compile_blocks=args.compile))
    options = ApiOptions(engine_kind="test" if args.test_engine else "real")
    if args.rate_limit is not None:
        options = replace(options, rate_limit=RateLimit(per_minute=args.rate_limit,
                                                         burst=max(1, int(args.rate_limit // 2))))
    if args.max_upload_mb is not None:
        cap = max(1, args.max_upload_mb) * MiB
        options = replace(options, limits=InputLimits(max_download_bytes=cap, max_upload_bytes=cap))

    engine_factory = None
    if args.test_engine:
        print("serve: using the TEST engine (fake videos, for tests only).", file=sys.stderr)
        from multitalk_desktop.jobs.engines import make_engine

        def engine_factory():
            return make_engine("test", step_seconds=args.test_step_seconds)

    server = ApiServer(ctx, host, port, run_worker=not args.no_worker, engine_factory=engine_factory,
                       options=options)
    try:
        server.start()
    except MultiTalkError as err:
        print(err.user_text(), file=sys.stderr)
        return 1
    print(f"MultiTalk Desktop API on {server.url}/api/v1 (docs: {server.url}/api/v1/docs)", flush=True)
    print(f"API key: {key_path(ctx)} (print it with `multitalk-desktop api-key`)", flush=True)

    stop = threading.Event()

    def on_signal(signum, frame):  # noqa: ARG001
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        while not stop.wait(0.5):
            if not server.running:
                print("serve: the server stopped unexpectedly.", file=sys.stderr)
                return 1
    finally:
        print("serve: stopping.", file=sys.stderr, flush=True)
        server.stop()
    return 0
