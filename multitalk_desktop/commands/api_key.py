"""`multitalk-desktop api-key [--rotate] [--webhook-secret]`: print the local HTTP API's key.

The key lives in the config folder (file `api_key`, readable by the user alone) and is generated on
first use. `--rotate` replaces it: scripts using the old key get 401 from then on, also from a
server that is already running. `--webhook-secret` prints (or with `--rotate` replaces) the secret
webhook deliveries are signed with instead.
"""

from __future__ import annotations

import argparse

EXIT_CODES = "Exit codes: 0 the key (or secret) was printed; 2 bad usage."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rotate", action="store_true",
                        help="replace the key with a new one (the old one stops working at once)")
    parser.add_argument("--webhook-secret", action="store_true",
                        help="the secret that signs webhook deliveries, instead of the API key")


def run(args: argparse.Namespace) -> int:
    from multitalk_desktop.api import keys
    from multitalk_desktop.config import load_context

    ctx = load_context()
    if args.webhook_secret:
        secret = keys.rotate_webhook_secret(ctx) if args.rotate else keys.get_or_create_webhook_secret(ctx)
    else:
        secret = keys.rotate_key(ctx) if args.rotate else keys.get_or_create_key(ctx)
    print(secret)
    return 0
