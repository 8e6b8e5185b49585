from __future__ import annotations

from dataclasses import replace

from alerts.scenario import DAY_MS, DIURNAL_WEEK, generate
from monitor.aggregate.bench import (
    PRESETS,
    bench_detection,
    comparable,
    replay_items,
    run_windows,
)
from monitor.settings import AggregateSettings

# One day, one topic, busy enough to have alerts; spikes may land anywhere but the first 2 h.
SPEC = replace(DIURNAL_WEEK, days=1.0, topics=1, day_volume=40.0, spikes_per_day=4, seed=11)
RESTART_MS = SPEC.start_ms + 3 * 3_600_000  # 03:00, the quietest hour


def test_replay_is_the_same_with_or_without_a_restart() -> None:
    scenario = generate(SPEC)
    settings = AggregateSettings()
    plain = replay_items(scenario, settings)
    assert plain.late_items > 0  # the delivery model makes some items late
    assert any(e.status == "firing" for e in plain.events)
    for mode in ("clean", "crash"):
        again = replay_items(scenario, settings, restart_at_ms=RESTART_MS, mode=mode)
        assert comparable(again.events) == comparable(plain.events), mode
    fresh = replay_items(scenario, settings, restart_at_ms=RESTART_MS, mode="fresh")
    # Without the persisted baselines the numbers differ: the comparison above is sensitive.
    assert comparable(fresh.events) != comparable(plain.events)
    after = [e for e in fresh.events if RESTART_MS <= e.at_ms < RESTART_MS + DAY_MS // 12]
    assert not [e for e in after if e.status == "firing"]


def test_detection_bench_on_one_week() -> None:
    report = bench_detection(AggregateSettings(), seeds=[5], presets=("flat",))["flat"]
    assert report["spike"]["injections"] == 140
    assert report["spike"]["recall"] >= 0.85
    assert report["spike"]["false_alarms_per_key_week"] <= 1.5
    assert report["naive_zscore_spike"]["false_alarms"] > report["spike"]["false_alarms"]


def test_syndication_bursts_raise_no_alert_when_counted_once() -> None:
    preset = PRESETS["syndication"]
    report = bench_detection(AggregateSettings(), seeds=[3], presets=("syndication",))
    bursts = report["syndication"]["syndication"]
    assert bursts["events"] == round(preset.syndication_per_day * preset.days) * preset.topics
    assert bursts["alerts_max"] <= 1
    as_items = report["syndication"]["syndication_counted_as_items"]
    assert as_items["alerts_mean"] > bursts["alerts_mean"]  # copies counted: bursts do alert


def test_story_dedup_false_in_the_settings_counts_copies_as_the_bench_variant_does() -> None:
    scenario = generate(replace(PRESETS["syndication"], days=2.0, topics=2, seed=3))
    off = AggregateSettings(story_dedup=False)
    counted = run_windows(scenario, AggregateSettings(), count_repeats=True)
    assert comparable(run_windows(scenario, off)) == comparable(counted)
    assert comparable(run_windows(scenario, AggregateSettings())) != comparable(counted)
