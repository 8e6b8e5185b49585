"""The aggregator: scored items in, event-time windows per key, alert transitions out.

Time: ``now_ms`` is the caller's wall clock (injected, so tests and backtests drive it). Event
time is a robust statistic, not the newest item: the ``watermark_quorum_items``-th highest event
time seen, never ahead of the wall clock. So one item, however dated, cannot move it. The watermark
is event time minus ``allowed_lateness_ms``; once no item has arrived for ``idle_close_ms`` of
wall-clock time it advances with the wall clock, so quiet streams still close their windows.

An item whose window has already closed is late: it is counted in
``finmon_aggregate_late_items_total`` and handed to ``on_late``, never silently dropped. An item
dated more than ``max_future_ms`` ahead of the wall clock is ``future``: it is not windowed and does
not move event time; it is counted in ``finmon_aggregate_future_items_total`` and the caller
dead-letters it (:meth:`Aggregator.add` says so). Topics outside the known label set are counted
under ``other`` (:class:`monitor.aggregate.labels.TopicLabels`), so no record can grow the metric
families or the tracks without bound.

Commit contract: :meth:`Aggregator.checkpoint` makes every item counted so far durable (open
windows, baselines, rule states and the ids of counted items). A consumer commits its offsets only
after it returns; after a crash, redelivered items already in the checkpoint are skipped by id.
"""

from __future__ import annotations

import heapq
import logging
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from prometheus_client.registry import Collector

from alerts.detectors import (
    NEGATIVE_SHARE_SPIKE,
    VOLUME_SURGE,
    NegativeShareSpike,
    VolumeSurge,
)
from alerts.events import AlertEvent, Headline
from alerts.market import MarketView, apply_market_wide
from alerts.rules import RuleState, Watch
from alerts.stories import StoryIndex
from monitor.aggregate.labels import TopicLabels, known_topics, tracked_tickers
from monitor.aggregate.params import alert_policy, spike_params, story_params, surge_params
from monitor.aggregate.store import SqliteStateStore, StateStore
from monitor.aggregate.track import KeyTrack
from monitor.aggregate.windows import (
    OVERALL_KEY,
    KeyId,
    WindowAccumulator,
    WindowStats,
    window_end,
    window_start,
)
from monitor.contract import ScoredItem
from monitor.metrics import Metrics
from monitor.settings import AggregateSettings, Settings

logger = logging.getLogger(__name__)

SNAPSHOT_VERSION = 1
LateCallback = Callable[[ScoredItem, int], None]
# What add() did with an item: windowed, late (reported), duplicate (skipped) or future (refused).
AddOutcome = Literal["counted", "late", "duplicate", "future"]
# Volume surges are watched per topic and per ticker; the overall stream gets the share spike only.
SURGE_KINDS = ("topic", "ticker")
MARKET_ONSET_WINDOWS = 10


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
        topics: Collection[str] = (),
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
        # Min-heap of the watermark_quorum_items highest event times seen; its root is event time.
        self._front_ms: list[int] = []
        self.topics = TopicLabels(topics, settings.max_topic_series)
        self.watermark_ms: int | None = None
        self.last_item_wall_ms: int | None = None
        # (rule, key_kind, key, severity) -> 1 while firing; kept at 0 after it resolves.
        self.active: dict[tuple[str, str, str, str], int] = {}
        self.stories = StoryIndex(story_params(settings)) if settings.story_dedup else None
        if store is not None:
            self._restore(store)

    # -- counting ---------------------------------------------------------------------------

    def add(self, item: ScoredItem, now_ms: int) -> AddOutcome:
        """Count one scored item. Never blocks.

        Returns ``duplicate`` (and counts ``duplicates_skipped``) when ``item.id`` was already
        counted; ``future`` when its event time is more than ``max_future_ms`` ahead of
        ``now_ms`` (counted in ``future_items``, neither windowed nor remembered: the caller
        dead-letters it); ``late`` when its window has closed (reported to the metric and
        ``on_late``); ``counted`` otherwise.
        """
        if item.id in self._seen:
            if self.metrics is not None:
                self.metrics.duplicates_skipped.inc()
            return "duplicate"
        item = self._bounded(item, now_ms)
        event_ms = int(item.published_at.timestamp() * 1000)
        if event_ms > now_ms + self.settings.max_future_ms:
            self._report_future(item, event_ms, now_ms)
            return "future"
        self._remember(item.id)
        self.last_item_wall_ms = now_ms
        if self._is_late(event_ms):
            self._report_late(item, event_ms)
            return "late"
        self._count(item, event_ms)
        self._push_event_time(event_ms, now_ms)
        return "counted"

    @property
    def event_time_ms(self) -> int | None:
        """The robust event time: the quorum-th highest event time seen (each capped at the wall
        clock when it was counted); None until ``watermark_quorum_items`` items were counted."""
        full = len(self._front_ms) >= self.settings.watermark_quorum_items
        return self._front_ms[0] if full else None

    def _push_event_time(self, event_ms: int, now_ms: int) -> None:
        # Never ahead of the wall clock: a skewed producer's items wait in their open windows.
        event_ms = min(event_ms, now_ms)
        if len(self._front_ms) < self.settings.watermark_quorum_items:
            heapq.heappush(self._front_ms, event_ms)
        elif event_ms > self._front_ms[0]:
            heapq.heapreplace(self._front_ms, event_ms)
        else:
            return
        if self.event_time_ms is not None:
            self._raise_watermark(self.event_time_ms - self.settings.allowed_lateness_ms)

    def _bounded(self, item: ScoredItem, now_ms: int) -> ScoredItem:
        topic = self.topics.label(item.topic, now_ms)
        tickers = tracked_tickers(item.tickers)
        if topic == item.topic and tickers == item.tickers:
            return item
        return replace(item, topic=topic, tickers=tickers)

    def _report_future(self, item: ScoredItem, event_ms: int, now_ms: int) -> None:
        logger.debug("future item %s at %d (now %d)", item.id, event_ms, now_ms)
        if self.metrics is not None:
            self.metrics.future_items.labels(item.topic).inc()

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
        repeat = False
        if self.stories is not None:
            _, repeat = self.stories.assign(item.id, item.headline, event_ms)
        for key in self._keys(item, event_ms):
            # A ticker's window counts that entity's own sentiment where the model scored one.
            sentiment, score, negative = item.view(key[1] if key[0] == "ticker" else None)
            head = Headline(item.id, item.headline, round(negative, 6), event_ms)
            self.tracks[key].add(event_ms, sentiment, score, negative, head, repeat=repeat)
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

    # -- two stages (monitor.aggregate.partitioned) ------------------------------------------

    def drain_partials(self) -> list[tuple[KeyId, int, WindowAccumulator]]:
        """Stage one: take every open window of every key as a partial aggregate, oldest window
        first per key, and forget the tracks (stage one runs no detectors). Never blocks."""
        partials = [
            (key, start, acc)
            for key, track in self.tracks.items()
            for start, acc in sorted(track.open.items())
        ]
        self.tracks.clear()
        self._tickers = 0
        return partials

    @property
    def front_ms(self) -> list[int]:
        """The highest event times seen (at most ``watermark_quorum_items``), ascending."""
        return sorted(self._front_ms)

    def merge_fronts(self, fronts: Iterable[Iterable[int]], hold_ms: int | None = None) -> None:
        """Stage two: event time from the fronts of every source partition. The quorum-th highest
        of their union is the quorum-th highest of all items: the single-stage event time; with
        ``hold_ms`` it goes no further (a source partition that lags holds it back)."""
        quorum = self.settings.watermark_quorum_items
        front = sorted(heapq.nlargest(quorum, (t for f in fronts for t in f)))
        self._front_ms = front if hold_ms is None else [min(t, hold_ms) for t in front]
        if self.event_time_ms is not None:
            self._raise_watermark(self.event_time_ms - self.settings.allowed_lateness_ms)

    def merge_partial(self, key: KeyId, start_ms: int, acc: WindowAccumulator, now_ms: int) -> bool:
        """Stage two: merge one partial window aggregate; False when its window has already closed
        (a topic partial's items are then counted as late; the ticker and overall partials of the
        same items are not counted twice). Never blocks."""
        if acc.volume:
            self.last_item_wall_ms = now_ms
        if self._is_late(start_ms):
            if self.metrics is not None and key[0] == "topic":
                self.metrics.late_items.labels(key[1]).inc(acc.volume)
            return False
        if key not in self.tracks and not self._open_track(key, start_ms):
            return True
        self.tracks[key].merge(start_ms, acc)
        return True

    # -- closing ----------------------------------------------------------------------------

    def _raise_watermark(self, candidate_ms: int) -> None:
        if self.watermark_ms is None or candidate_ms > self.watermark_ms:
            self.watermark_ms = candidate_ms

    def advance(self, now_ms: int) -> list[AlertEvent]:
        """Close due windows (by watermark, or by wall-clock idleness) and run the detectors.

        Returns the firing and resolved transitions, oldest window first. Never blocks.
        """
        if not self._front_ms:
            return []
        if self.last_item_wall_ms is None:
            # Just restored: start the idle clock now, so the backlog that piled up while the
            # process was down is counted before quiet windows are closed by idleness.
            self.last_item_wall_ms = now_ms
        # Fewer items than the quorum so far: idleness counts from the oldest of them.
        event_ms = self._front_ms[0] if self.event_time_ms is None else self.event_time_ms
        event_wm = event_ms - self.settings.allowed_lateness_ms
        idle_ms = now_ms - self.last_item_wall_ms - self.settings.idle_close_ms
        if idle_ms > 0:
            self._raise_watermark(event_wm + idle_ms)
        if self.watermark_ms is None:
            return []
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
        # Held-back alerts of a market-wide move stay off /metrics too: one alert on both paths.
        events = self._market_wide(events)
        for event in events:
            self._record(event)
        return events

    def _market_wide(self, events: list[AlertEvent]) -> list[AlertEvent]:
        """Fold topic spikes of a market-wide move into the overall alert (alerts.market)."""
        overall = self.tracks.get(("overall", OVERALL_KEY))
        if overall is None or not events:
            return events
        view, states = market_view(self.tracks, overall, self.settings.window_ms)
        overall_state = overall.watches[NEGATIVE_SHARE_SPIKE].state
        # Suppressing topic alerts is safe only where the overall key alerts in their place;
        # otherwise a market-wide move would raise nothing, so its topic alerts are annotated.
        mode = (
            self.settings.market_wide if "overall" in self.settings.alert_key_kinds else "annotate"
        )
        return apply_market_wide(events, view, states, overall_state, mode)

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
            "front_ms": sorted(self._front_ms),
            "watermark_ms": self.watermark_ms,
            "tracks": [[k[0], k[1], t.to_state()] for k, t in self.tracks.items()],
            "active": [[*label, v] for label, v in self.active.items()],
            "stories": self.stories.to_state() if self.stories is not None else [],
        }

    def _restore(self, store: StateStore) -> None:
        snapshot, ids = store.load()
        self._seen = OrderedDict.fromkeys(ids[-self.settings.max_tracked_ids :])
        if snapshot is None:
            return
        if snapshot.get("window_ms") != self.settings.window_ms:
            logger.warning("window_ms changed since the last checkpoint: state discarded")
            return
        front = snapshot.get("front_ms")
        if front is None:  # a checkpoint of the version that kept only the highest event time
            front = [] if snapshot.get("max_event_ms") is None else [snapshot["max_event_ms"]]
        self._front_ms = sorted(int(t) for t in front)[-self.settings.watermark_quorum_items :]
        self.watermark_ms = snapshot["watermark_ms"]
        for kind, key, state in snapshot["tracks"]:
            if kind == "topic" and not self.topics.restore(key):
                continue  # a topic outside the label map (a checkpoint from before the bound)
            track = self._new_track((kind, key), 0)
            track.load_state(state)
            self.tracks[(kind, key)] = track
            self._tickers += kind == "ticker"
        active = {(r, k, key, s): int(v) for r, k, key, s, v in snapshot["active"]}
        self.active = {label: v for label, v in active.items() if label[1:3] in self.tracks}
        if self.stories is not None:
            self.stories.load_state(snapshot.get("stories", []))
        logger.info("restored %d key tracks and %d ids", len(self.tracks), len(self._seen))

    def collector(self) -> Collector:
        """A Prometheus collector exposing window and detector state at scrape time."""
        from monitor.aggregate.collector import AggregateCollector

        return AggregateCollector(self.tracks, self.active)


def new_track(
    settings: AggregateSettings, key: KeyId, event_ms: int, top_headlines: int = 5
) -> KeyTrack:
    """A fresh track for ``key`` whose first window holds ``event_ms``, with its rules."""
    policy = alert_policy(settings)
    spike = NegativeShareSpike(spike_params(settings))
    watches = {NEGATIVE_SHARE_SPIKE: Watch(spike, policy, RuleState())}
    if key[0] in SURGE_KINDS:
        surge = VolumeSurge(surge_params(settings))
        watches[VOLUME_SURGE] = Watch(surge, policy, RuleState())
    return KeyTrack(
        key=key,
        window_ms=settings.window_ms,
        evaluation_windows=settings.evaluation_windows,
        top_n=top_headlines,
        watches=watches,
        next_start_ms=window_start(event_ms, settings.window_ms),
        history_windows=settings.lookback_windows,
    )


def market_view(
    tracks: Mapping[KeyId, KeyTrack], overall: KeyTrack, window_ms: int
) -> tuple[MarketView, dict[str, RuleState]]:
    """The overall key's hot windows, the topics up now, and each topic's spike rule state."""
    states = {
        key: track.watches[NEGATIVE_SHARE_SPIKE]
        for (kind, key), track in tracks.items()
        if kind == "topic" and NEGATIVE_SHARE_SPIKE in track.watches
    }
    # Topics that rose together: breaching now, or alerting since at most MARKET_ONSET_WINDOWS
    # (an older alert on one topic is its own story, not part of a broad move starting now).
    now_ms = overall.last.start_ms if overall.last else 0
    onset_ms = now_ms - MARKET_ONSET_WINDOWS * window_ms
    up = tuple(sorted(k for k, w in states.items() if _rose_since(w, onset_ms)))
    hot = overall.watches[NEGATIVE_SHARE_SPIKE].state.hot_starts
    view = MarketView(hot, up, len(states), window_ms)
    return view, {k: w.state for k, w in states.items()}


def _rose_since(watch: Watch, onset_ms: int) -> bool:
    if watch.state.active:
        return watch.state.fired_start_ms >= onset_ms
    return watch.last is not None and watch.last.breach


def from_settings(settings: Settings, metrics: Metrics | None = None) -> Aggregator:
    """An aggregator with its SQLite store at ``state.dir/aggregate.state_file``, counting the
    topics of :func:`monitor.aggregate.labels.known_topics` under their own names."""
    store = SqliteStateStore(Path(settings.state.dir) / settings.aggregate.state_file)
    return Aggregator(
        settings.aggregate,
        metrics=metrics,
        store=store,
        top_headlines=settings.alerts.top_headlines,
        topics=known_topics(settings),
    )
