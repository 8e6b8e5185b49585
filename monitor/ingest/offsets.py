"""Which offsets may be committed when records finish out of order.

Pure bookkeeping: the worker ``track``s every polled offset, marks it ``done`` once its output is
acknowledged by the broker, and commits :meth:`OffsetTracker.committable`: per partition, one past
the highest offset below which every tracked offset is done. An offset still in the batcher, in
the model or waiting for a produce ack holds back everything after it, so a commit never covers
work that is not durable.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

P = TypeVar("P", bound=Hashable)


class OffsetTracker(Generic[P]):
    """Per-partition in-flight offsets. Not thread-safe: the Kafka thread owns it."""

    def __init__(self) -> None:
        self._inflight: dict[P, deque[int]] = {}
        self._done: dict[P, set[int]] = {}
        self._next: dict[P, int] = {}
        self._committed: dict[P, int] = {}

    def track(self, partition: P, offset: int) -> None:
        """Register a polled offset; offsets of one partition arrive in increasing order."""
        queue = self._inflight.setdefault(partition, deque())
        if queue and offset <= queue[-1]:
            raise ValueError(f"offset {offset} of {partition} tracked out of order")
        queue.append(offset)
        self._done.setdefault(partition, set())

    def done(self, partition: P, offset: int) -> None:
        """Mark an offset's output durable. Offsets of forgotten partitions are ignored."""
        if partition not in self._inflight:
            return
        self._done[partition].add(offset)
        queue = self._inflight[partition]
        while queue and queue[0] in self._done[partition]:
            finished = queue.popleft()
            self._done[partition].discard(finished)
            self._next[partition] = finished + 1

    def committable(self) -> dict[P, int]:
        """Offsets to commit that advance past the last commit (empty when nothing new)."""
        return {p: off for p, off in self._next.items() if off > self._committed.get(p, -1)}

    def committed(self, offsets: dict[P, int]) -> None:
        """Record a successful commit."""
        self._committed.update(offsets)

    def forget(self, partitions: Iterable[P]) -> None:
        """Drop revoked partitions: their in-flight records are redelivered to the new owner."""
        for p in partitions:
            for table in (self._inflight, self._done, self._next, self._committed):
                table.pop(p, None)

    @property
    def inflight(self) -> int:
        return sum(len(q) for q in self._inflight.values())
