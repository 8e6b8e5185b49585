"""Detection benchmark on simulated weeks, and the restart replay check.

* :func:`run_windows` feeds each topic's window counts straight into the same per-key tracks and
  rules the aggregator uses (fast: no per-item work), for recall, delay and false alarms.
* :func:`replay_items` streams the scenario item by item (out of order, some late) through a full
  :class:`~monitor.aggregate.engine.Aggregator`, optionally stopping and restoring it from its
  checkpoint mid-stream, so alerts with and without a restart can be compared.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from alerts.detectors import NEGATIVE_SHARE_SPIKE, VOLUME_SURGE
from alerts.events import AlertEvent
from alerts.scenario import (
    DIURNAL_WEEK,
    FLAT_WEEK,
    Delivery,
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

PRESETS: dict[str, ScenarioSpec] = {"flat": FLAT_WEEK, "diurnal20": DIURNAL_WEEK}


def run_windows(scenario: Scenario, settings: AggregateSettings) -> list[AlertEvent]:
    """Alerts of every topic when each window's counts are fed to the rules directly."""
    events: list[AlertEvent] = []
    for topic, series in scenario.series.items():
        track = new_track(settings, ("topic", topic), series[0].start_ms, top_headlines=0)
        for count in series:
            end = count.start_ms + settings.window_ms
            stats = WindowStats("topic", topic, count.start_ms, end, volume=count.volume,
                                negative=count.negative, neutral=count.volume - count.negative)
            events.extend(track.evaluate_window(stats, end))
    return events


def score_scenario(scenario: Scenario, events: Sequence[AlertEvent],
                   settings: AggregateSettings) -> dict[str, Score]:
    spec = scenario.spec
    common: dict[str, Any] = {"window_ms": settings.window_ms, "days": spec.days,
                              "keys": len(scenario.series)}
    topic_events = [e for e in events if e.key_kind == "topic"]
    return {
        "spike": score_alerts(topic_events, scenario.injections, rule=NEGATIVE_SHARE_SPIKE,
                              kind="spike", **common),
        "surge": score_alerts(topic_events, scenario.injections, rule=VOLUME_SURGE,
                              kind="surge", **common),
    }


def bench_detection(settings: AggregateSettings, seeds: Sequence[int],
                    presets: Sequence[str] = ("flat", "diurnal20")) -> dict[str, Any]:
    """Scores per preset over ``seeds`` simulated weeks (window-level)."""
    results: dict[str, Any] = {}
    for name in presets:
        pooled: list[AlertEvent] = []
        injections = []
        keys = 0
        for seed in seeds:
            spec = replace(PRESETS[name], seed=seed, window_ms=settings.window_ms)
            scenario = generate(spec)
            # Topic names repeat across seeds: prefix them so alerts match their own week.
            events = [replace(e, key=f"{seed}/{e.key}") for e in run_windows(scenario, settings)]
            pooled.extend(events)
            injections += [replace(i, topic=f"{seed}/{i.topic}") for i in scenario.injections]
            keys += len(scenario.series)
        merged = Scenario(replace(PRESETS[name], seed=-1))
        merged.injections = injections
        merged.series = {str(k): [] for k in range(keys)}
        scores = score_scenario(merged, pooled, settings)
        results[name] = {kind: s.as_dict() for kind, s in scores.items()}
    return results


@dataclass(frozen=True, slots=True)
class ReplayResult:
    events: tuple[AlertEvent, ...]
    late_items: int
    duplicates: int
    items: int
    seconds: float


def _ticks(stream: Iterator[tuple[int, ScoredItem]], tick_ms: int
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


def replay_items(
    scenario: Scenario,
    settings: AggregateSettings,
    delivery: Delivery = Delivery(),
    *,
    restart_at_ms: int | None = None,
    crash: bool = False,
    tick_ms: int = 5_000,
) -> ReplayResult:
    """Stream the scenario through an aggregator; restart it at ``restart_at_ms`` if given.

    A clean restart checkpoints first; a crash (``crash=True``) loses everything since the last
    checkpoint and the items of the ticks after it are delivered again, as Kafka would.
    """
    store = MemoryStateStore()
    late: list[int] = []
    started = time.perf_counter()
    agg = Aggregator(settings, store=store, on_late=lambda _i, t: late.append(t))
    events: list[AlertEvent] = []
    checkpoint_every = 12  # ticks, i.e. a minute of arrival time at 5 s ticks
    since_checkpoint: list[tuple[int, list[ScoredItem]]] = []
    duplicates = items = 0
    for now_ms, batch in _ticks(expand_items(scenario, delivery), tick_ms):
        if restart_at_ms is not None and now_ms >= restart_at_ms:
            restart_at_ms = None
            if not crash:
                agg.checkpoint()
                since_checkpoint.clear()
            agg = Aggregator(settings, store=store, on_late=lambda _i, t: late.append(t))
            for old_now, old_batch in since_checkpoint:
                duplicates += sum(not agg.add(i, old_now) for i in old_batch)
                events.extend(agg.advance(old_now))
        for item in batch:
            duplicates += not agg.add(item, now_ms)
        items += len(batch)
        events.extend(agg.advance(now_ms))
        since_checkpoint.append((now_ms, batch))
        if len(since_checkpoint) >= checkpoint_every:
            agg.checkpoint()
            since_checkpoint.clear()
    return ReplayResult(tuple(events), len(late), duplicates, items,
                        time.perf_counter() - started)


def comparable(events: Sequence[AlertEvent]) -> list[tuple[Any, ...]]:
    """Alert identity without the wall-clock ``at_ms``."""
    return [(e.rule, e.key_kind, e.key, e.status, e.severity, e.window_start_ms, e.window_end_ms,
             e.value, e.score) for e in events]
