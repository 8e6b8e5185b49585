"""The value-series rule (alerts.values): two sided, one alert per excursion, bounded."""

from __future__ import annotations

import math
import random

from alerts.values import ValueParams, ValueShift

STEP_MS = 300_000  # 5-minute points
PER_DAY = 288


def _daily(days: int, seed: int) -> list[float]:
    """A noisy daily cycle (a temperature or a load): 50 +- 20, noise sd 2."""
    rng = random.Random(seed)
    return [
        50.0 + 20.0 * math.sin(2 * math.pi * i / PER_DAY) + rng.gauss(0.0, 2.0)
        for i in range(days * PER_DAY)
    ]


def _fired(values: list[float], params: ValueParams | None = None) -> list[int]:
    rule = ValueShift(params or ValueParams(window_ms=STEP_MS))
    return [i for i, v in enumerate(values) if rule.step(i * STEP_MS, v)]


def test_a_quiet_series_stays_quiet() -> None:
    # Three weeks of an ordinary daily cycle: at most one alert (the nominal rate is well
    # under one a week, docs/detection.md).
    assert len(_fired(_daily(21, seed=1))) <= 1


def test_a_drop_and_a_rise_each_fire_once_within_hours() -> None:
    for shift in (-15.0, 15.0):
        values = _daily(21, seed=2)
        start = 14 * PER_DAY + 100
        for i in range(start, start + PER_DAY // 2):  # 12 hours at a shifted level
            values[i] += shift
        fired = [i for i in _fired(values) if i >= 7 * PER_DAY]
        # One alert: the return to normal falls in the 24-hour cooldown.
        assert len(fired) == 1, (shift, fired)
        assert start <= fired[0] <= start + 12 * 12, (shift, fired)  # within 12 hours


def test_a_flat_middle_where_the_daily_cycle_stops_fires() -> None:
    values = _daily(21, seed=3)
    start = 15 * PER_DAY
    values[start : start + PER_DAY] = [50.0] * PER_DAY  # the cycle stops, the mean does not move
    assert any(start <= i < start + PER_DAY for i in _fired(values))


def test_the_cooldown_gives_one_alert_per_excursion_and_the_state_is_bounded() -> None:
    values = _daily(21, seed=4)
    start = 14 * PER_DAY
    for i in range(start, start + 6 * 12):  # a 6-hour spike, far above anything before
        values[i] += 80.0
    params = ValueParams(window_ms=STEP_MS, cooldown_hours=24.0)
    rule = ValueShift(params)
    fired = [i for i, v in enumerate(values) if rule.step(i * STEP_MS, v)]
    assert [i for i in fired if start <= i < start + PER_DAY] == [start]
    assert len(rule._values) <= max(params.day_lags, 7 * params.week_lags) * PER_DAY
