from __future__ import annotations

from alerts.detectors import NegativeShareSpike, SpikeParams, SurgeParams, VolumeSurge
from monitor.aggregate.windows import WindowStats


def window(volume: int, negative: int, index: int = 0) -> WindowStats:
    return WindowStats(
        "topic",
        "Macro",
        index * 60_000,
        (index + 1) * 60_000,
        volume=volume,
        negative=negative,
        neutral=volume - negative,
    )


def trained_spike(params: SpikeParams | None = None, windows: int = 50) -> NegativeShareSpike:
    detector = NegativeShareSpike(params or SpikeParams())
    for i in range(windows):
        detector.learn(window(100, 18 + (i % 5)), in_alert=False)  # 18..22 %
    return detector


def test_spike_fires_on_a_large_rise_with_enough_volume() -> None:
    detector = trained_spike()
    assert abs(detector.baseline - 0.2) < 0.01
    ev = detector.evaluate([window(100, 45)])
    assert ev.breach and not ev.critical
    assert ev.value == 0.45 and ev.volume == 100
    assert detector.evaluate([window(100, 65)]).critical


def test_three_of_four_at_night_is_not_a_spike() -> None:
    detector = trained_spike()
    assert not detector.evaluate([window(4, 3)]).breach  # under min_volume
    lenient = trained_spike(SpikeParams(min_volume=1))
    ev = lenient.evaluate([window(4, 3)])
    assert not ev.breach and 0 < ev.score < 4  # binomial noise at n=4 keeps the score small


def test_minimum_absolute_rise_blocks_tiny_shifts_on_huge_volume() -> None:
    detector = trained_spike()
    ev = detector.evaluate([window(100_000, 23_000)])
    assert ev.score > 4 and not ev.breach  # statistically clear, but only +3 points


def test_pooling_over_k_windows_catches_a_sustained_moderate_rise() -> None:
    detector = trained_spike()
    moderate = [window(60, 24, i) for i in range(3)]  # 40 % each
    single = detector.evaluate(moderate[-1:])
    pooled = detector.evaluate(moderate)
    assert pooled.score > single.score
    assert pooled.volume == 180 and pooled.breach


def test_alert_windows_do_not_teach_the_baseline_until_rebase() -> None:
    detector = trained_spike()
    before = detector.baseline
    for _ in range(20):
        detector.learn(window(100, 70), in_alert=True)
    assert detector.baseline == before
    detector.rebase()
    assert abs(detector.baseline - 0.7) < 1e-9


def test_spike_state_round_trip() -> None:
    detector = trained_spike()
    again = NegativeShareSpike(SpikeParams())
    again.load_state(detector.to_state())
    assert again.evaluate([window(80, 30)]) == detector.evaluate([window(80, 30)])


def trained_surge(windows: int = 40) -> VolumeSurge:
    detector = VolumeSurge(SurgeParams())
    for i in range(windows):
        detector.learn(window(50 + (i % 7), 10), in_alert=False)
    return detector


def test_volume_surge_fires_on_five_fold_volume() -> None:
    ev = trained_surge().evaluate([window(270, 50)])
    assert ev.breach and not ev.critical
    assert trained_surge().evaluate([window(400, 50)]).critical


def test_volume_surge_needs_warmup_and_minimum_volume() -> None:
    assert not trained_surge(windows=5).evaluate([window(270, 50)]).breach
    quiet = VolumeSurge(SurgeParams())
    for _ in range(40):
        quiet.learn(window(1, 0), in_alert=False)
    assert not quiet.evaluate([window(12, 0)]).breach  # 12x, but under min_volume
    assert quiet.evaluate([window(30, 0)]).breach
