"""The aggregator: scored items in, event-time windows per key, alert transitions out.

Time: ``now_ms`` is the caller's wall clock (injected, so tests and backtests drive it). The
watermark is the highest event time seen minus ``allowed_lateness_ms``; once no item has arrived
for ``idle_close_ms`` of wall-clock time it advances with the wall clock, so quiet streams still
close their windows. An item whose window has already closed is late: it is counted in
``finmon_aggregate_late_items_total`` and handed to ``on_late``, never silently dropped.

Commit contract: :meth:`Aggregator.checkpoint` makes every item counted so far durable (open
windows, baselines, rule states and the ids of counted items). A consumer commits its offsets only
after it returns; after a crash, redelivered items already in the checkpoint are skipped by id.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from prometheus_client.registry import Collector

from alerts.detectors import (
    NEGATIVE_SHARE_SPIKE,
    VOLUME_SURGE,
    NegativeShareSpike,
    SpikeParams,
    SurgeParams,
    VolumeSurge,
)
from alerts.events import AlertEvent, Headline
from alerts.rules import AlertPolicy, RuleState, Watch
from monitor.aggregate.store import SqliteStateStore, StateStore
from monitor.aggregate.track import KeyTrack
from monitor.aggregate.windows import OVERALL_KEY, KeyId, WindowStats, window_end, window_start
from monitor.contract import ScoredItem
from monitor.metrics import Metrics
from monitor.settings import AggregateSettings, Settings

logger = logging.getLogger(__name__)

SNAPSHOT_VERSION = 1
LateCallback = Callable[[ScoredItem, int], None]
# Volume surges are watched per topic and per ticker; the overall stream gets the share spike only.
SURGE_KINDS = ("topic", "ticker")


class Aggregator:
    """Windows and detectors of one consumer. Not thread-safe: one thread calls every method."""

    def __init__(
        self,
        settings: AggregateSettings,
        *,
        metrics: Metrics | None = None,
        store: StateStore | None = None,
        top_headlines: int = 5,
        on_late: LateCallback | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.store = store
        self.top_headlines = top_headlines
        self.on_late = on_late
        self.tracks: dict[KeyId, KeyTrack] = {}
        self._tickers = 0
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._new_ids: list[str] = []
        self.max_event_ms: int | None = None
        self.watermark_ms: int | None = None
        self.last_item_wall_ms: int | None = None
        # (rule, key_kind, key, severity) -> 1 while firing; kept at 0 after it resolves.
        self.active: dict[tuple[str, str, str, str], int] = {}
        if store is not None:
            self._restore(store)

    # -- counting ---------------------------------------------------------------------------

    def add(self, item: ScoredItem, now_ms: int) -> bool:
        """Count one scored item. Never blocks.

        Returns False (and counts ``duplicates_skipped``) when ``item.id`` was already counted,
        True otherwise, including for a late item (reported to the metric and ``on_late``).
        Event times more than ``max_future_ms`` ahead of ``now_ms`` are clamped to ``now_ms``.
        """
        if item.id in self._seen:
            if self.metrics is not None:
                self.metrics.duplicates_skipped.inc()
            return False
        self._remember(item.id)
        self.last_item_wall_ms = now_ms
        event_ms = min(
            int(item.published_at.timestamp() * 1000), now_ms + self.settings.max_future_ms
        )
        if self._is_late(event_ms):
            self._report_late(item, event_ms)
            return True
        self._count(item, event_ms)
        if self.max_event_ms is None or event_ms > self.max_event_ms:
            self.max_event_ms = event_ms
            self._raise_watermark(event_ms - self.settings.allowed_lateness_ms)
        return True

    def _remember(self, item_id: str) -> None:
        self._seen[item_id] = None
        if self.store is not None:
            self._new_ids.append(item_id)
        while len(self._seen) > self.settings.max_tracked_ids:
            self._seen.popitem(last=False)

    def _is_late(self, event_ms: int) -> bool:
        wm = self.watermark_ms
        return wm is not None and window_end(event_ms, self.settings.window_ms) <= wm

    def _report_late(self, item: ScoredItem, event_ms: int) -> None:
        logger.debug("late item %s at %d (watermark %s)", item.id, event_ms, self.watermark_ms)
        if self.metrics is not None:
            self.metrics.late_items.labels(item.topic).inc()
        if self.on_late is not None:
            self.on_late(item, event_ms)

    def _count(self, item: ScoredItem, event_ms: int) -> None:
        head = Headline(item.id, item.headline, round(item.negative_prob, 6), event_ms)
        for key in self._keys(item, event_ms):
            self.tracks[key].add(
                event_ms, item.sentiment, item.sentiment_score, item.negative_prob, head
            )
        if self.metrics is not None:
            self.metrics.items_aggregated.labels(item.topic, item.sentiment).inc()

    def _keys(self, item: ScoredItem, event_ms: int) -> Iterable[KeyId]:
        keys: list[KeyId] = [("topic", item.topic), ("overall", OVERALL_KEY)]
        keys += [("ticker", t) for t in item.tickers]
        for key in keys:
            if key not in self.tracks and not self._open_track(key, event_ms):
                continue
            yield key

    def _open_track(self, key: KeyId, event_ms: int) -> bool:
        if key[0] == "ticker":
            if self._tickers >= self.settings.max_ticker_series:
                return False
            self._tickers += 1
        self.tracks[key] = self._new_track(key, event_ms)
        return True

    def _new_track(self, key: KeyId, event_ms: int) -> KeyTrack:
        return new_track(self.settings, key, event_ms, self.top_headlines)

    # -- closing ----------------------------------------------------------------------------

    def _raise_watermark(self, candidate_ms: int) -> None:
        if self.watermark_ms is None or candidate_ms > self.watermark_ms:
            self.watermark_ms = candidate_ms

    def advance(self, now_ms: int) -> list[AlertEvent]:
        """Close due windows (by watermark, or by wall-clock idleness) and run the detectors.

        Returns the firing and resolved transitions, oldest window first. Never blocks.
        """
        if self.max_event_ms is None:
            return []
        if self.last_item_wall_ms is None:
            # Just restored: start the idle clock now, so the backlog that piled up while the
            # process was down is counted before quiet windows are closed by idleness.
            self.last_item_wall_ms = now_ms
        event_wm = self.max_event_ms - self.settings.allowed_lateness_ms
        idle_ms = now_ms - self.last_item_wall_ms - self.settings.idle_close_ms
        if idle_ms > 0:
            self._raise_watermark(event_wm + idle_ms)
        assert self.watermark_ms is not None
        events: list[AlertEvent] = []
        for key, track in list(self.tracks.items()):
            closed, fired = track.close_until(
                self.watermark_ms, self.settings.max_fill_windows, now_ms
            )
            self._count_closed(key, closed, event_wm)
            events.extend(fired)
            if key[0] == "ticker" and self._evictable(track):
                del self.tracks[key]
                self._tickers -= 1
                self._forget_active(key)
        events.sort(key=lambda e: (e.window_end_ms, e.rule, e.key_kind, e.key))
        for event in events:
            self._record(event)
        return events

    def _count_closed(self, key: KeyId, closed: list[WindowStats], event_wm: int) -> None:
        if self.metrics is None:
            return
        for stats in closed:
            reason = "watermark" if stats.end_ms <= event_wm else "idle"
            self.metrics.windows_closed.labels(key[0], reason).inc()

    def _evictable(self, track: KeyTrack) -> bool:
        quiet = track.empty_run >= self.settings.max_fill_windows and not track.open
        return quiet and not track.active

    def _forget_active(self, key: KeyId) -> None:
        for label in [k for k in self.active if (k[1], k[2]) == key]:
            del self.active[label]

    def _record(self, event: AlertEvent) -> None:
        for label in self.active:
            if label[:3] == (event.rule, event.key_kind, event.key):
                self.active[label] = 0
        label = (event.rule, event.key_kind, event.key, event.severity)
        self.active[label] = 1 if event.status == "firing" else 0
        logger.info("%s", event.summary)
        if self.metrics is not None:
            self.metrics.alerts_raised.labels(
                event.rule, event.key_kind, event.severity, event.status
            ).inc()

    # -- state ------------------------------------------------------------------------------

    def checkpoint(self) -> None:
        """Durably persist open windows, baselines, rule states and counted ids. Blocks on disk."""
        if self.store is None:
            self._new_ids.clear()
            return
        self.store.save(self.snapshot(), self._new_ids, self.settings.max_tracked_ids)
        self._new_ids.clear()

    def snapshot(self) -> dict[str, Any]:
        """The JSON-ready state (without the id set)."""
        return {
            "version": SNAPSHOT_VERSION,
            "window_ms": self.settings.window_ms,
            "max_event_ms": self.max_event_ms,
            "watermark_ms": self.watermark_ms,
            "tracks": [[k[0], k[1], t.to_state()] for k, t in self.tracks.items()],
            "active": [[*label, v] for label, v in self.active.items()],
        }

    def _restore(self, store: StateStore) -> None:
        snapshot, ids = store.load()
        self._seen = OrderedDict.fromkeys(ids[-self.settings.max_tracked_ids :])
        if snapshot is None:
            return
        if snapshot.get("window_ms") != self.settings.window_ms:
            logger.warning("window_ms changed since the last checkpoint: state discarded")
            return
        self.max_event_ms = snapshot["max_event_ms"]
        self.watermark_ms = snapshot["watermark_ms"]
        for kind, key, state in snapshot["tracks"]:
            track = self._new_track((kind, key), 0)
            track.load_state(state)
            self.tracks[(kind, key)] = track
            self._tickers += kind == "ticker"
        self.active = {(r, k, key, s): int(v) for r, k, key, s, v in snapshot["active"]}
        logger.info("restored %d key tracks and %d ids", len(self.tracks), len(self._seen))

    def collector(self) -> Collector:
        """A Prometheus collector exposing window and detector state at scrape time."""
        from monitor.aggregate.collector import AggregateCollector

        return AggregateCollector(self)


def new_track(
    settings: AggregateSettings, key: KeyId, event_ms: int, top_headlines: int = 5
) -> KeyTrack:
    """A fresh track for ``key`` whose first window holds ``event_ms``, with its rules."""
    policy = AlertPolicy.from_settings(settings)
    watches = {
        NEGATIVE_SHARE_SPIKE: Watch(
            NegativeShareSpike(SpikeParams.from_settings(settings)), policy, RuleState()
        ),
    }
    if key[0] in SURGE_KINDS:
        surge = VolumeSurge(SurgeParams.from_settings(settings))
        watches[VOLUME_SURGE] = Watch(surge, policy, RuleState())
    return KeyTrack(
        key=key,
        window_ms=settings.window_ms,
        evaluation_windows=settings.evaluation_windows,
        top_n=top_headlines,
        watches=watches,
        next_start_ms=window_start(event_ms, settings.window_ms),
    )


def from_settings(settings: Settings, metrics: Metrics | None = None) -> Aggregator:
    """An aggregator with its SQLite store at ``state.dir/aggregate.state_file``."""
    store = SqliteStateStore(Path(settings.state.dir) / settings.aggregate.state_file)
    return Aggregator(
        settings.aggregate,
        metrics=metrics,
        store=store,
        top_headlines=settings.alerts.top_headlines,
    )
