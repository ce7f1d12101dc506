"""Signed webhook deliveries that survive restarts.

Storage: a separate SQLite file, `api.sqlite3`, beside `jobs.sqlite3` in the data folder. Kept apart
so the job database's schema (and its migrations) stays the jobs layer's alone.

- `subscriptions`: job id -> webhook URL, written when `POST /generate` accepts a job.
- `deliveries`: one row per notification, with its frozen JSON body, attempts, next attempt time
  and outcome. Rows are written before the first attempt, so a server stopped between the job's
  end and a successful delivery sends it after it starts again.

Signing: `X-MultiTalk-Timestamp: <unix seconds>` and `X-MultiTalk-Signature: sha256=<hex>` where
hex = HMAC-SHA256(webhook secret, "<timestamp>." + body). Binding the timestamp into the MAC lets a
receiver reject replays of old deliveries (see `verify_signature`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import httpx

from multitalk_desktop import __version__
from multitalk_desktop.api.netcheck import UrlRefused, check_http_url

SIGNATURE_HEADER = "X-MultiTalk-Signature"
TIMESTAMP_HEADER = "X-MultiTalk-Timestamp"
EVENT_HEADER = "X-MultiTalk-Event"
DELIVERY_HEADER = "X-MultiTalk-Delivery"

MAX_ATTEMPTS = 6
BASE_DELAY_S = 5.0  # then 10, 20, 40, 80 s: about 2.5 minutes of retries in all
MAX_DELAY_S = 3600.0
SEND_TIMEOUT_S = 10.0
LEASE_S = 60.0  # a claimed delivery is not sent again by anyone for this long

SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions (
    job_id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    created_at REAL NOT NULL,
    notified INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    url TEXT NOT NULL,
    event TEXT NOT NULL,
    body BLOB NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_status_code INTEGER,
    last_error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(status, next_attempt_at);
"""


def iso_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(secret: str, timestamp: str, body: bytes, signature: str,
                     tolerance_s: float = 300.0, now: float | None = None) -> bool:
    """What a receiver does: recompute, compare in constant time, refuse stale timestamps."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((now or time.time()) - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature or "")


def signed_headers(secret: str, body: bytes, event: str, delivery_id: str) -> dict[str, str]:
    ts = int(time.time())
    return {
        "Content-Type": "application/json",
        "User-Agent": f"MultiTalk-Desktop/{__version__}",
        TIMESTAMP_HEADER: str(ts),
        SIGNATURE_HEADER: sign(secret, ts, body),
        EVENT_HEADER: event,
        DELIVERY_HEADER: delivery_id,
    }


@dataclass(frozen=True)
class SendOutcome:
    delivered: bool
    status_code: int | None
    error: str | None
    elapsed_ms: int


def send_once(url: str, body: bytes, headers: dict[str, str], timeout_s: float = SEND_TIMEOUT_S) -> SendOutcome:
    """One POST. Redirects are not followed: they could lead to a host the URL check refused."""
    started = time.monotonic()
    try:
        with httpx.Client(timeout=timeout_s, follow_redirects=False, trust_env=False) as client:
            resp = client.post(url, content=body, headers=headers)
    except httpx.HTTPError as err:
        return SendOutcome(False, None, f"{type(err).__name__}: {err}".strip(": "),
                           int((time.monotonic() - started) * 1000))
    elapsed = int((time.monotonic() - started) * 1000)
    ok = 200 <= resp.status_code < 300
    return SendOutcome(ok, resp.status_code, None if ok else f"HTTP {resp.status_code}", elapsed)


@dataclass(frozen=True)
class Delivery:
    id: int
    job_id: str
    url: str
    event: str
    body: bytes
    status: str
    attempts: int
    next_attempt_at: float
    last_status_code: int | None
    last_error: str | None


_DELIVERY_COLUMNS = ("id, job_id, url, event, body, status, attempts, next_attempt_at, "
                     "last_status_code, last_error")


class WebhookStore:
    """`api.sqlite3`. One connection shared by the threads of one process under a lock; other
    processes open their own (WAL, busy timeout)."""

    def __init__(self, db_path: str | Path) -> None:
        self.path = Path(db_path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None,
                                     check_same_thread=False)
        self._conn.execute("PRAGMA busy_timeout = 30000")
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = FULL")
        with self._lock:
            self._conn.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _write(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._conn.execute(sql, params)

    def subscribe(self, job_id: str, url: str) -> None:
        self._write("INSERT OR REPLACE INTO subscriptions (job_id, url, created_at, notified) "
                    "VALUES (?, ?, ?, 0)", (job_id, url, time.time()))

    def waiting_subscriptions(self) -> list[tuple[str, str]]:
        with self._lock:
            return [(r[0], r[1]) for r in self._conn.execute(
                "SELECT job_id, url FROM subscriptions WHERE notified = 0 ORDER BY created_at")]

    def enqueue_for_job(self, job_id: str, event: str, body: bytes) -> int | None:
        """Marks the subscription notified and writes its delivery in one transaction, so two
        server processes never both enqueue it. None when someone else already did."""
        now = time.time()
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                cur = self._conn.execute("UPDATE subscriptions SET notified = 1 WHERE job_id = ? AND "
                                         "notified = 0", (job_id,))
                if cur.rowcount != 1:
                    self._conn.execute("COMMIT")
                    return None
                url = self._conn.execute("SELECT url FROM subscriptions WHERE job_id = ?",
                                         (job_id,)).fetchone()[0]
                cur = self._conn.execute(
                    "INSERT INTO deliveries (job_id, url, event, body, next_attempt_at, created_at, "
                    "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)", (job_id, url, event, body, now, now, now))
                self._conn.execute("COMMIT")
                return int(cur.lastrowid)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def drop_subscription(self, job_id: str) -> None:
        self._write("DELETE FROM subscriptions WHERE job_id = ?", (job_id,))

    def claim_due(self, now: float | None = None, limit: int = 20) -> list[Delivery]:
        """Pending deliveries whose time has come, leased so no other sender takes them."""
        now = now or time.time()
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                rows = self._conn.execute(
                    f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE status = 'pending' AND "
                    "next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?", (now, limit)).fetchall()
                for r in rows:
                    self._conn.execute("UPDATE deliveries SET next_attempt_at = ? WHERE id = ?",
                                       (now + LEASE_S, r[0]))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return [Delivery(*r) for r in rows]

    def record_attempt(self, delivery_id: int, outcome: SendOutcome, final: bool,
                       next_attempt_at: float) -> None:
        status = "delivered" if outcome.delivered else ("failed" if final else "pending")
        self._write("UPDATE deliveries SET status = ?, attempts = attempts + 1, next_attempt_at = ?, "
                    "last_status_code = ?, last_error = ?, updated_at = ? WHERE id = ?",
                    (status, next_attempt_at, outcome.status_code, outcome.error, time.time(), delivery_id))

    def refuse(self, delivery_id: int, reason: str) -> None:
        self._write("UPDATE deliveries SET status = 'failed', last_error = ?, updated_at = ? WHERE id = ?",
                    (reason, time.time(), delivery_id))

    def deliveries(self, job_id: str | None = None) -> list[Delivery]:
        sql = f"SELECT {_DELIVERY_COLUMNS} FROM deliveries"
        params: tuple = ()
        if job_id is not None:
            sql += " WHERE job_id = ?"
            params = (job_id,)
        with self._lock:
            return [Delivery(*r) for r in self._conn.execute(sql + " ORDER BY id", params)]


def backoff_delay(attempts_made: int, base_s: float = BASE_DELAY_S) -> float:
    return min(base_s * (2 ** max(attempts_made - 1, 0)), MAX_DELAY_S)


class WebhookDispatcher:
    """A thread that turns ended jobs into deliveries and sends due deliveries with back-off.

    `job_payload(job_id)` returns `(event, payload dict)` once the job has ended, None while it is
    still waiting or running, and raises KeyError when the job no longer exists.
    """

    def __init__(self, store: WebhookStore, job_payload: Callable[[str], tuple[str, dict] | None],
                 secret: Callable[[], str], allow_private: Callable[[], bool],
                 poll_s: float = 0.5, base_delay_s: float = BASE_DELAY_S,
                 max_attempts: int = MAX_ATTEMPTS, log: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.job_payload = job_payload
        self.secret = secret
        self.allow_private = allow_private
        self.poll_s = poll_s
        self.base_delay_s = base_delay_s
        self.max_attempts = max_attempts
        self.log = log or (lambda text: None)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="webhooks", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception as err:  # a bad row or a locked database must not end notifications
                self.log(f"webhook dispatcher: {type(err).__name__}: {err}")
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def run_once(self) -> None:
        self._enqueue_ended_jobs()
        for delivery in self.store.claim_due():
            if self._stop.is_set():
                return
            self._attempt(delivery)

    def _enqueue_ended_jobs(self) -> None:
        for job_id, _url in self.store.waiting_subscriptions():
            try:
                ready = self.job_payload(job_id)
            except KeyError:
                self.store.drop_subscription(job_id)  # deleted by retention: nothing to say
                continue
            if ready is None:
                continue
            event, payload = ready
            body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
            self.store.enqueue_for_job(job_id, event, body)

    def _attempt(self, delivery: Delivery) -> None:
        try:
            # Checked again at send time: the name may resolve elsewhere than when it was accepted.
            check_http_url(delivery.url, allow_private=self.allow_private(), what="webhook URL")
        except UrlRefused as err:
            self.store.refuse(delivery.id, str(err))
            self.log(f"webhook {delivery.id} for job {delivery.job_id} refused: {err}")
            return
        headers = signed_headers(self.secret(), delivery.body, delivery.event, str(delivery.id))
        outcome = send_once(delivery.url, delivery.body, headers)
        attempts = delivery.attempts + 1
        final = outcome.delivered or attempts >= self.max_attempts
        next_at = time.time() + backoff_delay(attempts, self.base_delay_s)
        self.store.record_attempt(delivery.id, outcome, final, next_at)
        if not outcome.delivered:
            self.log(f"webhook {delivery.id} for job {delivery.job_id} attempt {attempts}: "
                     f"{outcome.error}" + (" (giving up)" if final else ""))
