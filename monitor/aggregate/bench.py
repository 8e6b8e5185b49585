"""Detection benchmark on simulated weeks, and the restart replay check.

* :func:`run_windows` feeds each topic's window counts straight into the same per-key tracks and
  rules the aggregator uses (fast: no per-item work), for recall, delay and false alarms.
* :func:`replay_items` streams the scenario item by item (out of order, some late) through a full
  :class:`~monitor.aggregate.engine.Aggregator`, optionally stopping and restoring it from its
  checkpoint mid-stream, so alerts with and without a restart can be compared.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from alerts.detectors import NEGATIVE_SHARE_SPIKE, VOLUME_SURGE
from alerts.events import AlertEvent
from alerts.market import apply_market_wide
from alerts.scenario import (
    DAY_MS,
    DIURNAL_WEEK,
    FLAT_WEEK,
    Delivery,
    Injection,
    Scenario,
    ScenarioSpec,
    WindowCount,
    expand_items,
    expected_volume,
    generate,
)
from alerts.scoring import Score, alerts_per_injection, outside, score_alerts
from monitor.aggregate.engine import Aggregator, market_view, new_track
from monitor.aggregate.store import MemoryStateStore
from monitor.aggregate.windows import OVERALL_KEY, WindowStats
from monitor.contract import ScoredItem
from monitor.settings import AggregateSettings

# Thin topics: 80 items a minute on weekday afternoons, 4 at night, half that at weekends.
_THIN = replace(
    DIURNAL_WEEK,
    topics=4,
    day_volume=80.0,
    weekend_ratio=0.5,
    spike_windows=(10, 60),
    surges_per_day=0.5,
)
PRESETS: dict[str, ScenarioSpec] = {
    "flat": FLAT_WEEK,
    "diurnal20": DIURNAL_WEEK,
    # Thin topics: 40 items a minute by day, 2 at night.
    "thin40": replace(DIURNAL_WEEK, day_volume=40.0),
    "thin": _THIN,
    "syndication": replace(_THIN, spikes_per_day=1.0, syndication_per_day=3.0),
    "drift": replace(_THIN, spikes_per_day=1.0, ramps_per_day=1.0),
    "market": replace(_THIN, topics=6, spikes_per_day=1.0, market_per_day=1.0),
}
# Alerts up to this many windows after a syndication burst or market move belong to it.
EVENT_GRACE_WINDOWS = 15


def run_windows(
    scenario: Scenario, settings: AggregateSettings, *, count_repeats: bool = False
) -> list[AlertEvent]:
    """Alerts of every topic and the overall key when each window's counts are fed to the
    rules directly (as the aggregator would close them), market-wide folding included.

    ``count_repeats``: count syndicated copies as new stories, as the aggregator does with the
    story index switched off (``story_dedup: false`` in ``settings`` does the same).
    """
    count_repeats = count_repeats or not settings.story_dedup
    window_ms = settings.window_ms
    first = next(iter(scenario.series.values()))[0].start_ms
    tracks = {
        ("topic", t): new_track(settings, ("topic", t), first, top_headlines=0)
        for t in scenario.series
    }
    overall = new_track(settings, ("overall", OVERALL_KEY), first, top_headlines=0)
    tracks[("overall", OVERALL_KEY)] = overall
    events: list[AlertEvent] = []
    for counts in zip(*scenario.series.values(), strict=True):
        start, end = counts[0].start_ms, counts[0].start_ms + window_ms
        fired: list[AlertEvent] = []
        for topic, count in zip(scenario.series, counts, strict=True):
            fired += tracks[("topic", topic)].evaluate_window(
                _stats("topic", topic, start, end, [count], count_repeats=count_repeats), end
            )
        fired += overall.evaluate_window(
            _stats("overall", OVERALL_KEY, start, end, counts, count_repeats=count_repeats), end
        )
        fired.sort(key=lambda e: (e.window_end_ms, e.rule, e.key_kind, e.key))
        view, states = market_view(tracks, overall, window_ms)
        overall_state = overall.watches[NEGATIVE_SHARE_SPIKE].state
        events += apply_market_wide(fired, view, states, overall_state, settings.market_wide)
    return events


def _stats(
    kind: str, key: str, start: int, end: int, counts: Sequence[WindowCount], *, count_repeats: bool
) -> WindowStats:
    volume = sum(c.volume for c in counts)
    negative = sum(c.negative for c in counts)
    repeats = 0 if count_repeats else sum(c.repeats for c in counts)
    return WindowStats(
        kind,
        key,
        start,
        end,
        volume=volume,
        negative=negative,
        neutral=volume - negative,
        repeats=repeats,
        repeat_negative=repeats,  # syndicated copies are all negative in the scenarios
    )


def score_scenario(
    scenario: Scenario, events: Sequence[AlertEvent], settings: AggregateSettings
) -> dict[str, Score]:
    spec = scenario.spec
    common: dict[str, Any] = {
        "window_ms": settings.window_ms,
        "days": spec.days,
        "keys": len(scenario.series),
    }
    topic_events = [e for e in events if e.key_kind == "topic"]
    return {
        "spike": score_alerts(
            topic_events, scenario.injections, rule=NEGATIVE_SHARE_SPIKE, kind="spike", **common
        ),
        "surge": score_alerts(
            topic_events, scenario.injections, rule=VOLUME_SURGE, kind="surge", **common
        ),
    }


def run_naive_zscore(
    scenario: Scenario, window_ms: int, z: float = 3.0, lookback_windows: int = 60
) -> list[AlertEvent]:
    """Reference: a rolling Gaussian z-score of each window's share, blind to volume.

    Fires when a window's share is ``z`` rolling standard deviations above the rolling mean of
    the last ``lookback_windows`` non-empty windows (the NAB "windowed Gaussian" idea).
    """
    events: list[AlertEvent] = []
    for topic, series in scenario.series.items():
        recent: deque[float] = deque()
        total = total_sq = 0.0
        firing = False
        for count in series:
            if not count.volume:
                continue
            share = count.negative / count.volume
            score = 0.0
            if len(recent) >= 10:
                mean = total / len(recent)
                std = math.sqrt(max(total_sq / len(recent) - mean * mean, 0.0))
                score = (share - mean) / max(std, 1e-6)
            recent.append(share)
            total, total_sq = total + share, total_sq + share * share
            if len(recent) > lookback_windows:
                old = recent.popleft()
                total, total_sq = total - old, total_sq - old * old
            if score >= z and not firing:
                events.append(_naive_event(topic, count.start_ms, window_ms, share, score))
            firing = score >= z
    return events


def _naive_event(
    topic: str, start_ms: int, window_ms: int, share: float, score: float
) -> AlertEvent:
    return AlertEvent(
        rule=NEGATIVE_SHARE_SPIKE,
        key_kind="topic",
        key=topic,
        status="firing",
        severity="warning",
        window_start_ms=start_ms,
        window_end_ms=start_ms + window_ms,
        value=share,
        baseline=0.0,
        score=score,
        volume=0,
        summary="naive z-score",
        at_ms=start_ms,
    )


def _is_hard(injection: Injection, window_ms: int) -> bool:
    """The weakest spikes the figures cover: 3 to 4 sigma, exactly 3 windows."""
    windows = (injection.end_ms - injection.start_ms) // window_ms
    return injection.kind == "spike" and injection.size < 4.0 and windows == 3


# Bands of expected items per minute at a spike's start, for recall and delay by volume.
VOLUME_BANDS: tuple[tuple[str, float, float], ...] = (
    ("day_20_plus", 20.0, math.inf),
    ("thin_2_to_20", 2.0, 20.0),
    ("sparse_under_2", 0.0, 2.0),
)


@dataclass
class _Pooled:
    """Alerts and injections of several simulated weeks, keys prefixed ``<seed>/``."""

    events: list[AlertEvent] = field(default_factory=list)
    naive: list[AlertEvent] = field(default_factory=list)
    as_items: list[AlertEvent] = field(default_factory=list)
    injections: list[Injection] = field(default_factory=list)
    volume_at: dict[tuple[str, int], float] = field(default_factory=dict)
    keys: int = 0
    days: float = 0.0

    def add(self, seed: int, scenario: Scenario, settings: AggregateSettings) -> None:
        def tag(events: list[AlertEvent]) -> list[AlertEvent]:
            return [replace(e, key=f"{seed}/{e.key}") for e in events]

        spec = scenario.spec
        self.events += tag(run_windows(scenario, settings))
        self.naive += tag(run_naive_zscore(scenario, settings.window_ms))
        if spec.syndication_per_day:
            self.as_items += tag(run_windows(scenario, settings, count_repeats=True))
        for i in scenario.injections:
            tagged = replace(i, topic=f"{seed}/{i.topic}")
            self.injections.append(tagged)
            per_minute = expected_volume(spec, i.start_ms) * 60_000 / spec.window_ms
            self.volume_at[(tagged.topic, tagged.start_ms)] = per_minute
        self.keys += len(scenario.series)
        self.days = spec.days  # per key: every week is as long

    def score(self, rule: str, kind: str, window_ms: int, targets: list[Injection]) -> Score:
        special = [i for i in self.injections if i.kind in ("market", "syndication")]
        topic_events = [e for e in self.events if e.key_kind == "topic"]
        plain = outside(topic_events, special, window_ms=window_ms, grace_windows=1)
        return score_alerts(
            plain,
            targets,
            rule=rule,
            kind=kind,
            window_ms=window_ms,
            days=self.days,
            keys=self.keys,
        )


def _spike_bands(pooled: _Pooled, window_ms: int, min_windows: int) -> dict[str, Any]:
    """Recall and median delay of spikes of at least ``min_windows`` windows, by volume band."""
    out: dict[str, Any] = {}
    for name, low, high in VOLUME_BANDS:
        targets = [
            i
            for i in pooled.injections
            if i.kind == "spike"
            and (i.end_ms - i.start_ms) // window_ms >= min_windows
            and low <= pooled.volume_at[(i.topic, i.start_ms)] < high
        ]
        score = pooled.score(NEGATIVE_SHARE_SPIKE, "spike", window_ms, targets)
        out[name] = {
            "injections": score.injections,
            "recall": round(score.recall, 4),
            "median_delay_windows": score.median_delay_windows,
        }
    return out


def _per_event(pooled: _Pooled, kind: str, events: list[AlertEvent], window_ms: int) -> Any:
    targets = [i for i in pooled.injections if i.kind == kind]
    if not targets:
        return None
    if kind == "market":
        events = [e for e in events if e.rule == NEGATIVE_SHARE_SPIKE]
    counts = alerts_per_injection(
        events, targets, window_ms=window_ms, grace_windows=EVENT_GRACE_WINDOWS
    )
    return {
        "events": len(counts),
        "alerts_mean": round(statistics.mean(counts), 3),
        "alerts_max": max(counts),
        "events_with_over_one_alert": sum(c > 1 for c in counts),
        "events_with_no_alert": sum(c == 0 for c in counts),
    }


def bench_detection(
    settings: AggregateSettings,
    seeds: Sequence[int],
    presets: Sequence[str] = ("flat", "diurnal20"),
) -> dict[str, Any]:
    """Scores per preset over ``seeds`` simulated weeks (window-level): spikes and surges
    (with recall by volume band), syndication bursts, market moves, the naive z-score."""
    results: dict[str, Any] = {}
    window_ms = settings.window_ms
    for name in presets:
        pooled = _Pooled()
        for seed in seeds:
            spec = replace(PRESETS[name], seed=seed, window_ms=window_ms)
            pooled.add(seed, generate(spec), settings)
        spikes = [i for i in pooled.injections if i.kind == "spike"]
        surges = [i for i in pooled.injections if i.kind == "surge"]
        report: dict[str, Any] = {
            "spike": pooled.score(NEGATIVE_SHARE_SPIKE, "spike", window_ms, spikes).as_dict(),
            "surge": pooled.score(VOLUME_SURGE, "surge", window_ms, surges).as_dict(),
            "spike_3to4_sigma_3_windows": _hard(pooled, window_ms),
            "spike_10_windows_plus_by_volume": _spike_bands(pooled, window_ms, 10),
        }
        for kind in ("syndication", "market", "ramp"):
            counted = _per_event(pooled, kind, pooled.events, window_ms)
            if counted is not None:
                report[kind] = counted
        if pooled.as_items:
            report["syndication_counted_as_items"] = _per_event(
                pooled, "syndication", pooled.as_items, window_ms
            )
        naive = score_alerts(
            pooled.naive,
            spikes,
            rule=NEGATIVE_SHARE_SPIKE,
            kind="spike",
            window_ms=window_ms,
            days=pooled.days,
            keys=pooled.keys,
        )
        report["naive_zscore_spike"] = naive.as_dict()
        results[name] = report
    return results


def _hard(pooled: _Pooled, window_ms: int) -> dict[str, Any]:
    targets = [i for i in pooled.injections if _is_hard(i, window_ms)]
    hard = pooled.score(NEGATIVE_SHARE_SPIKE, "spike", window_ms, targets)
    return {
        "injections": hard.injections,
        "recall": round(hard.recall, 4),
        "median_delay_windows": hard.median_delay_windows,
    }


@dataclass(frozen=True, slots=True)
class ReplayResult:
    events: tuple[AlertEvent, ...]
    late_items: int
    duplicates: int
    items: int
    seconds: float


def _ticks(
    stream: Iterator[tuple[int, ScoredItem]], tick_ms: int
) -> Iterator[tuple[int, list[ScoredItem]]]:
    """Group arrivals into ticks of ``tick_ms`` of arrival time (like the worker's poll loop)."""
    batch: list[ScoredItem] = []
    tick_end: int | None = None
    for arrival, item in stream:
        if tick_end is None:
            tick_end = arrival - arrival % tick_ms + tick_ms
        while arrival >= tick_end:
            yield tick_end, batch
            batch, tick_end = [], tick_end + tick_ms
        batch.append(item)
    if tick_end is not None:
        yield tick_end, batch


RestartMode = Literal["clean", "crash", "fresh"]


def replay_items(
    scenario: Scenario,
    settings: AggregateSettings,
    delivery: Delivery | None = None,
    *,
    restart_at_ms: int | None = None,
    mode: RestartMode = "clean",
    tick_ms: int = 5_000,
) -> ReplayResult:
    """Stream the scenario through an aggregator; restart it at ``restart_at_ms`` if given.

    ``clean`` checkpoints, then restores from the checkpoint; ``crash`` loses everything since
    the last checkpoint and the items of the ticks after it are delivered again, as Kafka would;
    ``fresh`` restarts with no state at all (what persistence prevents).
    """
    store = MemoryStateStore()
    late: list[int] = []
    started = time.perf_counter()

    def build(state: MemoryStateStore) -> Aggregator:
        return Aggregator(settings, store=state, on_late=lambda _i, t: late.append(t))

    agg = build(store)
    events: list[AlertEvent] = []
    checkpoint_every = 12  # ticks: a minute of arrival time at 5 s ticks
    since_checkpoint: list[tuple[int, list[ScoredItem]]] = []
    duplicates = items = 0
    for now_ms, batch in _ticks(expand_items(scenario, delivery or Delivery()), tick_ms):
        if restart_at_ms is not None and now_ms >= restart_at_ms:
            restart_at_ms = None
            if mode == "clean":
                agg.checkpoint()
                since_checkpoint.clear()
            agg = build(MemoryStateStore() if mode == "fresh" else store)
            for old_now, old_batch in since_checkpoint if mode == "crash" else ():
                duplicates += sum(agg.add(i, old_now) == "duplicate" for i in old_batch)
                events.extend(agg.advance(old_now))
        for item in batch:
            duplicates += agg.add(item, now_ms) == "duplicate"
        items += len(batch)
        events.extend(agg.advance(now_ms))
        since_checkpoint.append((now_ms, batch))
        if len(since_checkpoint) >= checkpoint_every:
            agg.checkpoint()
            since_checkpoint.clear()
    elapsed = time.perf_counter() - started
    return ReplayResult(tuple(events), len(late), duplicates, items, elapsed)


def restart_check(
    settings: AggregateSettings, seed: int = 100, days: float = 7.0, restart_day: int = 3
) -> dict[str, Any]:
    """Replay a diurnal week (2 topics) with a restart at 03:00 UTC, the quietest hour."""
    spec = replace(
        DIURNAL_WEEK, topics=2, day_volume=60.0, days=days, seed=seed, window_ms=settings.window_ms
    )
    scenario = generate(spec)
    restart_ms = spec.start_ms + restart_day * DAY_MS + 3 * 3_600_000
    after = (restart_ms, restart_ms + 2 * 3_600_000)
    plain = replay_items(scenario, settings)
    report: dict[str, Any] = {
        "items": plain.items,
        "late_items": plain.late_items,
        "transitions": len(plain.events),
        "restart_at": restart_ms,
        "alerts_2h_after_restart_without_restart": _firing_between(plain.events, after),
        "replay_seconds": round(plain.seconds, 1),
    }
    for mode in ("clean", "crash", "fresh"):
        run = replay_items(scenario, settings, restart_at_ms=restart_ms, mode=mode)
        report[mode] = {
            "same_alerts": comparable(run.events) == comparable(plain.events),
            "alerts_2h_after_restart": _firing_between(run.events, after),
            "transitions": len(comparable(run.events)),
        }
    return report


def _firing_between(events: Sequence[AlertEvent], span: tuple[int, int]) -> int:
    return sum(1 for e in events if e.status == "firing" and span[0] <= e.at_ms < span[1])


def comparable(events: Sequence[AlertEvent]) -> list[tuple[Any, ...]]:
    """Transitions without the wall-clock ``at_ms``, each once (a crash replay re-emits some;
    sinks drop those by idempotency key)."""
    seen: dict[tuple[Any, ...], None] = {}
    for e in events:
        seen[
            (
                e.rule,
                e.key_kind,
                e.key,
                e.status,
                e.severity,
                e.window_start_ms,
                e.window_end_ms,
                e.value,
                e.score,
            )
        ] = None
    return list(seen)
