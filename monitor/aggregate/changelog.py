"""Per-partition state backed by a changelog topic, with local SQLite as a cache.

Each partition the aggregator owns has a :class:`PartitionState`: a key-value map created when the
partition is assigned and dropped when it is revoked. ``put`` marks a key dirty; at a checkpoint the
worker produces the dirty keys to the same partition of the changelog topic (a tombstone for a
deleted key; the topic is compacted where the broker supports it) and, once the broker acknowledged
them, writes them to the :class:`StateCache` with the changelog offset they reached.

Restore (:class:`Restorer`): the cache gives the state up to some offset; the changelog is read from
there to a marker record the restorer produced itself when the partition was assigned. Everything
the previous owner wrote before it lost the partition precedes the marker in the log, whatever the
broker reports as the partition's end offset (the embedded tansu broker under-reports it). A cache
ahead of the log (a broker that lost its data) is discarded and the log read from its start.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

logger = logging.getLogger(__name__)

MARKER_KEY = "__restore_marker__"
RESTORE_POLL_RECORDS = 5_000


@dataclass
class PartitionState:
    """The key-value state of one partition. Not thread-safe: the worker thread owns it."""

    tp: TopicPartition
    values: dict[str, bytes] = field(default_factory=dict)
    _dirty: dict[str, bytes | None] = field(default_factory=dict, init=False)

    def get(self, key: str) -> bytes | None:
        return self.values.get(key)

    def put(self, key: str, value: bytes | None) -> None:
        """Set (or, with None, delete) ``key``; a value equal to the stored one is not dirty."""
        if value is None:
            if key in self.values:
                del self.values[key]
                self._dirty[key] = None
        elif self.values.get(key) != value:
            self.values[key] = value
            self._dirty[key] = value

    def keys(self, prefix: str) -> list[str]:
        return [k for k in self.values if k.startswith(prefix)]

    def take_dirty(self) -> dict[str, bytes | None]:
        """The keys changed since the last call (to produce to the changelog)."""
        dirty, self._dirty = self._dirty, {}
        return dirty

    def keep_dirty(self, records: Mapping[str, bytes | None]) -> None:
        """Mark records taken by :meth:`take_dirty` dirty again (they were not acknowledged),
        unless the key changed since."""
        for key, value in records.items():
            self._dirty.setdefault(key, value)

    def apply(self, key: str, value: bytes | None) -> None:
        """Apply one changelog record while restoring (not dirty: it is already in the log)."""
        if key == MARKER_KEY:
            return
        if value is None:
            self.values.pop(key, None)
        else:
            self.values[key] = value


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS kv (topic TEXT NOT NULL, part INTEGER NOT NULL, key TEXT NOT NULL,"
    " value BLOB NOT NULL, PRIMARY KEY (topic, part, key))",
    "CREATE TABLE IF NOT EXISTS log_offsets (topic TEXT NOT NULL, part INTEGER NOT NULL,"
    " next_offset INTEGER NOT NULL, PRIMARY KEY (topic, part))",
)


class StateCache:
    """The local SQLite copy of changelog partitions (WAL, ``synchronous=NORMAL``: a lost tail
    is read back from the changelog). Thread-safe."""

    def __init__(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        for statement in _SCHEMA:
            self._db.execute(statement)
        self._lock = threading.Lock()

    def load(self, tp: TopicPartition) -> tuple[dict[str, bytes], int]:
        """The cached values of ``tp`` and the changelog offset they cover up to (0: none)."""
        with self._lock:
            row = self._db.execute(
                "SELECT next_offset FROM log_offsets WHERE topic = ? AND part = ?",
                (tp.topic, tp.partition),
            ).fetchone()
            rows = self._db.execute(
                "SELECT key, value FROM kv WHERE topic = ? AND part = ?", (tp.topic, tp.partition)
            ).fetchall()
        return {str(k): bytes(v) for k, v in rows}, int(row[0]) if row else 0

    def write(
        self, tp: TopicPartition, records: Mapping[str, bytes | None], next_offset: int
    ) -> None:
        """Apply acknowledged changelog records; ``next_offset`` is the log offset after them."""
        where = (tp.topic, tp.partition)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for key, value in records.items():
                    if value is None:
                        self._db.execute(
                            "DELETE FROM kv WHERE topic = ? AND part = ? AND key = ?", (*where, key)
                        )
                    else:
                        self._db.execute(
                            "INSERT OR REPLACE INTO kv VALUES (?, ?, ?, ?)", (*where, key, value)
                        )
                self._db.execute(
                    "INSERT OR REPLACE INTO log_offsets VALUES (?, ?, ?)", (*where, next_offset)
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def replace(self, tp: TopicPartition, values: Mapping[str, bytes], next_offset: int) -> None:
        """Replace the whole cached copy of ``tp`` (after a restore from the log)."""
        with self._lock:
            self._db.execute(
                "DELETE FROM kv WHERE topic = ? AND part = ?", (tp.topic, tp.partition)
            )
        self.write(tp, values, next_offset)

    def close(self) -> None:
        with self._lock:
            self._db.close()


@dataclass
class _Restoring:
    state: PartitionState
    next_offset: int
    marker: bytes
    started_sec: float
    records: int = 0


@dataclass(frozen=True)
class Restored:
    """A partition whose state caught up with its changelog."""

    state: PartitionState
    records: int
    seconds: float
    next_offset: int


class Restorer:
    """Brings the states of newly assigned partitions up to date with their changelog.

    :meth:`begin` loads the cache and produces the marker; :meth:`step` reads what is there (it
    blocks at most ``timeout_ms``) and returns the partitions that reached their marker. The
    consumer is not in any group: it reads the changelog partitions by assignment.
    """

    def __init__(
        self,
        consumer: KafkaConsumer,
        producer: KafkaProducer,
        cache: StateCache,
        *,
        produce_timeout_sec: float = 30.0,
    ) -> None:
        self._consumer = consumer
        self._producer = producer
        self._cache = cache
        self._timeout_sec = produce_timeout_sec
        self._restoring: dict[TopicPartition, _Restoring] = {}

    @property
    def restoring(self) -> list[TopicPartition]:
        return list(self._restoring)

    def begin(self, tp: TopicPartition) -> None:
        """Start restoring ``tp`` (a changelog partition). Blocks until the marker is acked."""
        values, cached = self._cache.load(tp)
        marker = uuid.uuid4().hex.encode()
        sent = self._producer.send(
            tp.topic, key=MARKER_KEY.encode(), value=marker, partition=tp.partition
        )
        marker_offset = int(sent.get(timeout=self._timeout_sec).offset)
        if cached > marker_offset:
            logger.warning("cache of %s is ahead of its changelog: restoring from the log", tp)
            values, cached = {}, 0
        state = PartitionState(tp, values)
        self._restoring[tp] = _Restoring(state, cached, marker, time.monotonic())
        self._reassign()

    def cancel(self, tps: Iterable[TopicPartition]) -> None:
        """Stop restoring partitions revoked before they caught up."""
        if any(self._restoring.pop(tp, None) is not None for tp in list(tps)):
            self._reassign()

    def _reassign(self) -> None:
        tps = list(self._restoring)
        if not tps:
            self._consumer.unsubscribe()
            return
        self._consumer.assign(tps)
        for tp, job in self._restoring.items():
            self._consumer.seek(tp, job.next_offset)

    def step(self, timeout_ms: int) -> list[Restored]:
        """Read the changelog for up to ``timeout_ms``; the partitions that caught up."""
        if not self._restoring:
            return []
        polled = self._consumer.poll(timeout_ms=timeout_ms, max_records=RESTORE_POLL_RECORDS)
        done: list[TopicPartition] = []
        for tp, records in polled.items():
            job = self._restoring.get(tp)
            if job is None:
                continue
            for record in records:
                job.next_offset = record.offset + 1
                key = record.key.decode() if record.key else ""
                if key == MARKER_KEY and record.value == job.marker:
                    done.append(tp)
                    break
                job.state.apply(key, record.value)
                job.records += 1
        return [self._finish(tp) for tp in done]

    def _finish(self, tp: TopicPartition) -> Restored:
        job = self._restoring.pop(tp)
        self._cache.replace(tp, job.state.values, job.next_offset)
        seconds = time.monotonic() - job.started_sec
        self._reassign()
        logger.info(
            "restored %s: %d keys from %d changelog records in %.2f s",
            tp,
            len(job.state.values),
            job.records,
            seconds,
        )
        return Restored(job.state, job.records, seconds, job.next_offset)
