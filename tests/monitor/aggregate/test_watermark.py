"""Robust event time: neither one item nor a forged date can move the watermark."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from monitor.aggregate.engine import Aggregator
from monitor.aggregate.store import MemoryStateStore
from monitor.metrics import Metrics
from tests.monitor.aggregate.conftest import T0_MS, ItemFactory, fast_settings

W = 2_000  # window_ms of fast_settings


def late_count(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value(
        "finmon_aggregate_late_items_total", {"topic": "Earnings"}
    )
    return value or 0.0


def stream(agg: Aggregator, make_item: ItemFactory, start_ms: int, count: int) -> list[str]:
    """``count`` items 10 ms apart with the clock at their event time."""
    return [agg.add(make_item(start_ms + 10 * n), start_ms + 10 * n) for n in range(count)]


def test_an_item_from_the_year_2999_is_future_and_blinds_nothing(
    make_item: ItemFactory, metrics: Metrics
) -> None:
    agg = Aggregator(fast_settings(), metrics=metrics)
    stream(agg, make_item, T0_MS, 10)
    watermark = agg.watermark_ms
    forged = replace(make_item(0, item_id="forged"), published_at=datetime(2999, 1, 1, tzinfo=UTC))
    assert agg.add(forged, T0_MS + 100) == "future"
    assert agg.watermark_ms == watermark
    outcomes = stream(agg, make_item, T0_MS + 100, 150)
    assert outcomes == ["counted"] * 150 and late_count(metrics) == 0
    future = {"topic": "Earnings"}
    assert metrics.registry.get_sample_value("finmon_aggregate_future_items_total", future) == 1
    # Not remembered: a redelivery is refused again (and dead-lettered again), never skipped.
    assert agg.add(forged, T0_MS + 2_000) == "future"


def test_one_item_inside_the_future_tolerance_does_not_move_event_time(
    make_item: ItemFactory, metrics: Metrics
) -> None:
    agg = Aggregator(fast_settings(max_future_ms=240_000), metrics=metrics)
    stream(agg, make_item, T0_MS, 10)
    ahead = make_item(T0_MS + 200_000)  # 3 minutes ahead: allowed clock skew, windowed there
    assert agg.add(ahead, T0_MS + 100) == "counted"
    assert stream(agg, make_item, T0_MS + 100, 150) == ["counted"] * 150
    assert late_count(metrics) == 0
    agg.advance(T0_MS + 1_600)
    track = agg.tracks[("topic", "Earnings")]
    assert T0_MS + 200_000 - 200_000 % W in track.open  # waits in its own window


def test_items_ahead_of_the_clock_count_as_now(make_item: ItemFactory, metrics: Metrics) -> None:
    """Even a quorum of skewed items moves event time only up to the wall clock."""
    agg = Aggregator(fast_settings(), metrics=metrics)
    for n in range(5):
        agg.add(make_item(T0_MS + 60_000 + n), T0_MS)
    assert agg.event_time_ms == T0_MS
    assert stream(agg, make_item, T0_MS, 50) == ["counted"] * 50


def test_a_quorum_of_items_moves_event_time(make_item: ItemFactory) -> None:
    agg = Aggregator(fast_settings(watermark_quorum_items=3))
    agg.add(make_item(T0_MS + 5 * W), T0_MS + 5 * W)
    agg.add(make_item(T0_MS + 5 * W), T0_MS + 5 * W)
    assert agg.watermark_ms is None  # two items: not yet
    agg.add(make_item(T0_MS + 5 * W), T0_MS + 5 * W)
    assert agg.watermark_ms == T0_MS + 5 * W - 500
    agg.add(make_item(T0_MS + 9 * W), T0_MS + 9 * W)  # one newer item: event time stays
    assert agg.event_time_ms == T0_MS + 5 * W


def test_fewer_items_than_the_quorum_still_close_by_idleness(make_item: ItemFactory) -> None:
    agg = Aggregator(fast_settings(watermark_quorum_items=3))
    agg.add(make_item(T0_MS + 100), T0_MS + 100)
    agg.advance(T0_MS + 100)
    agg.advance(T0_MS + 100 + 1_000 + 2 * W)  # idle 1 s, then two windows' worth
    last = agg.tracks[("topic", "Earnings")].last
    assert last is not None and (last.start_ms, last.volume) == (T0_MS, 1)


def test_event_time_survives_a_restart(make_item: ItemFactory) -> None:
    store = MemoryStateStore()
    first = Aggregator(fast_settings(), store=store)
    stream(first, make_item, T0_MS, 20)
    first.checkpoint()
    second = Aggregator(fast_settings(), store=store)
    assert second.event_time_ms == first.event_time_ms
    assert second.watermark_ms == first.watermark_ms


def test_a_checkpoint_with_only_the_highest_event_time_restores(make_item: ItemFactory) -> None:
    store = MemoryStateStore()
    first = Aggregator(fast_settings(), store=store)
    stream(first, make_item, T0_MS, 20)
    first.checkpoint()
    snapshot, _ids = store.load()
    assert snapshot is not None
    old = {k: v for k, v in snapshot.items() if k != "front_ms"}
    old["max_event_ms"] = T0_MS + 190
    store.save(old, [], 10)
    second = Aggregator(fast_settings(watermark_quorum_items=1), store=store)
    assert second.event_time_ms == T0_MS + 190
