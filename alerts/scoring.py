"""Score alerts against known injections: precision, recall, detection delay, false alarms.

An alert matches an injection of its kind on the same key when it fires in a window from the
injection's first window up to ``grace_windows`` after its last. Detection delay is the firing
window's index counted from the injection's first window (0: it fired when the first anomalous
window closed). Alerts that match nothing are false alarms.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from alerts.events import AlertEvent
from alerts.scenario import MARKET_KEY, Injection


@dataclass(frozen=True, slots=True)
class Score:
    """Detection quality over ``keys`` keys and ``days`` simulated days."""

    alerts: int
    injections: int
    detected: int
    false_alarms: int
    delays_windows: tuple[int, ...]
    days: float
    keys: int
    false_alarms_by_key: tuple[tuple[str, int], ...] = ()

    @property
    def precision(self) -> float:
        return (self.alerts - self.false_alarms) / self.alerts if self.alerts else 1.0

    @property
    def recall(self) -> float:
        return self.detected / self.injections if self.injections else 1.0

    @property
    def median_delay_windows(self) -> float:
        return statistics.median(self.delays_windows) if self.delays_windows else float("nan")

    @property
    def false_alarms_per_key_week(self) -> float:
        return self.false_alarms / (self.keys * self.days / 7) if self.keys and self.days else 0.0

    @property
    def max_false_alarms_per_key(self) -> int:
        return max((n for _, n in self.false_alarms_by_key), default=0)

    @property
    def keys_over_one_false_alarm(self) -> int:
        return sum(1 for _, n in self.false_alarms_by_key if n > 1)

    def as_dict(self) -> dict[str, float | int]:
        return {
            "alerts": self.alerts,
            "injections": self.injections,
            "detected": self.detected,
            "false_alarms": self.false_alarms,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "median_delay_windows": self.median_delay_windows,
            "false_alarms_per_key_week": round(self.false_alarms_per_key_week, 3),
            "max_false_alarms_one_key": self.max_false_alarms_per_key,
            "keys_with_over_one_false_alarm": self.keys_over_one_false_alarm,
        }


def score_alerts(
    alerts: Iterable[AlertEvent],
    injections: Sequence[Injection],
    *,
    rule: str,
    kind: str,
    window_ms: int,
    days: float,
    keys: int,
    grace_windows: int = 1,
) -> Score:
    """Match the firing alerts of ``rule`` to the injections of ``kind`` (see module doc)."""
    fired = [a for a in alerts if a.status == "firing" and a.rule == rule]
    targets = [i for i in injections if i.kind == kind]
    delays: dict[int, int] = {}
    by_key: dict[str, int] = {}
    for alert in fired:
        hit = _match(alert, targets, window_ms, grace_windows)
        if hit is None:
            by_key[alert.key] = by_key.get(alert.key, 0) + 1
        elif hit not in delays:
            delays[hit] = (alert.window_start_ms - targets[hit].start_ms) // window_ms
    return Score(
        alerts=len(fired),
        injections=len(targets),
        detected=len(delays),
        false_alarms=sum(by_key.values()),
        delays_windows=tuple(delays.values()),
        days=days,
        keys=keys,
        false_alarms_by_key=tuple(sorted(by_key.items())),
    )


def _match(
    alert: AlertEvent, targets: Sequence[Injection], window_ms: int, grace_windows: int
) -> int | None:
    for index, injection in enumerate(targets):
        if injection.topic != alert.key:
            continue
        if (
            injection.start_ms
            <= alert.window_start_ms
            < injection.end_ms + grace_windows * (window_ms)
        ):
            return index
    return None


def covers(injection: Injection, key: str) -> bool:
    """Whether an injection applies to ``key``: its own topic, or every key of its week for a
    market-wide one (topic ``*`` or ``<prefix>/*``)."""
    if injection.topic == key:
        return True
    return injection.topic.endswith(MARKET_KEY) and key.startswith(injection.topic[:-1])


def _during(alert: AlertEvent, injection: Injection, window_ms: int, grace_windows: int) -> bool:
    end = injection.end_ms + grace_windows * window_ms
    return covers(injection, alert.key) and injection.start_ms <= alert.window_start_ms < end


def outside(
    alerts: Iterable[AlertEvent],
    injections: Sequence[Injection],
    *,
    window_ms: int,
    grace_windows: int,
) -> list[AlertEvent]:
    """The alerts that fire outside every given injection (scored elsewhere)."""
    return [
        a for a in alerts if not any(_during(a, i, window_ms, grace_windows) for i in injections)
    ]


def alerts_per_injection(
    alerts: Iterable[AlertEvent],
    injections: Sequence[Injection],
    *,
    window_ms: int,
    grace_windows: int,
) -> list[int]:
    """Firing alerts (any rule) during each injection, up to ``grace_windows`` after its end."""
    fired = [a for a in alerts if a.status == "firing"]
    return [sum(_during(a, i, window_ms, grace_windows) for a in fired) for i in injections]
