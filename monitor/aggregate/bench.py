"""Detection benchmark on simulated weeks, and the restart replay check.

* :func:`run_windows` feeds each topic's window counts straight into the same per-key tracks and
  rules the aggregator uses (fast: no per-item work), for recall, delay and false alarms.
* :func:`replay_items` streams the scenario item by item (out of order, some late) through a full
  :class:`~monitor.aggregate.engine.Aggregator`, optionally stopping and restoring it from its
  checkpoint mid-stream, so alerts with and without a restart can be compared.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from alerts.detectors import NEGATIVE_SHARE_SPIKE, VOLUME_SURGE
from alerts.events import AlertEvent
from alerts.scenario import (
    DAY_MS,
    DIURNAL_WEEK,
    FLAT_WEEK,
    Delivery,
    Injection,
    Scenario,
    ScenarioSpec,
    expand_items,
    generate,
)
from alerts.scoring import Score, score_alerts
from monitor.aggregate.engine import Aggregator, new_track
from monitor.aggregate.store import MemoryStateStore
from monitor.aggregate.windows import WindowStats
from monitor.contract import ScoredItem
from monitor.settings import AggregateSettings

PRESETS: dict[str, ScenarioSpec] = {
    "flat": FLAT_WEEK,
    "diurnal20": DIURNAL_WEEK,
    # Thin topics: 40 items a minute by day, 2 at night (most night windows under min_volume).
    "thin40": replace(DIURNAL_WEEK, day_volume=40.0),
}


def run_windows(scenario: Scenario, settings: AggregateSettings) -> list[AlertEvent]:
    """Alerts of every topic when each window's counts are fed to the rules directly."""
    events: list[AlertEvent] = []
    for topic, series in scenario.series.items():
        track = new_track(settings, ("topic", topic), series[0].start_ms, top_headlines=0)
        for count in series:
            end = count.start_ms + settings.window_ms
            stats = WindowStats(
                "topic",
                topic,
                count.start_ms,
                end,
                volume=count.volume,
                negative=count.negative,
                neutral=count.volume - count.negative,
            )
            events.extend(track.evaluate_window(stats, end))
    return events


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


def bench_detection(
    settings: AggregateSettings,
    seeds: Sequence[int],
    presets: Sequence[str] = ("flat", "diurnal20"),
) -> dict[str, Any]:
    """Scores per preset over ``seeds`` simulated weeks (window-level), with the naive
    z-score reference and the recall on the hardest spikes."""
    results: dict[str, Any] = {}
    for name in presets:
        pooled: list[AlertEvent] = []
        naive: list[AlertEvent] = []
        injections: list[Injection] = []
        keys = 0
        for seed in seeds:
            spec = replace(PRESETS[name], seed=seed, window_ms=settings.window_ms)
            scenario = generate(spec)
            # Topic names repeat across seeds: prefix them so alerts match their own week.
            pooled += [replace(e, key=f"{seed}/{e.key}") for e in run_windows(scenario, settings)]
            naive += [
                replace(e, key=f"{seed}/{e.key}")
                for e in run_naive_zscore(scenario, settings.window_ms)
            ]
            injections += [replace(i, topic=f"{seed}/{i.topic}") for i in scenario.injections]
            keys += len(scenario.series)
        merged = Scenario(replace(PRESETS[name], seed=-1))
        merged.injections = injections
        merged.series = {str(k): [] for k in range(keys)}
        scores = score_scenario(merged, pooled, settings)
        results[name] = {kind: s.as_dict() for kind, s in scores.items()}
        merged.injections = [i for i in injections if _is_hard(i, settings.window_ms)]
        hard = score_scenario(merged, pooled, settings)["spike"]
        results[name]["spike_3to4_sigma_3_windows"] = {
            "injections": hard.injections,
            "recall": round(hard.recall, 4),
            "median_delay_windows": hard.median_delay_windows,
        }
        merged.injections = injections
        results[name]["naive_zscore_spike"] = score_scenario(merged, naive, settings)[
            "spike"
        ].as_dict()
    return results


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
