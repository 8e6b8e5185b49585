"""Durable aggregator state: one JSON snapshot plus a bounded log of counted item ids.

``save`` is atomic: a crash leaves either the previous checkpoint or the new one, never a mix.
The memory store has the same contract for tests and backtests that should not touch disk.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

logger = logging.getLogger(__name__)

SNAPSHOT_NAME = "aggregate"


class StateStore(Protocol):
    """Where the aggregator checkpoints. Calls block until the data is durable."""

    def load(self) -> tuple[dict[str, Any] | None, list[str]]:
        """The last snapshot (None when there is none) and the remembered ids, oldest first."""
        ...

    def save(self, snapshot: dict[str, Any], new_ids: Sequence[str], keep_ids: int) -> None:
        """Replace the snapshot and append ``new_ids``, keeping only the newest ``keep_ids``."""
        ...

    def close(self) -> None: ...


class MemoryStateStore:
    """In-process store with the :class:`StateStore` contract (lost when the process exits)."""

    def __init__(self) -> None:
        self._snapshot: str | None = None
        self._ids: deque[str] = deque()

    def load(self) -> tuple[dict[str, Any] | None, list[str]]:
        snapshot = json.loads(self._snapshot) if self._snapshot is not None else None
        return snapshot, list(self._ids)

    def save(self, snapshot: dict[str, Any], new_ids: Sequence[str], keep_ids: int) -> None:
        self._snapshot = json.dumps(snapshot)
        self._ids.extend(new_ids)
        while len(self._ids) > keep_ids:
            self._ids.popleft()

    def close(self) -> None:
        return None


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS snapshot (name TEXT PRIMARY KEY, body TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS seen_ids (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL)",
)


class SqliteStateStore:
    """SQLite file store (WAL, ``synchronous=FULL``). One aggregator per file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        for statement in _SCHEMA:
            self._db.execute(statement)
        logger.info("aggregate state store at %s", self.path)

    def load(self) -> tuple[dict[str, Any] | None, list[str]]:
        row = self._db.execute(
            "SELECT body FROM snapshot WHERE name = ?", (SNAPSHOT_NAME,)
        ).fetchone()
        ids = [r[0] for r in self._db.execute("SELECT id FROM seen_ids ORDER BY seq")]
        return (json.loads(row[0]) if row else None), ids

    def save(self, snapshot: dict[str, Any], new_ids: Sequence[str], keep_ids: int) -> None:
        body = json.dumps(snapshot, separators=(",", ":"))
        with self._transaction():
            self._db.execute(
                "INSERT INTO snapshot (name, body) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET body = excluded.body",
                (SNAPSHOT_NAME, body),
            )
            self._db.executemany("INSERT INTO seen_ids (id) VALUES (?)", ((i,) for i in new_ids))
            if new_ids:
                self._db.execute(
                    "DELETE FROM seen_ids WHERE seq <= (SELECT MAX(seq) FROM seen_ids) - ?",
                    (keep_ids,),
                )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def close(self) -> None:
        self._db.close()


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
