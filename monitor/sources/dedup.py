"""The source role's durable state (SQLite): each feed's position and the items already seen.

A feed's *position* is its current URL (after permanent redirects) and its HTTP validators. Seen
items are remembered by identity key with the time they were last listed; rows older than the
retention are pruned on every commit, so the table is bounded by age.

:meth:`FeedStore.commit` writes a poll's position and keys in one transaction. The poller calls it
only after the broker acknowledged every new item of that poll: a crash before it means the poll
is redone from the old position and its items are produced again (same ids; dropped downstream).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from monitor.sources.http import Validators
from monitor.sources.items import SourceItem

SCHEMA = """
CREATE TABLE IF NOT EXISTS feeds (
    name TEXT PRIMARY KEY, config_url TEXT NOT NULL, url TEXT NOT NULL,
    etag TEXT, last_modified TEXT, updated_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, seen_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS seen_by_age ON seen (seen_ms);
"""


@dataclass(frozen=True, slots=True)
class FeedPosition:
    """Where a feed is fetched from and the validators to send."""

    url: str
    validators: Validators = field(default_factory=Validators)


@dataclass(frozen=True, slots=True)
class Split:
    """A poll's items: ``new`` to produce, ``duplicates`` already seen (or repeated in the poll)."""

    new: tuple[SourceItem, ...]
    duplicates: tuple[SourceItem, ...]


class FeedStore:
    """Thread-safe (one connection behind a lock); every method is one short transaction."""

    def __init__(self, path: Path | str, retention_ms: int) -> None:
        self.retention_ms = retention_ms
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def position(self, name: str, config_url: str) -> FeedPosition:
        """The stored position, or the configured URL when none (or the config URL changed)."""
        with self._lock:
            row = self._db.execute(
                "SELECT url, etag, last_modified FROM feeds WHERE name = ? AND config_url = ?",
                (name, config_url),
            ).fetchone()
        if row is None:
            return FeedPosition(config_url)
        return FeedPosition(row[0], Validators(row[1], row[2]))

    def split(self, items: Sequence[SourceItem]) -> Split:
        """Separate new items from ones already seen (by their match keys)."""
        keys = {k for item in items for k in item.keys}
        with self._lock:
            known = self._known(keys)
        new: list[SourceItem] = []
        duplicates: list[SourceItem] = []
        for item in items:
            if known.intersection(item.match_keys):
                duplicates.append(item)
            else:
                new.append(item)
            known.update(item.keys)
        return Split(tuple(new), tuple(duplicates))

    def _known(self, keys: set[str]) -> set[str]:
        found: set[str] = set()
        ordered = sorted(keys)
        for start in range(0, len(ordered), 500):
            chunk = ordered[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(f"SELECT key FROM seen WHERE key IN ({marks})", chunk)
            found.update(r[0] for r in rows)
        return found

    def commit(
        self,
        name: str,
        config_url: str,
        position: FeedPosition,
        keys: Iterable[str],
        now_ms: int,
    ) -> None:
        """Store the feed's position and mark ``keys`` seen at ``now_ms``; prune old keys."""
        rows = [(k, now_ms) for k in keys]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO feeds VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        name,
                        config_url,
                        position.url,
                        position.validators.etag,
                        position.validators.last_modified,
                        now_ms,
                    ),
                )
                self._db.executemany("INSERT OR REPLACE INTO seen VALUES (?, ?)", rows)
                self._db.execute(
                    "DELETE FROM seen WHERE seen_ms < ?", (now_ms - self.retention_ms,)
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def seen_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM seen").fetchone()[0])
