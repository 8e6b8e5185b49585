"""Anomalies in a series of values (not counts): spikes, drops and level shifts, either side.

The volume rule (:class:`alerts.detectors.VolumeSurge`) models counts and looks for rises. A
series of values (a temperature, a latency, a CPU share, a daily count of mentions with its own
calendar) needs neither assumption. :class:`ValueShift` scores each point against three
baselines:

* ``level``: the mean of the previous ``level_hours`` (24 h) of points;
* ``day``: the median of the same time of day over the previous ``day_lags`` (7) days;
* ``week``: the median of the same time of week over the previous ``week_lags`` (2) weeks.

For each baseline it forms three statistics of the residual (value minus baseline): the
point's own residual, and the mean residual of the last 2 h and of the last 12 h
(``smooth_hours``), which show a level shift or a change of shape that no single point does.
Each statistic is divided by its own exponentially weighted standard deviation (half-life
``scale_hours``, 2 weeks), learned on the statistic itself, so the series' noise and its
autocorrelation are in the scale: ``z = |statistic| / sd``, two sided. The sd is at least
``floor`` (5 %) of the series' mean absolute value, so a flat line does not make every wobble
an anomaly.

**Decision rule.** A point breaches when some statistic's ``z`` is at least ``z_min`` (3) *and*
at least ``record_ratio`` (1.5) times that statistic's record: the largest ``z`` it reached
outside alerts and cooldowns, at least ``record_lag_hours`` (24 h) ago (so the run-up of an
excursion never raises its own bar), in a running maximum that halves every
``record_half_life_days`` (30 days). A statistic takes part once it has learned for
``warmup_hours`` (24 h). The rule fires on a breach outside the cooldown, then stays quiet for
``cooldown_hours`` (24 h): one alert per excursion.

**Nominal false-alarm rate.** The record rule is distribution-free. For a stationary statistic
with any continuous distribution, point ``t`` is the largest of the last ``N`` with probability
``1/N``. With ``record_ratio`` 1 and no decay, the statistic would breach about ``ln(t2/t1)``
times between points ``t1`` and ``t2``: with the logarithm of the length, not with the length.
The ratio 1.5 cuts that further: it asks for 50 % more than the largest value so far. Under
Gaussian noise, the record of a month of 5-minute points is about 3.9, so the bar is about
5.8 sd, about 7e-9 per point (two-sided): 9 statistics and 2,016 points a week give about 1e-4
false breaches a week. The halving of the record puts a floor under the rate: about one
record per statistic per 43 days (30 / ln 2) of memory when the tail is heavy. The rate
measured on the tuning series is in docs/detection.md.

Pure and bounded: the state is a ring of the last ``max(day_lags days, week_lags weeks)`` values
and a few running sums; no clock.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
BASELINES: tuple[str, ...] = ("level", "day", "week")


@dataclass(frozen=True, slots=True)
class ValueParams:
    """Thresholds and memories of :class:`ValueShift` (``window_ms``: the sampling interval)."""

    window_ms: int = 300_000
    level_hours: float = 24.0
    day_lags: int = 7
    week_lags: int = 2
    smooth_hours: tuple[float, ...] = (2.0, 12.0)
    scale_hours: float = 336.0
    z_min: float = 3.0
    record_ratio: float = 1.5
    record_half_life_days: float = 30.0
    record_lag_hours: float = 24.0
    cooldown_hours: float = 24.0
    warmup_hours: float = 24.0
    # A statistic's sd is at least this share of the series' mean absolute value.
    floor: float = 0.05


@dataclass(slots=True)
class _Stat:
    """One statistic of one baseline: its EW mean and variance, and its decayed record."""

    name: str = ""
    mean: float = 0.0
    var: float = 0.0
    n: int = 0
    record: float = 0.0
    # z of the newest points, not yet in the record (see ValueParams.record_lag_hours).
    recent: deque[float] = field(default_factory=deque)

    def z(self, value: float, floor: float) -> float:
        if self.n < 2:
            return 0.0
        return abs(value) / max(math.sqrt(self.var), floor)

    def learn(self, value: float, rate: float) -> None:
        self.n += 1
        if self.n == 1:
            self.mean = value
            return
        # A running mean and variance until the EW rate takes over: no cold-start bias.
        rate = max(rate, 1.0 / self.n)
        delta = value - self.mean
        self.mean += rate * delta
        self.var = (1.0 - rate) * (self.var + rate * delta * delta)


class ValueShift:
    """Two-sided anomaly rule for a value series (module docstring). Feed points in order."""

    def __init__(self, params: ValueParams) -> None:
        self.params = params
        p = params
        self._per_hour = max(1.0, HOUR_MS / p.window_ms)
        self._per_day = max(1, round(DAY_MS / p.window_ms))
        self._level_n = max(1, round(p.level_hours * self._per_hour))
        self._smooth_n = tuple(max(1, round(h * self._per_hour)) for h in p.smooth_hours)
        self._rate = 1.0 - 0.5 ** (1.0 / (p.scale_hours * self._per_hour))
        self._record_lag = max(1, round(p.record_lag_hours * self._per_hour))
        self._decay = 0.5 ** (1.0 / (p.record_half_life_days * 24 * self._per_hour))
        memory = max(p.day_lags * self._per_day, p.week_lags * 7 * self._per_day, self._level_n)
        self._values: deque[float] = deque(maxlen=memory)
        self._level_sum = 0.0
        self._level_in: deque[float] = deque(maxlen=self._level_n)
        longest = max((1, *self._smooth_n))
        self._residuals = {b: deque[float](maxlen=longest) for b in BASELINES}
        self._sums = {(b, n): 0.0 for b in BASELINES for n in self._smooth_n}
        self._stats = {(b, n): _Stat(f"{b}/{n}") for b in BASELINES for n in (1, *self._smooth_n)}
        self._abs_mean = 0.0
        self.points = 0
        self.cooldown_until_ms = -1
        self.last_z = 0.0
        # Which statistic fired last: "<baseline>/<points averaged>", e.g. "day/144".
        self.last_cause = ""

    def _baselines(self) -> dict[str, float]:
        values, day, out = self._values, self._per_day, {}
        if len(values) >= min(self._level_n, 10):
            out["level"] = self._level_sum / len(self._level_in)
        lagged = [
            values[-day * k] for k in range(1, self.params.day_lags + 1) if day * k <= len(values)
        ]
        if lagged:
            out["day"] = _median(lagged)
        week = 7 * day
        lagged = [
            values[-week * k]
            for k in range(1, self.params.week_lags + 1)
            if week * k <= len(values)
        ]
        if lagged:
            out["week"] = _median(lagged)
        return out

    def step(self, start_ms: int, value: float) -> bool:
        """Fold one point in; True when it fires an alert (see the decision rule)."""
        p = self.params
        cooled = start_ms >= self.cooldown_until_ms
        scored = self.score(value)
        ready = p.warmup_hours * self._per_hour
        breaching = [
            st.name
            for st, _, z in scored
            if z >= p.z_min and z >= p.record_ratio * st.record and st.n >= ready
        ]
        breach = bool(breaching)
        if breach and cooled:
            self.last_cause = breaching[0]
        fired = breach and cooled
        self.last_z = max((z for _, _, z in scored), default=0.0)
        if fired:
            self.cooldown_until_ms = start_ms + int(p.cooldown_hours * HOUR_MS)
        # Records learn outside alerts and cooldowns, ``record_lag_hours`` late: the run-up of
        # an excursion never raises the bar it has to clear.
        learn_record = cooled and not fired
        for stat, _, z in scored:
            stat.record *= self._decay
            recent = stat.recent
            if len(recent) == self._record_lag:
                stat.record = max(stat.record, recent.popleft())
            recent.append(z if learn_record and stat.n >= ready / 2 else 0.0)
        level = self._level_sum / len(self._level_in) if self._level_in else None
        self.learn(value, scored, None if learn_record else level)
        return fired

    def score(self, value: float) -> list[tuple[_Stat, float, float]]:
        """``(statistic state, statistic, z)`` of every statistic for ``value`` (residual sums
        move on; the statistics' scales do not until :meth:`learn`)."""
        floor = self.params.floor * self._abs_mean + 1e-12
        scored: list[tuple[_Stat, float, float]] = []
        for base, expected in self._baselines().items():
            residual = value - expected
            residuals = self._residuals[base]
            scored.append(self._score((base, 1), residual, floor))
            for n in self._smooth_n:
                leaving = residuals[-n] if len(residuals) >= n else 0.0
                total = self._sums[(base, n)] + residual - leaving
                self._sums[(base, n)] = total
                mean = total / min(n, len(residuals) + 1)
                scored.append(self._score((base, n), mean, floor))
            residuals.append(residual)
        return scored

    def learn(
        self,
        value: float,
        scored: list[tuple[_Stat, float, float]],
        level_value: float | None = None,
    ) -> None:
        for stat, statistic, _ in scored:
            stat.learn(statistic, self._rate)
        self._push(value, level_value)

    def _score(
        self, key: tuple[str, int], statistic: float, floor: float
    ) -> tuple[_Stat, float, float]:
        stat = self._stats[key]
        return stat, statistic, stat.z(statistic, floor)

    def _push(self, value: float, level_value: float | None = None) -> None:
        """Remember ``value``; the level baseline takes ``level_value`` (an alert's point is
        replaced by the level it broke from, so the mean of the last day does not carry the
        excursion into the day after)."""
        self._values.append(value)
        level_in = self._level_in
        if len(level_in) == self._level_n:
            self._level_sum -= level_in[0]
        entered = value if level_value is None else level_value
        level_in.append(entered)
        self._level_sum += entered
        self.points += 1
        rate = 1.0 / self.points if self.points * self._rate < 1.0 else self._rate
        self._abs_mean += rate * (abs(value) - self._abs_mean)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
