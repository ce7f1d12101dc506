"""The API key: made on first use, private to the user, rotation takes effect in a running server."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from multitalk_desktop.api.keys import get_or_create_key, key_path, rotate_key
from tests.api.conftest import make_context

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "multitalk_desktop", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits")
def test_key_is_created_once_and_readable_by_the_user_only():
    ctx = make_context()
    first = get_or_create_key(ctx)
    assert first == get_or_create_key(ctx)
    assert len(first) > 32
    assert stat.S_IMODE(key_path(ctx).stat().st_mode) == 0o600
    rotated = rotate_key(ctx)
    assert rotated != first
    assert stat.S_IMODE(key_path(ctx).stat().st_mode) == 0o600


def test_api_key_command_prints_the_key_and_rotate_replaces_it():
    printed = cli("api-key")
    assert printed.returncode == 0, printed.stderr
    ctx = make_context()
    assert printed.stdout.strip() == get_or_create_key(ctx)
    rotated = cli("api-key", "--rotate")
    assert rotated.returncode == 0
    assert rotated.stdout.strip() != printed.stdout.strip()
    assert cli("api-key").stdout.strip() == rotated.stdout.strip()


def test_rotated_key_takes_effect_in_a_running_server(idle_api):
    old = idle_api.key
    assert idle_api.get("/api/v1/jobs").status_code == 200
    new = rotate_key(make_context())
    assert idle_api.client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {old}"}).status_code == 401
    assert idle_api.client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {new}"}).status_code == 200
