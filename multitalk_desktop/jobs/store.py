"""The job database: the single source of truth, shared by the GUI, the CLI, the HTTP API and any
number of worker processes.

SQLite in WAL mode with synchronous=FULL: once `create_job` returns, the job survives a power cut.
Every state change goes through `transition`, which checks the state machine and appends to the
events table in the same transaction. Writers take the write lock up front (BEGIN IMMEDIATE) so a
read-then-write can never interleave with another process's write.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from multitalk_desktop.errors import IllegalTransition, MultiTalkError

STATES = ("queued", "running", "completed", "failed", "cancelled", "interrupted")
FINAL_STATES = ("completed", "failed", "cancelled")

# state -> the states it may move to. completed is final; the others can be retried.
LEGAL_TRANSITIONS: dict[str, frozenset[str]] = {
    "queued": frozenset({"running", "cancelled"}),
    "running": frozenset({"completed", "failed", "cancelled", "interrupted"}),
    "completed": frozenset(),
    "failed": frozenset({"queued"}),
    "cancelled": frozenset({"queued"}),
    "interrupted": frozenset({"queued", "cancelled"}),
}

STALE_HEARTBEAT_S = 30.0  # CLI.md: a running job whose heartbeat is this old and whose worker is gone

EMPTY_PROGRESS = {"phase": "queued", "clip": 0, "clips": 0, "step": 0, "steps": 0,
                  "percent": 0.0, "eta_seconds": None}

# Forward migrations: MIGRATIONS[i] takes a database from version i to i + 1. Never edit a
# released step; append a new one.
MIGRATIONS: list[str] = [
    # v1: the first schema.
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        request TEXT NOT NULL,
        progress TEXT,
        output TEXT,
        error TEXT,
        attempts INTEGER NOT NULL DEFAULT 1
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL,
        at REAL NOT NULL,
        kind TEXT NOT NULL,
        from_state TEXT,
        to_state TEXT,
        message TEXT
    );
    CREATE INDEX events_job ON events(job_id, id);
    """,
    # v2: queue order, worker heartbeat and cancel flag, provenance, searchable prompt, history
    # indexes.
    """
    ALTER TABLE jobs ADD COLUMN position INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN worker_id TEXT;
    ALTER TABLE jobs ADD COLUMN heartbeat_at REAL;
    ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN produced_by TEXT;
    ALTER TABLE jobs ADD COLUMN prompt TEXT NOT NULL DEFAULT '';
    ALTER TABLE jobs ADD COLUMN sources TEXT;
    ALTER TABLE jobs ADD COLUMN notes TEXT;
    UPDATE jobs SET prompt = COALESCE(json_extract(request, '$.prompt'), ''), position = rowid;
    CREATE INDEX jobs_created ON jobs(created_at);
    CREATE INDEX jobs_state_created ON jobs(state, created_at);
    CREATE INDEX jobs_state_position ON jobs(state, position);
    """,
    # v3: the finished video a runner is linking into outputs/ right now (JSON: path, size and the
    # completion's notes/provenance), committed before the link so that a crash between the link
    # and the completion leaves a file recovery can adopt or remove, never an orphan.
    """
    ALTER TABLE jobs ADD COLUMN placing_output TEXT;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)

_JOB_COLUMNS = ("id, state, created_at, updated_at, request, progress, output, error, attempts, "
                "position, worker_id, heartbeat_at, cancel_requested, produced_by, sources, notes")


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def this_worker_id() -> str:
    """`pid@host`: enough to tell, on this host, whether the worker process still exists."""
    return f"{os.getpid()}@{socket.gethostname()}"


@dataclass
class Job:
    id: str
    state: str
    created_at: float
    updated_at: float
    request: dict
    progress: dict = field(default_factory=lambda: dict(EMPTY_PROGRESS))
    output: str | None = None
    error: str | None = None
    attempts: int = 1
    position: int = 0
    worker_id: str | None = None
    heartbeat_at: float | None = None
    cancel_requested: bool = False
    produced_by: str | None = None
    sources: dict | None = None  # where the inputs were copied from
    notes: list[str] = field(default_factory=list)  # warnings a creator should see with the job

    @property
    def prompt(self) -> str:
        return str(self.request.get("prompt") or "")

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    def to_json(self) -> dict:
        """The CLI.md shape, plus a few extra keys (worker, produced_by, notes)."""
        return {
            "id": self.id,
            "state": self.state,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "request": self.request,
            "progress": {k: self.progress.get(k, v) for k, v in EMPTY_PROGRESS.items()},
            "output": self.output,
            "error": self.error,
            "attempts": self.attempts,
            "position": self.position,
            "worker_id": self.worker_id,
            "produced_by": self.produced_by,
            "cancel_requested": self.cancel_requested,
            "notes": self.notes,
        }

    @classmethod
    def from_row(cls, row: sqlite3.Row | tuple) -> Job:
        (id_, state, created, updated, request, progress, output, error, attempts, position,
         worker, heartbeat, cancel, produced_by, sources, notes) = tuple(row)
        return cls(
            id=id_, state=state, created_at=created, updated_at=updated,
            request=json.loads(request), progress=json.loads(progress) if progress else dict(EMPTY_PROGRESS),
            output=output, error=error, attempts=attempts, position=position, worker_id=worker,
            heartbeat_at=heartbeat, cancel_requested=bool(cancel), produced_by=produced_by,
            sources=json.loads(sources) if sources else None, notes=json.loads(notes) if notes else [],
        )


@dataclass(frozen=True)
class Event:
    id: int
    job_id: str
    at: float
    kind: str
    from_state: str | None
    to_state: str | None
    message: str | None

    def to_json(self) -> dict:
        return {"at": iso(self.at), "kind": self.kind, "from": self.from_state, "to": self.to_state,
                "message": self.message}


class JobNotFound(MultiTalkError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"There is no job {job_id!r}.", "List jobs with: multitalk-desktop jobs list")


def check_transition(job_id: str, current: str, target: str) -> None:
    if target not in LEGAL_TRANSITIONS.get(current, ()):
        raise IllegalTransition(f"Job {job_id[:8]} is {current}; it cannot become {target}.")


class JobStore:
    """One connection per store; safe to share between the threads of one process (a lock
    serialises them). Other processes open their own store on the same file."""

    def __init__(self, db_path: str | Path, busy_timeout_ms: int = 30_000) -> None:
        self.path = Path(db_path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._own_writes = 0
        self._conn = sqlite3.connect(str(self.path), timeout=busy_timeout_ms / 1000,
                                     isolation_level=None, check_same_thread=False)
        self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = FULL")
        self._conn.execute("PRAGMA foreign_keys = ON")
        self._migrate()

    # ------------------------------------------------------------------ plumbing

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding SQLite's write lock from its first statement."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            self._own_writes += 1

    def _migrate(self) -> None:
        with self.write() as c:
            c.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = c.execute("SELECT version FROM schema_version").fetchone()
            version = row[0] if row else 0
            if row is None:
                c.execute("INSERT INTO schema_version (version) VALUES (0)")
            if version > SCHEMA_VERSION:
                raise MultiTalkError(
                    f"The job database {self.path} was written by a newer version of MultiTalk "
                    f"Desktop (schema {version}, this one knows {SCHEMA_VERSION}).",
                    "Update the app, or point it at another data folder.")
            for step in range(version, SCHEMA_VERSION):
                for statement in _statements(MIGRATIONS[step]):
                    c.execute(statement)
                c.execute("UPDATE schema_version SET version = ?", (step + 1,))

    def schema_version(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT version FROM schema_version").fetchone()[0]

    def data_version(self) -> int:
        """Changes whenever any process (this one included) commits a write; poll it to know when
        to refresh a view."""
        with self._lock:
            return self._conn.execute("PRAGMA data_version").fetchone()[0] + self._own_writes

    def integrity_ok(self) -> bool:
        with self._lock:
            return self._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    @staticmethod
    def _event(c: sqlite3.Connection, job_id: str, kind: str, from_state: str | None = None,
               to_state: str | None = None, message: str | None = None, at: float | None = None) -> None:
        c.execute("INSERT INTO events (job_id, at, kind, from_state, to_state, message) "
                  "VALUES (?, ?, ?, ?, ?, ?)", (job_id, at or time.time(), kind, from_state, to_state, message))

    def _get(self, c: sqlite3.Connection, job_id: str) -> Job:
        row = c.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFound(job_id)
        return Job.from_row(row)

    # ------------------------------------------------------------------ reads

    def get(self, job_id: str) -> Job:
        with self._lock:
            return self._get(self._conn, job_id)

    def find(self, prefix: str) -> Job:
        """A job by its id or an unambiguous prefix of it (people type the first 8 characters)."""
        with self._lock:
            rows = self._conn.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id >= ? AND id < ? LIMIT 2",
                                      (prefix, prefix + "\uffff")).fetchall()
        if len(rows) == 1:
            return Job.from_row(rows[0])
        if not rows:
            raise JobNotFound(prefix)
        raise MultiTalkError(f"More than one job id starts with {prefix!r}.", "Give more characters of the id.")

    def list_jobs(self, state: str | None = None, search: str | None = None, limit: int = 50,
                  offset: int = 0) -> list[Job]:
        """History, newest first."""
        where, params = self._filter(state, search)
        sql = (f"SELECT {_JOB_COLUMNS} FROM jobs {where} ORDER BY created_at DESC, rowid DESC "
               "LIMIT ? OFFSET ?")
        with self._lock:
            rows = self._conn.execute(sql, (*params, int(limit), int(offset))).fetchall()
        return [Job.from_row(r) for r in rows]

    def count(self, state: str | None = None, search: str | None = None) -> int:
        where, params = self._filter(state, search)
        with self._lock:
            return self._conn.execute(f"SELECT COUNT(*) FROM jobs {where}", params).fetchone()[0]

    @staticmethod
    def _filter(state: str | None, search: str | None) -> tuple[str, tuple]:
        clauses, params = [], []
        if state:
            if state not in STATES:
                raise MultiTalkError(f"Unknown state {state!r}; choose one of {', '.join(STATES)}.")
            clauses.append("state = ?")
            params.append(state)
        if search:
            escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            clauses.append("prompt LIKE ? ESCAPE '\\'")
            params.append(f"%{escaped}%")
        return ("WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)

    def queued(self) -> list[Job]:
        """The queue in the order it will run."""
        with self._lock:
            rows = self._conn.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state = 'queued' "
                                      "ORDER BY position, created_at").fetchall()
        return [Job.from_row(r) for r in rows]

    def events(self, job_id: str) -> list[Event]:
        with self._lock:
            rows = self._conn.execute("SELECT id, job_id, at, kind, from_state, to_state, message "
                                      "FROM events WHERE job_id = ? ORDER BY id", (job_id,)).fetchall()
        return [Event(*r) for r in rows]

    def is_cancel_requested(self, job_id: str) -> bool:
        with self._lock:
            row = self._conn.execute("SELECT cancel_requested, state FROM jobs WHERE id = ?",
                                     (job_id,)).fetchone()
        return row is None or bool(row[0]) or row[1] != "running"

    # ------------------------------------------------------------------ writes

    def create_job(self, job_id: str, request: dict, sources: dict | None = None,
                   notes: list[str] | None = None, now: float | None = None) -> Job:
        now = now or time.time()
        with self.write() as c:
            position = c.execute("SELECT COALESCE(MAX(position), 0) + 1 FROM jobs").fetchone()[0]
            c.execute(
                "INSERT INTO jobs (id, state, created_at, updated_at, request, progress, attempts, "
                "position, prompt, sources, notes) VALUES (?, 'queued', ?, ?, ?, ?, 1, ?, ?, ?, ?)",
                (job_id, now, now, json.dumps(request), json.dumps(EMPTY_PROGRESS), position,
                 str(request.get("prompt") or ""), json.dumps(sources) if sources else None,
                 json.dumps(notes or [])))
            self._event(c, job_id, "submitted", None, "queued", "; ".join(notes or []) or None, at=now)
            return self._get(c, job_id)

    def transition(self, job_id: str, target: str, message: str | None = None,
                   expect: tuple[str, ...] | None = None, **columns: object) -> Job:
        """Move a job to `target` (checked against the state machine), setting `columns` too."""
        with self.write() as c:
            return self.transition_in(c, job_id, target, message, expect, **columns)

    def transition_in(self, c: sqlite3.Connection, job_id: str, target: str, message: str | None = None,
                      expect: tuple[str, ...] | None = None, **columns: object) -> Job:
        """`transition` inside a write transaction the caller already holds."""
        job = self._get(c, job_id)
        if expect is not None and job.state not in expect:
            raise IllegalTransition(f"Job {job_id[:8]} is {job.state}, not {' or '.join(expect)}.")
        check_transition(job_id, job.state, target)
        now = time.time()
        sets = {"state": target, "updated_at": now, **columns}
        if job.state == "running" and target != "running":
            sets.setdefault("placing_output", None)  # the placement is over, whichever way it went
        for key in ("progress", "notes", "sources", "placing_output"):
            if key in sets and not isinstance(sets[key], (str, type(None))):
                sets[key] = json.dumps(sets[key])
        assignments = ", ".join(f"{k} = ?" for k in sets)
        c.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*sets.values(), job_id))
        self._event(c, job_id, "state", job.state, target, message, at=now)
        return self._get(c, job_id)

    def claim(self, worker_id: str, produced_by: str | None = None) -> Job | None:
        """Atomically take the first queued job: exactly one worker ever gets a given job."""
        now = time.time()
        with self.write() as c:
            row = c.execute(
                "UPDATE jobs SET state = 'running', worker_id = ?, heartbeat_at = ?, updated_at = ?, "
                "cancel_requested = 0, produced_by = COALESCE(?, produced_by), error = NULL "
                "WHERE id = (SELECT id FROM jobs WHERE state = 'queued' ORDER BY position, created_at "
                f"LIMIT 1) RETURNING {_JOB_COLUMNS}",
                (worker_id, now, now, produced_by)).fetchone()
            if row is None:
                return None
            job = Job.from_row(row)
            self._event(c, job.id, "state", "queued", "running", f"claimed by {worker_id}", at=now)
            return job

    def heartbeat(self, job_id: str, worker_id: str, progress: dict | None = None) -> bool:
        """Refresh the heartbeat (and progress). False when the job is no longer ours to run."""
        now = time.time()
        with self.write() as c:
            if progress is None:
                cur = c.execute("UPDATE jobs SET heartbeat_at = ? WHERE id = ? AND state = 'running' "
                                "AND worker_id = ?", (now, job_id, worker_id))
            else:
                cur = c.execute("UPDATE jobs SET heartbeat_at = ?, updated_at = ?, progress = ? "
                                "WHERE id = ? AND state = 'running' AND worker_id = ?",
                                (now, now, json.dumps(progress), job_id, worker_id))
            return cur.rowcount == 1

    def request_cancel(self, job_id: str) -> Job:
        """A running job: raise its cancel flag (the runner's engine stops at its next step)."""
        with self.write() as c:
            job = self._get(c, job_id)
            if job.state != "running":
                raise IllegalTransition(f"Job {job_id[:8]} is {job.state}, not running.")
            if not job.cancel_requested:
                c.execute("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ?",
                          (time.time(), job_id))
                self._event(c, job_id, "cancel_requested", "running", None, None)
            return self._get(c, job_id)

    def add_event(self, job_id: str, kind: str, message: str | None = None) -> None:
        with self.write() as c:
            self._event(c, job_id, kind, None, None, message)

    def set_position(self, job_id: str, position: int) -> list[Job]:
        """Put a queued job at `position` (1 = runs next) and renumber the queue."""
        with self.write() as c:
            job = self._get(c, job_id)
            if job.state != "queued":
                raise IllegalTransition(f"Job {job_id[:8]} is {job.state}; only queued jobs can be moved.")
            ids = [r[0] for r in c.execute("SELECT id FROM jobs WHERE state = 'queued' "
                                           "ORDER BY position, created_at")]
            ids.remove(job_id)
            index = min(max(int(position), 1), len(ids) + 1) - 1
            ids.insert(index, job_id)
            base = c.execute("SELECT COALESCE(MIN(position), 1) FROM jobs WHERE state = 'queued'").fetchone()[0]
            c.executemany("UPDATE jobs SET position = ? WHERE id = ?",
                          [(base + i, jid) for i, jid in enumerate(ids)])
            self._event(c, job_id, "moved", None, None, f"to position {index + 1}")
        return self.queued()

    def next_position(self, c: sqlite3.Connection) -> int:
        return c.execute("SELECT COALESCE(MAX(position), 0) + 1 FROM jobs").fetchone()[0]

    def stale_running(self, stale_after_s: float = STALE_HEARTBEAT_S, now: float | None = None) -> list[Job]:
        cutoff = (now or time.time()) - stale_after_s
        with self._lock:
            rows = self._conn.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state = 'running' AND "
                                      "COALESCE(heartbeat_at, 0) < ?", (cutoff,)).fetchall()
        return [Job.from_row(r) for r in rows]

    def record_placing(self, job_id: str, worker_id: str, placing: dict) -> bool:
        """Commit the output a runner is about to link into outputs/ (`placing["path"]`), while the
        job is still this worker's and not cancelled. False when it no longer is: do not link."""
        with self.write() as c:
            cur = c.execute("UPDATE jobs SET placing_output = ? WHERE id = ? AND state = 'running' "
                            "AND worker_id = ? AND cancel_requested = 0",
                            (json.dumps(placing), job_id, worker_id))
            if cur.rowcount != 1:
                return False
            self._event(c, job_id, "placing_output", None, None, str(placing.get("path")))
            return True

    @staticmethod
    def placing_in(c: sqlite3.Connection, job_id: str) -> dict | None:
        """The output being placed for a running job (see `record_placing`), or None."""
        row = c.execute("SELECT placing_output FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    @staticmethod
    def output_referenced_in(c: sqlite3.Connection, path: str) -> bool:
        """Whether any job names `path` as its output (such a file must never be deleted)."""
        return c.execute("SELECT 1 FROM jobs WHERE output = ? LIMIT 1", (path,)).fetchone() is not None

    def stale_in(self, c: sqlite3.Connection, job_id: str, stale_after_s: float) -> Job | None:
        """The job when it is still running with a heartbeat older than `stale_after_s`, checked
        inside the caller's write lock: a heartbeat that arrived meanwhile keeps the job."""
        cutoff = time.time() - stale_after_s
        row = c.execute("SELECT state, COALESCE(heartbeat_at, 0) FROM jobs WHERE id = ?",
                        (job_id,)).fetchone()
        if row is None or row[0] != "running" or row[1] >= cutoff:
            return None
        return self._get(c, job_id)

    def mark_interrupted_if_stale(self, job_id: str, stale_after_s: float, reason: str) -> bool:
        """Re-checked inside the write lock: a heartbeat that arrived meanwhile keeps the job."""
        with self.write() as c:
            if self.stale_in(c, job_id, stale_after_s) is None:
                return False
            self.mark_interrupted_in(c, job_id, reason)
            return True

    def mark_interrupted_in(self, c: sqlite3.Connection, job_id: str, reason: str) -> Job:
        return self.transition_in(c, job_id, "interrupted", reason,
                                  error="The worker running this job stopped (crash, kill or power cut). "
                                        "Resume or retry it.")

    def delete_jobs(self, job_ids: list[str]) -> int:
        """Remove finished jobs and their events (retention). Never queued or running ones."""
        if not job_ids:
            return 0
        with self.write() as c:
            deleted = 0
            for jid in job_ids:
                cur = c.execute("DELETE FROM jobs WHERE id = ? AND state NOT IN ('queued', 'running')", (jid,))
                if cur.rowcount:
                    c.execute("DELETE FROM events WHERE job_id = ?", (jid,))
                    deleted += 1
            return deleted

    def retention_candidates(self, keep_last: int = 0, keep_days: float = 0, now: float | None = None) -> list[str]:
        """Ids of finished jobs beyond the newest `keep_last` or older than `keep_days` (0 = keep)."""
        doomed: set[str] = set()
        with self._lock:
            if keep_last > 0:
                doomed.update(r[0] for r in self._conn.execute(
                    "SELECT id FROM jobs ORDER BY created_at DESC, rowid DESC LIMIT -1 OFFSET ?", (keep_last,)))
            if keep_days > 0:
                cutoff = (now or time.time()) - keep_days * 86400
                doomed.update(r[0] for r in self._conn.execute(
                    "SELECT id FROM jobs WHERE created_at < ?", (cutoff,)))
            if not doomed:
                return []
            active = {r[0] for r in self._conn.execute("SELECT id FROM jobs WHERE state IN ('queued', 'running')")}
        return sorted(doomed - active)


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
