from __future__ import annotations

import json
import math

from alerts.detectors import NegativeShareSpike, SpikeParams, SurgeParams, VolumeSurge
from monitor.aggregate.windows import WindowStats

W = 60_000


def window(volume: int, negative: int, index: int = 0, repeats: int = 0) -> WindowStats:
    return WindowStats(
        "topic",
        "Macro",
        index * W,
        (index + 1) * W,
        volume=volume,
        negative=negative,
        neutral=volume - negative,
        repeats=repeats,
        repeat_negative=repeats,
    )


def trained_spike(params: SpikeParams | None = None, windows: int = 50) -> NegativeShareSpike:
    detector = NegativeShareSpike(params or SpikeParams())
    for i in range(windows):
        detector.learn(window(100, 18 + (i % 5), i), in_alert=False)  # 18..22 %
    return detector


def feed(detector: NegativeShareSpike | VolumeSurge, windows: list[WindowStats]) -> list[bool]:
    """Evaluate then learn each window, as a rule does; the breach of each."""
    breaches = []
    for w in windows:
        ev = detector.evaluate([w])
        breaches.append(ev.breach)
        detector.learn(w, in_alert=ev.breach)
    return breaches


def test_spike_fires_on_a_large_rise_with_enough_volume() -> None:
    detector = trained_spike()
    assert abs(detector.baseline - 0.2) < 0.01
    ev = detector.evaluate([window(100, 45, 50)])
    assert ev.breach and not ev.critical
    assert ev.value == 0.45 and ev.volume == 100
    assert detector.evaluate([window(100, 75, 50)]).critical


def test_one_bad_headline_at_night_never_fires_but_a_sustained_thin_rise_does() -> None:
    detector = trained_spike()
    quiet_night = [window(3, i % 7 == 0, 50 + i) for i in range(60)]  # ~5 % negative
    single = [window(1, 1, 110)]  # one bad headline
    assert not any(feed(detector, quiet_night + single))
    surge = [window(3, 2, 111 + i) for i in range(20)]  # 3 a minute, two thirds negative
    fired = feed(detector, surge)
    assert any(fired)
    assert fired.index(True) < 8  # within minutes, pooled over a growing span


def test_minimum_absolute_rise_blocks_tiny_shifts_on_huge_volume() -> None:
    detector = trained_spike()
    ev = detector.evaluate([window(100_000, 23_000, 50)])
    assert ev.score > 4 and not ev.breach  # statistically clear, but only +3 points


def test_pooling_over_windows_catches_a_sustained_moderate_rise() -> None:
    detector = trained_spike()
    first = detector.evaluate([window(60, 21, 50)])  # 35 %: not enough on its own
    assert not first.breach
    fired = feed(detector, [window(60, 21, 50 + i) for i in range(4)])
    assert fired[-1]
    pooled = detector.evaluate([window(60, 21, 54)])
    assert pooled.score > first.score and pooled.volume > 60


def test_evidence_restarts_after_an_alert() -> None:
    detector = trained_spike()
    feed(detector, [window(60, 30, 50 + i) for i in range(5)])
    assert detector.evaluate([window(60, 13, 55)]).volume > 60
    detector.restart_evidence()
    assert detector.evaluate([window(60, 13, 55)]).volume == 60


def test_repeats_of_a_story_are_not_counted() -> None:
    detector = trained_spike()
    burst = window(100 + 29, 20 + 30, 50, repeats=29)  # one story from 30 outlets
    ev = detector.evaluate([burst])
    assert not ev.breach and ev.volume == 100


def test_alert_windows_do_not_teach_the_baseline_until_rebase() -> None:
    detector = trained_spike()
    before = detector.baseline
    for i in range(20):
        detector.learn(window(100, 70, 50 + i), in_alert=True)
    assert detector.baseline == before
    detector.rebase()
    assert abs(detector.baseline - 0.7) < 1e-9


def test_spike_state_round_trip_through_json() -> None:
    detector = trained_spike()
    feed(detector, [window(30, 12, 50 + i) for i in range(3)])
    again = NegativeShareSpike(SpikeParams())
    again.load_state(json.loads(json.dumps(detector.to_state())))
    assert again.evaluate([window(80, 30, 53)]) == detector.evaluate([window(80, 30, 53)])


def trained_surge(windows: int = 40, params: SurgeParams | None = None) -> VolumeSurge:
    detector = VolumeSurge(params or SurgeParams())
    for i in range(windows):
        detector.learn(window(50 + (i % 7), 10, i), in_alert=False)
    return detector


def test_volume_surge_fires_on_five_fold_volume() -> None:
    ev = trained_surge().evaluate([window(270, 50, 40)])
    assert ev.breach and not ev.critical
    assert trained_surge().evaluate([window(400, 50, 40)]).critical


def test_volume_surge_needs_warmup_and_minimum_volume() -> None:
    assert not trained_surge(windows=5).evaluate([window(270, 50, 5)]).breach
    quiet = VolumeSurge(SurgeParams())
    for i in range(40):
        quiet.learn(window(1, 0, i), in_alert=False)
    assert not quiet.evaluate([window(12, 0, 40)]).breach  # 12x, but under min_volume
    assert quiet.evaluate([window(30, 0, 40)]).breach


def test_volume_evidence_accumulates_at_thin_volume() -> None:
    detector = VolumeSurge(SurgeParams())
    for i in range(120):
        detector.learn(window(1, 0, i), in_alert=False)
    fired = feed(detector, [window(6, 0, 120 + i) for i in range(10)])  # 6x, 6 a minute
    assert not fired[0] and any(fired)


def test_hour_of_week_profile_expects_the_busy_hour() -> None:
    detector = VolumeSurge(SurgeParams())
    week = 7 * 24 * 60
    fired_days = set()
    for i in range(2 * week):
        busy = (i // 60) % 24 == 14  # every day, 14:00-15:00 is ten times busier
        w = window(40 if busy else 4, 0, i)
        ev = detector.evaluate([w])
        if ev.breach:
            fired_days.add(i // 1440)
        detector.learn(w, in_alert=ev.breach)
    assert fired_days and max(fired_days) <= 3  # a new daily peak alerts, then it is learned
    afternoon = 2 * week + 14 * 60 + 5
    assert detector.expected(afternoon * W) > 3 * detector.expected((afternoon - 600) * W)
    assert not detector.evaluate([window(40, 0, afternoon)]).breach


def test_a_feed_outage_teaches_the_volume_baseline_nothing() -> None:
    detector = trained_surge()
    before = detector.expected(40 * W)
    for i in range(40, 160):
        detector.learn(window(0, 0, i), in_alert=False)
    assert math.isclose(detector.expected(160 * W), before, rel_tol=0.2)
    assert not detector.evaluate([window(55, 10, 160)]).breach


def test_surge_state_round_trip_through_json() -> None:
    detector = trained_surge()
    again = VolumeSurge(SurgeParams())
    again.load_state(json.loads(json.dumps(detector.to_state())))
    assert again.evaluate([window(200, 0, 40)]) == detector.evaluate([window(200, 0, 40)])
