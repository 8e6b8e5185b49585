"""The two stages of the partitioned aggregator, per partition, without Kafka (pure, clock-
injected).

Stage one (:class:`FirstStage`, one per ``news.scored`` partition) counts items into partial window
aggregates of every key they touch (their topic, tickers and ``overall``), with the same id dedup,
label bounds, story index and per-partition event time as the single aggregator, but no detectors.
At each cut it hands its partials over as :class:`Bundle` records for ``kafka.partials_topic``:
one per destination partition, chosen by :func:`route` (the ticker; ``overall`` for the overall key
and the topics, since the market-wide rule needs the topics beside the overall key), each carrying
the partition's event-time front, so every destination sees the event time of the whole stream.

Stage two (:class:`SecondStage`, one per partials partition) merges the partials of every source
partition into the same window tracks and rules the single aggregator uses; its event time is the
quorum-th highest of the union of the fronts, which is the single aggregator's (held back to the
slowest source partition while it lags, so its items are not late). So N aggregators
raise the alerts one would (docs/scaling.md says where they can differ: late items, story index).

Exactly once between the stages: a cut is checkpointed (with the bundles not yet acknowledged)
before the bundles are produced; stage two skips a bundle whose ``(seq, part)`` it has applied.
"""

from __future__ import annotations

import json
import zlib
from collections import deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any

from alerts.events import AlertEvent
from monitor.aggregate.changelog import PartitionState
from monitor.aggregate.engine import AddOutcome, Aggregator
from monitor.aggregate.partition_store import PartitionStore, dumps
from monitor.aggregate.windows import OVERALL_KEY, KeyId, WindowAccumulator
from monitor.contract import ScoredItem
from monitor.metrics import Metrics
from monitor.settings import AggregateSettings

BUNDLE_VERSION = 1
TASK_KEY = "task"
# Partials per bundle record: keeps a record far below the broker's message size limit.
MAX_PARTIALS_PER_BUNDLE = 200


def route(key: KeyId, partitions: int) -> int:
    """The partials partition of a key: tickers by name, topics and overall together."""
    name = key[1] if key[0] == "ticker" else OVERALL_KEY
    return zlib.crc32(name.encode()) % partitions


@dataclass(frozen=True)
class Bundle:
    """Partials of one source partition for one destination partition, at one cut."""

    src: int
    seq: int
    part: int
    front_ms: tuple[int, ...]
    partials: tuple[tuple[KeyId, int, WindowAccumulator], ...]

    def encode(self) -> bytes:
        rows = [[k[0], k[1], start, acc.to_state()] for k, start, acc in self.partials]
        body = {"v": BUNDLE_VERSION, "src": self.src, "seq": self.seq, "part": self.part}
        return dumps({**body, "front": list(self.front_ms), "p": rows})

    @classmethod
    def decode(cls, raw: bytes, top_n: int) -> Bundle:
        """Raises ValueError (or KeyError, TypeError) on a record this module did not write."""
        body = json.loads(raw)
        if body.get("v") != BUNDLE_VERSION:
            raise ValueError(f"unknown bundle version {body.get('v')!r}")
        partials = tuple(
            ((str(kind), str(key)), int(start), WindowAccumulator.from_state(acc, top_n))
            for kind, key, start, acc in body["p"]
        )
        front = tuple(int(t) for t in body["front"])
        return cls(int(body["src"]), int(body["seq"]), int(body["part"]), front, partials)


def _aggregator(
    settings: AggregateSettings,
    state: PartitionState,
    metrics: Metrics | None,
    topics: Collection[str],
    top_headlines: int,
) -> Aggregator:
    store = PartitionStore(state)
    return Aggregator(
        settings, metrics=metrics, store=store, top_headlines=top_headlines, topics=topics
    )


class FirstStage:
    """Stage one of one ``news.scored`` partition. Not thread-safe."""

    def __init__(
        self,
        state: PartitionState,
        settings: AggregateSettings,
        *,
        metrics: Metrics | None = None,
        topics: Collection[str] = (),
        top_headlines: int = 5,
    ) -> None:
        self.partition = state.tp.partition
        self.state = state
        self.aggregator = _aggregator(settings, state, metrics, topics, top_headlines)
        task = json.loads(state.get(TASK_KEY) or b"{}")
        self.seq: int = int(task.get("seq", 0))
        # The next news.scored offset to read: everything before it is in a cut.
        self.through: int | None = task.get("through")
        # Bundles checkpointed but maybe not produced yet (re-sent after a restore).
        self.unsent: list[tuple[int, bytes]] = [
            (int(dest), str(body).encode()) for dest, body in task.get("unsent", [])
        ]
        self._counted = 0

    def add(self, item: ScoredItem, now_ms: int) -> AddOutcome:
        outcome = self.aggregator.add(item, now_ms)
        self._counted += outcome != "duplicate"
        return outcome

    def cut(self, next_offset: int, partitions: int) -> None:
        """Turn the open partials into bundles for every destination partition and checkpoint
        them with the state (``next_offset``: the scored offset after the last record added).
        Nothing happens when no item arrived since the last cut."""
        if not self._counted and next_offset == self.through:
            return
        self._counted = 0
        self.seq += 1
        front = tuple(self.aggregator.front_ms)
        by_dest: dict[int, list[tuple[KeyId, int, WindowAccumulator]]] = {
            p: [] for p in range(partitions)
        }
        for key, start, acc in self.aggregator.drain_partials():
            by_dest[route(key, partitions)].append((key, start, acc))
        for dest, partials in by_dest.items():
            self.unsent += [(dest, b.encode()) for b in self._bundles(front, partials)]
        self.through = next_offset
        self.aggregator.checkpoint()
        self._save()

    def _bundles(
        self, front: tuple[int, ...], partials: list[tuple[KeyId, int, WindowAccumulator]]
    ) -> Iterable[Bundle]:
        chunks = [
            partials[i : i + MAX_PARTIALS_PER_BUNDLE]
            for i in range(0, len(partials), MAX_PARTIALS_PER_BUNDLE)
        ] or [[]]
        for part, chunk in enumerate(chunks):
            yield Bundle(self.partition, self.seq, part, front, tuple(chunk))

    def outgoing(self) -> list[tuple[int, bytes]]:
        """The (destination partition, record) pairs to produce, oldest first."""
        return list(self.unsent)

    def sent(self) -> None:
        """The broker acknowledged every outgoing bundle."""
        self.unsent.clear()
        self._save()

    def _save(self) -> None:
        unsent = [[dest, body.decode()] for dest, body in self.unsent]
        task = {"seq": self.seq, "through": self.through, "unsent": unsent}
        self.state.put(TASK_KEY, dumps(task))


class SecondStage:
    """Stage two of one partials partition: the window tracks and rules of its keys."""

    def __init__(
        self,
        state: PartitionState,
        settings: AggregateSettings,
        *,
        metrics: Metrics | None = None,
        topics: Collection[str] = (),
        top_headlines: int = 5,
    ) -> None:
        self.partition = state.tp.partition
        self.state = state
        self.settings = settings
        self.top_headlines = top_headlines
        self.aggregator = _aggregator(settings, state, metrics, topics, top_headlines)
        task = json.loads(state.get(TASK_KEY) or b"{}")
        self.applied: dict[int, tuple[int, int]] = {
            int(src): (int(v[0]), int(v[1])) for src, v in task.get("applied", {}).items()
        }
        self.fronts: dict[int, tuple[int, ...]] = {
            int(src): tuple(int(t) for t in f) for src, f in task.get("fronts", {}).items()
        }
        self._heard_ms: dict[int, int] = {}  # wall clock of each source's last bundle
        self.unsettled: deque[AlertEvent] = deque(
            (AlertEvent.from_dict(e) for e in task.get("unsettled", [])),
            maxlen=settings.max_unsettled_alerts,
        )

    def apply(self, bundle: Bundle, now_ms: int) -> bool:
        """Merge a bundle; False (and nothing changes) for one already applied."""
        if (bundle.seq, bundle.part) <= self.applied.get(bundle.src, (-1, -1)):
            return False
        self.applied[bundle.src] = (bundle.seq, bundle.part)
        for key, start, acc in bundle.partials:
            self.aggregator.merge_partial(key, start, acc, now_ms)
        self.fronts[bundle.src] = bundle.front_ms
        self._heard_ms[bundle.src] = now_ms
        self._merge_fronts(now_ms)
        return True

    def _merge_fronts(self, now_ms: int) -> None:
        """Event time of the whole stream, held back to the progress of the slowest source
        partition heard from within ``idle_close_ms`` (one paused while it restores, or reading a
        backlog), so its items are not late; a source quiet for longer holds nothing back."""
        recent = [
            max(front)
            for src, front in self.fronts.items()
            if front and now_ms - self._heard_ms.get(src, now_ms) <= self.settings.idle_close_ms
        ]
        self.aggregator.merge_fronts(self.fronts.values(), min(recent) if recent else None)

    def advance(self, now_ms: int) -> list[AlertEvent]:
        """Close due windows and run the rules; the transitions, kept until settled."""
        if self.fronts:
            self._merge_fronts(now_ms)
        events = self.aggregator.advance(now_ms)
        self.unsettled.extend(events)
        return events

    def settle(self, settled: Callable[[AlertEvent], bool]) -> None:
        """Forget the transitions the alert sinks have finished with."""
        kept = [e for e in self.unsettled if not settled(e)]
        if len(kept) != len(self.unsettled):
            self.unsettled = deque(kept, maxlen=self.settings.max_unsettled_alerts)

    def checkpoint(self) -> None:
        self.aggregator.checkpoint()
        task: dict[str, Any] = {
            "applied": {str(s): list(v) for s, v in self.applied.items()},
            "fronts": {str(s): list(f) for s, f in self.fronts.items()},
            "unsettled": [e.to_dict() for e in self.unsettled],
        }
        self.state.put(TASK_KEY, dumps(task))
