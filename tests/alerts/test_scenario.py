from __future__ import annotations

from dataclasses import replace
from itertools import pairwise

from alerts.events import AlertEvent, Status
from alerts.scenario import (
    DAY_MS,
    DIURNAL_WEEK,
    MARKET_KEY,
    Delivery,
    Injection,
    ScenarioSpec,
    expand_items,
    expected_volume,
    generate,
)
from alerts.scoring import score_alerts

W = 60_000
SMALL = ScenarioSpec(days=1, topics=3, day_volume=100, warmup_windows=60, seed=3)


def test_generator_is_deterministic_and_places_spikes_apart() -> None:
    first, again = generate(SMALL), generate(SMALL)
    assert first.series == again.series and first.injections == again.injections
    spikes = sorted((i.topic, i.start_ms, i.end_ms) for i in first.injections)
    assert len([i for i in first.injections if i.kind == "spike"]) == 6  # 2/day x 3 topics
    for (t1, _, end1), (t2, start2, _) in pairwise(spikes):
        assert t1 != t2 or start2 >= end1 + 5 * W


def test_spike_windows_are_more_negative() -> None:
    scenario = generate(SMALL)
    spike = next(i for i in scenario.injections if i.kind == "spike")
    series = scenario.series[spike.topic]
    inside = [c for c in series if spike.start_ms <= c.start_ms < spike.end_ms]
    outside = [c for c in series if c not in inside and c.volume]
    share = sum(c.negative for c in inside) / sum(c.volume for c in inside)
    normal = sum(c.negative for c in outside) / sum(c.volume for c in outside)
    assert share > normal + 0.1


def test_night_volume_is_twenty_times_lower() -> None:
    day = expected_volume(DIURNAL_WEEK, DIURNAL_WEEK.start_ms + 14 * 3_600_000)
    night = expected_volume(DIURNAL_WEEK, DIURNAL_WEEK.start_ms + 2 * 3_600_000)
    assert abs(day / night - 20) < 1e-6


def test_items_arrive_out_of_order_and_some_late() -> None:
    scenario = generate(replace(SMALL, days=0.1, topics=1))
    delivery = Delivery(jitter_ms=5_000, late_fraction=0.05, late_delay_ms=120_000)
    pairs = list(expand_items(scenario, delivery))
    assert len(pairs) == sum(c.volume for c in scenario.series["topic-00"])
    arrivals = [a for a, _ in pairs]
    events = [int(i.published_at.timestamp() * 1000) for _, i in pairs]
    assert arrivals == sorted(arrivals)
    assert events != sorted(events)
    delays = [a - e for a, e in zip(arrivals, events, strict=True)]
    assert 0 < sum(d >= 120_000 for d in delays) < len(delays) * 0.1


def alert(key: str, start_ms: int, status: Status = "firing") -> AlertEvent:
    return AlertEvent(
        rule="negative_share_spike",
        key_kind="topic",
        key=key,
        status=status,
        severity="warning",
        window_start_ms=start_ms,
        window_end_ms=start_ms + W,
        value=0.5,
        baseline=0.2,
        score=5,
        volume=50,
        summary="",
        at_ms=0,
    )


def test_scorer_counts_hits_delays_and_false_alarms() -> None:
    injections = [
        Injection("spike", "a", 10 * W, 14 * W, 3.5),
        Injection("spike", "b", 10 * W, 13 * W, 4.0),
        Injection("surge", "a", 30 * W, 33 * W, 5.0),
    ]
    alerts = [
        alert("a", 11 * W),  # delay 1
        alert("a", 11 * W, status="resolved"),
        alert("b", 13 * W),  # one window after the end: inside the grace window, delay 3
        alert("a", 40 * W),  # false alarm
        alert("b", 12 * W),  # second alert on an already detected spike: not a false alarm
    ]
    score = score_alerts(
        alerts, injections, rule="negative_share_spike", kind="spike", window_ms=W, days=7, keys=2
    )
    assert (score.alerts, score.detected, score.false_alarms) == (4, 2, 1)
    assert score.recall == 1.0 and score.precision == 0.75
    assert sorted(score.delays_windows) == [1, 3] and score.median_delay_windows == 2
    assert score.false_alarms_per_key_week == 0.5
    assert score.false_alarms_by_key == (("a", 1),) and score.max_false_alarms_per_key == 1


def test_weekends_are_thinner_and_bursts_are_marked_as_repeats() -> None:
    spec = replace(SMALL, days=3, topics=1, weekend_ratio=0.5, syndication_per_day=2)
    friday, saturday = spec.start_ms + DAY_MS + 14 * 3_600_000, spec.start_ms + 2 * DAY_MS
    assert expected_volume(spec, saturday + 14 * 3_600_000) == expected_volume(spec, friday) / 2
    scenario = generate(spec)
    bursts = [i for i in scenario.injections if i.kind == "syndication"]
    assert len(bursts) == 6
    series = scenario.series["topic-00"]
    assert sum(c.copies for c in series) == 6 * 30
    assert sum(c.repeats for c in series) == 6 * 29  # the first copy of each is the story


def test_a_market_move_lifts_every_topic_together() -> None:
    scenario = generate(replace(SMALL, topics=4, market_per_day=1, spikes_per_day=0))
    move = next(i for i in scenario.injections if i.kind == "market")
    assert move.topic == MARKET_KEY
    for series in scenario.series.values():
        inside = [c for c in series if move.start_ms <= c.start_ms < move.end_ms]
        before = [c for c in series if c.start_ms < move.start_ms and c.volume]
        share = sum(c.negative for c in inside) / sum(c.volume for c in inside)
        assert share > sum(c.negative for c in before) / sum(c.volume for c in before) + 0.05
