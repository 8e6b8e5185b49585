"""The durable webhook outbox: one SQLite row per (url, idempotency key, status).

A row is committed before :meth:`Outbox.put` returns, so a notification survives receiver outages
and process restarts. Rows move ``pending -> delivered`` or ``pending -> failed``; finished rows are
kept for ``retention_sec`` so a re-submitted event is not sent twice, then purged. The number of
pending rows is bounded: past ``max_pending`` the oldest pending row is marked failed (dropped).

Order per (url, idempotency key): a resolved row is not due while its firing row is pending, and
once the firing row has failed (given up, refused or dropped) the resolved row fails with it
(:data:`ORPHAN_ERROR`), even when it is put later. A receiver never learns that an alert ended
without having heard that it began. All methods are thread-safe and block only on local disk.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

State = Literal["pending", "delivered", "failed"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    url TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    status TEXT NOT NULL,
    body BLOB NOT NULL,
    created_sec REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_sec REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT NOT NULL DEFAULT '',
    finished_sec REAL,
    UNIQUE (url, idempotency_key, status)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_attempt_sec);
"""

# A row is due unless an older row for the same url and key is still pending: a resolved
# notification never overtakes its firing one.
_UNBLOCKED = """
o.state = 'pending' AND NOT EXISTS (
    SELECT 1 FROM outbox AS p
    WHERE p.state = 'pending' AND p.url = o.url
      AND p.idempotency_key = o.idempotency_key AND p.id < o.id)
"""
_DUE = f"""
SELECT id, url, idempotency_key, status, body, attempts, created_sec FROM outbox AS o
WHERE {_UNBLOCKED} AND next_attempt_sec <= ? ORDER BY id LIMIT ?
"""
_PENDING = "SELECT COUNT(*) FROM outbox WHERE state = 'pending'"
ORPHAN_ERROR = "its firing notification was not delivered"
# Pending rows whose firing row (same url and key, older) has failed: they fail with it.
_ORPHANS = """
UPDATE outbox SET state = 'failed', last_error = ?, finished_sec = ?
WHERE state = 'pending' AND status != 'firing' AND EXISTS (
    SELECT 1 FROM outbox AS f
    WHERE f.url = outbox.url AND f.idempotency_key = outbox.idempotency_key
      AND f.status = 'firing' AND f.state = 'failed' AND f.id < outbox.id)
"""
_NEXT_DUE = f"SELECT MIN(next_attempt_sec) FROM outbox AS o WHERE {_UNBLOCKED}"


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One notification waiting for delivery."""

    id: int
    url: str
    idempotency_key: str
    status: str
    body: bytes
    attempts: int
    created_sec: float


@dataclass(frozen=True, slots=True)
class PutResult:
    """What :meth:`Outbox.put` did: ``inserted`` is False for a duplicate; ``dropped`` pending
    rows were failed to keep the bound; ``orphaned`` rows failed because their firing row had."""

    inserted: bool
    dropped: int
    orphaned: int = 0


class Outbox:
    """SQLite-backed queue of webhook notifications (WAL, synchronous=FULL)."""

    def __init__(self, path: Path, *, max_pending: int = 10_000) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be >= 1, got {max_pending}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_pending = max_pending
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def put(
        self, url: str, idempotency_key: str, status: str, body: bytes, now_sec: float
    ) -> PutResult:
        """Queue one notification, due now. Durable (committed) when this returns."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO outbox (url, idempotency_key, status, body, created_sec,"
                " next_attempt_sec) VALUES (?, ?, ?, ?, ?, ?)",
                (url, idempotency_key, status, body, now_sec, now_sec),
            )
            inserted = cursor.rowcount == 1
            dropped = self._drop_overflow(now_sec) if inserted else 0
            orphaned = self._fail_orphans(now_sec) if inserted else 0
        return PutResult(inserted=inserted, dropped=dropped, orphaned=orphaned)

    def _fail_orphans(self, now_sec: float) -> int:
        return int(self._db.execute(_ORPHANS, (ORPHAN_ERROR, now_sec)).rowcount)

    def _drop_overflow(self, now_sec: float) -> int:
        (pending,) = self._db.execute(_PENDING).fetchone()
        excess = int(pending) - self.max_pending
        if excess <= 0:
            return 0
        self._db.execute(
            "UPDATE outbox SET state='failed', last_error='dropped: outbox full', finished_sec=?"
            " WHERE id IN (SELECT id FROM outbox WHERE state='pending' ORDER BY id LIMIT ?)",
            (now_sec, excess),
        )
        return excess

    def due(self, now_sec: float, limit: int = 100) -> list[OutboxRow]:
        """Pending rows whose next attempt time has come, oldest first."""
        with self._lock:
            rows = self._db.execute(_DUE, (now_sec, limit)).fetchall()
        return [OutboxRow(r[0], r[1], r[2], r[3], bytes(r[4]), r[5], float(r[6])) for r in rows]

    def next_due_sec(self) -> float | None:
        """When the earliest deliverable pending row becomes due; None when nothing is pending."""
        with self._lock:
            (value,) = self._db.execute(_NEXT_DUE).fetchone()
        return None if value is None else float(value)

    def mark_delivered(self, row_id: int, attempts: int, now_sec: float) -> None:
        self._finish(row_id, "delivered", attempts, now_sec, "")

    def mark_failed(self, row_id: int, attempts: int, now_sec: float, error: str) -> int:
        """Fail the row, and the pending resolved rows of its key if it is a firing row; returns
        how many of those failed with it."""
        return self._finish(row_id, "failed", attempts, now_sec, error)

    def _finish(self, row_id: int, state: State, attempts: int, now_sec: float, error: str) -> int:
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "UPDATE outbox SET state=?, attempts=?, finished_sec=?, last_error=? WHERE id=?",
                (state, attempts, now_sec, error[:500], row_id),
            )
            return self._fail_orphans(now_sec) if state == "failed" else 0

    def mark_retry(self, row_id: int, attempts: int, next_attempt_sec: float, error: str) -> None:
        with self._lock, self._db:
            self._db.execute(
                "UPDATE outbox SET attempts=?, next_attempt_sec=?, last_error=? WHERE id=?",
                (attempts, next_attempt_sec, error[:500], row_id),
            )

    def finished(self, idempotency_key: str, status: str) -> bool:
        """True once every row of this transition is delivered or failed (none pending)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT state FROM outbox WHERE idempotency_key = ? AND status = ?",
                (idempotency_key, status),
            ).fetchall()
        return bool(rows) and all(r[0] != "pending" for r in rows)

    def pending_count(self) -> int:
        with self._lock:
            (count,) = self._db.execute(_PENDING).fetchone()
        return int(count)

    def counts(self) -> dict[str, int]:
        """Rows per state, for status output and tests."""
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall()
        return {str(state): int(count) for state, count in rows}

    def purge(self, finished_before_sec: float) -> int:
        """Delete delivered and failed rows finished before the given time; return how many."""
        with self._lock, self._db:
            cursor = self._db.execute(
                "DELETE FROM outbox WHERE state != 'pending' AND finished_sec < ?",
                (finished_before_sec,),
            )
        return cursor.rowcount

    def close(self) -> None:
        with self._lock:
            self._db.close()
