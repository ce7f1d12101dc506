"""Placeholder until its issue lands: the command exists and says it is not built yet."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace) -> int:
    print("multitalk-desktop selftest: not built yet in this version.", file=sys.stderr)
    return 1
