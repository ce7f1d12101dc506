"""The local API's secrets, kept in the config folder, readable by the user alone (0600).

- `api_key`: the bearer key every endpoint but health needs. Generated on first use.
- `webhook_secret`: the HMAC key webhook deliveries are signed with. Separate from the API key so a
  webhook receiver (possibly on another machine) can verify deliveries without being able to submit
  or cancel jobs.

Both are re-read when the file changes, so `multitalk-desktop api-key --rotate` takes effect in a
running server at once.
"""

from __future__ import annotations

import hmac
import os
import secrets
import threading
from pathlib import Path

from multitalk_desktop.config import AppContext, atomic_write_bytes

KEY_FILE = "api_key"
WEBHOOK_SECRET_FILE = "webhook_secret"
KEY_PREFIX = "mtd_"
WEBHOOK_SECRET_PREFIX = "whsec_"


def key_path(ctx: AppContext) -> Path:
    return ctx.paths.config_dir / KEY_FILE


def webhook_secret_path(ctx: AppContext) -> Path:
    return ctx.paths.config_dir / WEBHOOK_SECRET_FILE


def _new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def _read_or_create(path: Path, prefix: str) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
        if text:
            return text
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = _new_secret(prefix)
    try:
        # O_EXCL: two processes starting at once agree on one key (the loser reads the winner's).
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        text = path.read_text(encoding="utf-8").strip()
        if text:
            return text
        return _replace(path, prefix)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secret + "\n")
    return secret


def _replace(path: Path, prefix: str) -> str:
    secret = _new_secret(prefix)
    # mkstemp (inside atomic_write_bytes) creates the file 0600 before the secret goes in.
    atomic_write_bytes(path, (secret + "\n").encode("utf-8"))
    try:
        os.chmod(path, 0o600)
    except OSError:  # pragma: no cover - Windows keeps the user-only ACL of the config folder
        pass
    return secret


def get_or_create_key(ctx: AppContext) -> str:
    return _read_or_create(key_path(ctx), KEY_PREFIX)


def rotate_key(ctx: AppContext) -> str:
    """A new key; the old one stops working at once (and so do signed download URLs made with it)."""
    return _replace(key_path(ctx), KEY_PREFIX)


def get_or_create_webhook_secret(ctx: AppContext) -> str:
    return _read_or_create(webhook_secret_path(ctx), WEBHOOK_SECRET_PREFIX)


def rotate_webhook_secret(ctx: AppContext) -> str:
    return _replace(webhook_secret_path(ctx), WEBHOOK_SECRET_PREFIX)


def keys_equal(given: str, expected: str) -> bool:
    """Constant-time comparison, so response timing tells nothing about how much of a guess matched."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


class SecretFile:
    """A secret that follows its file: re-read when the file's mtime/size changes (cheap stat per
    request), so a rotation from another process applies without restarting the server."""

    def __init__(self, path: Path, load) -> None:
        self._path = path
        self._load = load
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._value = ""

    def get(self) -> str:
        try:
            st = self._path.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp is None or stamp != self._stamp or not self._value:
                self._value = self._load()
                st = self._path.stat()
                self._stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            return self._value
