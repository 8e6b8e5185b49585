from __future__ import annotations

from pathlib import Path

from alerts.events import AlertEvent
from monitor.aggregate.engine import Aggregator
from monitor.aggregate.store import MemoryStateStore, SqliteStateStore
from monitor.contract import ScoredItem
from monitor.metrics import Metrics
from tests.alerts.webhook_helpers import spike_aggregator
from tests.monitor.aggregate.conftest import T0_MS, ItemFactory, fast_settings

W = 2_000  # window_ms of fast_settings


def feed_normal(
    agg: Aggregator,
    make_item: ItemFactory,
    first_window: int,
    windows: int,
    *,
    per_window: int = 30,
    negative_every: int = 6,
) -> list[AlertEvent]:
    """Neutral traffic (1 in ``negative_every`` negative) with the clock equal to event time."""
    events: list[AlertEvent] = []
    for w in range(first_window, first_window + windows):
        for i in range(per_window):
            t = T0_MS + w * W + i * (W // per_window)
            agg.add(make_item(t, negative=i % negative_every == 0), t)
        events += agg.advance(T0_MS + (w + 1) * W)
    return events


def feed_burst(agg: Aggregator, make_item: ItemFactory, window: int) -> list[AlertEvent]:
    """60 items, 90% negative, inside one window."""
    for i in range(60):
        t = T0_MS + window * W + i * 30
        agg.add(make_item(t, negative=i % 10 != 0), t)
    return agg.advance(T0_MS + (window + 1) * W)


def wait_quiet(agg: Aggregator, from_ms: int, seconds: int) -> list[AlertEvent]:
    events: list[AlertEvent] = []
    for step in range(seconds * 4):
        events += agg.advance(from_ms + step * 250)
    return events


def active_value(metrics: Metrics, severity: str, key: str = "Earnings") -> float | None:
    return metrics.registry.get_sample_value(
        "finmon_alerts_active",
        {"rule": "negative_share_spike", "key_kind": "topic", "key": key, "severity": severity},
    )


def test_burst_fires_once_then_resolves_when_quiet(
    make_item: ItemFactory, metrics: Metrics
) -> None:
    agg = Aggregator(fast_settings(alert_key_kinds=("topic",)), metrics=metrics)
    metrics.register_collector(agg.collector())
    assert feed_normal(agg, make_item, 0, 10) == []
    events = feed_burst(agg, make_item, 10)
    events += wait_quiet(agg, T0_MS + 11 * W, 5)
    firing = [e for e in events if e.status == "firing"]
    assert len(firing) == 1
    assert (firing[0].key_kind, firing[0].key) == ("topic", "Earnings")
    # consecutive_windows=2: the window after the burst still breaches (pooled over K=3)
    assert firing[0].window_start_ms == T0_MS + 11 * W
    assert len(firing[0].headlines) == 5
    assert all(h.negative_prob == 0.9 for h in firing[0].headlines)
    assert active_value(metrics, firing[0].severity) == 1
    events += wait_quiet(agg, T0_MS + 16 * W, 15)
    assert [e.status for e in events] == ["firing", "resolved"]
    assert active_value(metrics, firing[0].severity) == 0
    raised = metrics.registry.get_sample_value(
        "finmon_alerts_events_total",
        {
            "rule": "negative_share_spike",
            "key_kind": "topic",
            "severity": firing[0].severity,
            "status": "resolved",
        },
    )
    assert raised == 1


def test_cold_start_burst_fires(make_item: ItemFactory) -> None:
    agg = Aggregator(fast_settings(market_wide="annotate"))
    events = feed_burst(agg, make_item, 0) + wait_quiet(agg, T0_MS + W, 5)
    firing = {(e.key_kind, e.key) for e in events if e.status == "firing"}
    assert firing == {("topic", "Earnings"), ("overall", "all")}


def test_an_overall_alert_raised_by_one_topic_is_held_back_as_its_duplicate(
    make_item: ItemFactory,
) -> None:
    agg = Aggregator(fast_settings())  # market_wide: suppress
    events = feed_burst(agg, make_item, 0) + wait_quiet(agg, T0_MS + W, 20)
    assert {(e.key_kind, e.status) for e in events} == {("topic", "firing"), ("topic", "resolved")}
    assert {k[1] for k in agg.active if k[0] == "negative_share_spike"} == {"topic"}


def test_a_market_wide_move_is_one_alert_naming_the_topics(make_item: ItemFactory) -> None:
    agg = Aggregator(fast_settings())
    topics = ("Earnings", "Macro", "Energy", "Politics")
    for w in range(15):  # ordinary traffic on every topic
        for i in range(40):
            t = T0_MS + w * W + i * (W // 40)
            agg.add(make_item(t, negative=i % 6 == 0, topic=topics[i % 4]), t)
        agg.advance(T0_MS + (w + 1) * W)
    events: list[AlertEvent] = []
    for w in range(15, 18):  # every topic turns negative at once
        for i in range(80):
            t = T0_MS + w * W + i * (W // 80)
            agg.add(make_item(t, negative=i % 10 != 0, topic=topics[i % 4]), t)
        events += agg.advance(T0_MS + (w + 1) * W)
    events += wait_quiet(agg, T0_MS + 18 * W, 10)
    firing = [e for e in events if e.status == "firing"]
    assert [(e.key_kind, e.key) for e in firing] == [("overall", "all")]
    assert "4 of 4 topics up" in firing[0].summary
    assert [k[1] for k in agg.active] == ["overall"]  # one alert on /metrics as well


def test_normal_traffic_and_thin_night_do_not_fire(make_item: ItemFactory) -> None:
    agg = Aggregator(fast_settings())
    events = feed_normal(agg, make_item, 0, 40)
    # night: 4 items a window at the usual share, then one bad headline: noise, not a spike
    events += feed_normal(agg, make_item, 40, 40, per_window=4, negative_every=6)
    events += feed_normal(agg, make_item, 80, 1, per_window=1, negative_every=1)
    events += feed_normal(agg, make_item, 81, 10, per_window=4, negative_every=6)
    assert events == []
    # a sustained thin rise (every night item negative) fires within a few windows
    events = feed_normal(agg, make_item, 91, 10, per_window=4, negative_every=1)
    firing = [e for e in events if e.status == "firing" and e.key_kind == "topic"]
    assert firing and firing[0].window_start_ms <= T0_MS + 96 * W


def test_duplicate_ids_are_skipped(make_item: ItemFactory, metrics: Metrics) -> None:
    agg = Aggregator(fast_settings(), metrics=metrics)
    item = make_item(T0_MS, item_id="same")
    assert agg.add(item, T0_MS) == "counted"
    assert agg.add(item, T0_MS + 5) == "duplicate"
    assert metrics.registry.get_sample_value("finmon_aggregate_duplicates_total") == 1
    agg.advance(T0_MS + W + 1_500)  # idle for W + 1.5 s: only window 0 has closed
    last = agg.tracks[("topic", "Earnings")].last
    assert last is not None and (last.start_ms, last.volume) == (T0_MS, 1)


def test_late_items_are_reported_not_counted(make_item: ItemFactory, metrics: Metrics) -> None:
    late: list[tuple[ScoredItem, int]] = []
    agg = Aggregator(fast_settings(), metrics=metrics, on_late=lambda i, t: late.append((i, t)))
    for n in range(3):  # watermark_quorum_items: three items set event time to 3W
        agg.add(make_item(T0_MS + 3 * W + n), T0_MS + 3 * W + n)
    assert agg.watermark_ms == T0_MS + 3 * W - 500
    assert agg.add(make_item(T0_MS + 2 * W + 1_000), T0_MS + 3 * W) == "counted"  # still open
    straggler = make_item(T0_MS + W + 1_999)  # window [W, 2W) has closed
    assert agg.add(straggler, T0_MS + 3 * W) == "late"
    assert late == [(straggler, T0_MS + W + 1_999)]
    assert (
        metrics.registry.get_sample_value(
            "finmon_aggregate_late_items_total", {"topic": "Earnings"}
        )
        == 1
    )
    agg.advance(T0_MS + 3 * W + 2 * W)
    volumes = [w.volume for w in agg.tracks[("topic", "Earnings")].history]
    assert volumes == [1, 3]  # windows 2W (in-order straggler) and 3W


def test_windows_close_by_watermark_then_by_idleness(
    make_item: ItemFactory, metrics: Metrics
) -> None:
    agg = Aggregator(fast_settings(watermark_quorum_items=1), metrics=metrics)
    agg.add(make_item(T0_MS + 100), T0_MS + 100)
    agg.add(make_item(T0_MS + W + 400), T0_MS + W + 400)  # watermark W - 100: window 0 open
    assert agg.advance(T0_MS + W + 400) == [] and agg.tracks[("topic", "Earnings")].last is None
    agg.add(make_item(T0_MS + W + 600), T0_MS + W + 600)  # watermark W + 100: window 0 closes
    agg.advance(T0_MS + W + 600)
    track = agg.tracks[("topic", "Earnings")]
    assert track.last is not None and track.last.start_ms == T0_MS
    closed = {"key_kind": "topic", "reason": "watermark"}
    assert metrics.registry.get_sample_value("finmon_aggregate_windows_closed_total", closed) == 1
    # No more items: the window [W, 2W) closes only once the stream has been idle 1 s.
    agg.advance(T0_MS + W + 600 + 999)
    assert track.last.start_ms == T0_MS
    agg.advance(T0_MS + 2 * W + 2_000)
    assert track.last.start_ms == T0_MS + W and track.last.volume == 2
    closed["reason"] = "idle"
    assert (
        metrics.registry.get_sample_value("finmon_aggregate_windows_closed_total", closed) or 0
    ) >= 1


def test_ticker_series_are_capped(make_item: ItemFactory) -> None:
    agg = Aggregator(fast_settings(max_ticker_series=2))
    for n, ticker in enumerate(["AAA", "BBB", "CCC"]):
        agg.add(make_item(T0_MS + n, tickers=(ticker,)), T0_MS + n)
    tickers = sorted(k for kind, k in agg.tracks if kind == "ticker")
    assert tickers == ["AAA", "BBB"]


def test_checkpoint_restores_windows_baselines_and_ids(
    make_item: ItemFactory, tmp_path: Path
) -> None:
    path = tmp_path / "agg.sqlite"
    settings = fast_settings()
    first = Aggregator(settings, store=SqliteStateStore(path))
    feed_normal(first, make_item, 0, 20)
    first.add(make_item(T0_MS + 20 * W + 10, item_id="open-window"), T0_MS + 20 * W + 10)
    first.checkpoint()
    snapshot = first.snapshot()
    assert first.store is not None
    first.store.close()

    second = Aggregator(settings, store=SqliteStateStore(path))
    assert second.snapshot() == snapshot
    assert second.add(make_item(T0_MS + 20 * W + 20, item_id="open-window"), T0_MS) == "duplicate"


def test_restart_in_quiet_period_raises_nothing(make_item: ItemFactory) -> None:
    store = MemoryStateStore()
    settings = fast_settings()
    first = Aggregator(settings, store=store)
    assert feed_normal(first, make_item, 0, 30) == []
    first.checkpoint()
    # Restart long after, in a quiet period, then traffic resumes at the usual level.
    second = Aggregator(settings, store=store)
    assert wait_quiet(second, T0_MS + 60 * W, 5) == []
    assert feed_normal(second, make_item, 70, 20) == []
    spike = second.tracks[("topic", "Earnings")].watches["negative_share_spike"]
    assert spike.detector.learned_windows > 30  # type: ignore[attr-defined]


def test_collector_exposes_the_named_series(make_item: ItemFactory, metrics: Metrics) -> None:
    agg = Aggregator(fast_settings(), metrics=metrics)
    metrics.register_collector(agg.collector())
    feed_normal(agg, make_item, 0, 3)
    labels = {"key_kind": "topic", "key": "Earnings"}
    get = metrics.registry.get_sample_value
    assert get("finmon_aggregate_window_items", labels) == 30
    assert get("finmon_aggregate_negative_share", labels) == 5 / 30
    assert 0.15 < (get("finmon_aggregate_baseline_negative_share", labels) or 0) < 0.2
    assert get("finmon_aggregate_spike_score", labels) is not None
    assert get("finmon_aggregate_window_items", {"key_kind": "overall", "key": "all"}) == 30


def test_backlog_after_an_outage_is_counted_not_late(
    make_item: ItemFactory, metrics: Metrics
) -> None:
    store = MemoryStateStore()
    first = Aggregator(fast_settings(), store=store)
    feed_normal(first, make_item, 0, 5)
    first.checkpoint()
    # Down for 100 windows; on restart the first tick comes before the first poll returns.
    second = Aggregator(fast_settings(), metrics=metrics, store=store)
    restart_ms = T0_MS + 105 * W
    assert second.advance(restart_ms) == []
    backlog = [make_item(T0_MS + (5 + i) * W + 100) for i in range(100)]
    assert all(second.add(item, restart_ms + 50) == "counted" for item in backlog)
    assert (
        metrics.registry.get_sample_value(
            "finmon_aggregate_late_items_total", {"topic": "Earnings"}
        )
        is None
    )


def test_a_market_wide_move_without_overall_alerts_annotates_the_topic_alerts() -> None:
    # alert_key_kinds is ("topic",): no overall alert can stand in for the topic alerts.
    _, events, _ = spike_aggregator(topics=("Earnings", "Macro", "Dividend"))
    firing = [e for e in events if e.status == "firing"]
    assert {e.key for e in firing} == {"Earnings", "Macro", "Dividend"}
    assert all("market-wide" in e.summary for e in firing)
