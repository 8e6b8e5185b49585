"""Labelled anomaly series (the Numenta Anomaly Benchmark layout) through FinMon's rules.

A folder holds ``data/<category>/<name>.csv`` (``timestamp,value``) and ``combined_windows.json``
(``{"<category>/<name>.csv": [[start, end], ...]}``). Each series runs, in one pass, through
three detectors: :func:`~monitor.aggregate.backtest.backtest_series` (the count rule for news
volume, one row per window), the value-series rule :class:`alerts.values.ValueShift` (two
sided, for series that are not counts), and a rolling z-score reference. Scoring, per NAB's
convention:

* a labelled window is found when at least one alert fires inside it;
* an alert firing outside every window is a false alarm;
* alerts in the first ``probation`` share of a series (NAB: 15 %) count for nothing, while the
  detectors learn.

False alarms are reported per series-week (the summed length of the series in weeks).
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from alerts.values import ValueParams
from monitor.aggregate.backtest import (
    BacktestInputError,
    backtest_series,
    read_frame,
    times_ms,
    value_series_alerts,
)
from monitor.settings import AggregateSettings

WEEK_MS = 7 * 86_400_000
WINDOWS_FILE = "combined_windows.json"


@dataclass(frozen=True, slots=True)
class SeriesScore:
    """One series: labelled windows found, false alarms, length in weeks."""

    name: str
    windows: int
    found: int
    false_alarms: int
    weeks: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "series": self.name,
            "windows": self.windows,
            "found": self.found,
            "false_alarms": self.false_alarms,
            "weeks": round(self.weeks, 3),
        }


def score_series(
    name: str,
    times_ms: Sequence[int],
    alerts_ms: Sequence[int],
    windows: Sequence[tuple[int, int]],
    probation: float = 0.15,
) -> SeriesScore:
    """Match firing times to labelled ``[start, end]`` windows (see module docstring)."""
    first, last = times_ms[0], times_ms[-1]
    scored_from = first + int(probation * (last - first))
    counted = [t for t in alerts_ms if t >= scored_from]
    found = sum(any(a <= t <= b for t in counted) for a, b in windows)
    false_alarms = sum(not any(a <= t <= b for a, b in windows) for t in counted)
    return SeriesScore(name, len(windows), found, false_alarms, (last - first) / WEEK_MS)


def rolling_z_alerts(
    times_ms: Sequence[int], values: Sequence[float], lookback: int, z: float
) -> list[int]:
    """Reference: fire when a value is ``z`` rolling standard deviations from the mean of the
    previous ``lookback`` values (either side), once per excursion."""
    recent: deque[float] = deque(maxlen=lookback)
    total = total_sq = 0.0
    fired: list[int] = []
    outside = False
    for t, v in zip(times_ms, values, strict=True):
        score = 0.0
        if len(recent) >= min(lookback, 30):
            mean = total / len(recent)
            std = math.sqrt(max(total_sq / len(recent) - mean * mean, 0.0))
            score = abs(v - mean) / max(std, 1e-9)
        if score >= z and not outside:
            fired.append(t)
        outside = score >= z
        if len(recent) == lookback:
            old = recent[0]
            total, total_sq = total - old, total_sq - old * old
        recent.append(v)
        total, total_sq = total + v, total_sq + v * v
    return fired


def _label_ms(stamp: str) -> int:
    return int(pd.Timestamp(stamp, tz="UTC").value // 1_000_000)


def evaluate_labelled(
    root: Path,
    settings: AggregateSettings,
    *,
    z: float = 3.0,
    lookback_windows: int = 288,
    value_params: ValueParams | None = None,
) -> dict[str, Any]:
    """Per-series and total scores of the count rule, the value rule (``value_params``; None:
    the defaults) and the rolling z-score on ``root``."""
    labels_path = root / WINDOWS_FILE
    if not labels_path.is_file():
        raise BacktestInputError(str(labels_path), "no labelled windows file")
    labels: dict[str, list[list[str]]] = json.loads(labels_path.read_text())
    ours: list[SeriesScore] = []
    shifts: list[SeriesScore] = []
    reference: list[SeriesScore] = []
    for name in sorted(labels):
        frame = read_frame(root / "data" / name)
        result = backtest_series(frame, settings)
        times = times_ms(frame["timestamp"], name, "timestamp")
        values = [float(v) for v in frame["value"]]
        windows = [(_label_ms(a), _label_ms(b)) for a, b in labels[name]]
        fired = [s.start_ms + result.window_ms for s in result.spans]
        ours.append(score_series(name, times, fired, windows))
        shifts.append(score_series(name, times, value_series_alerts(frame, value_params), windows))
        naive = rolling_z_alerts(times, values, lookback_windows, z)
        reference.append(score_series(name, times, naive, windows))
    return {
        "finmon_volume": _totals(ours),
        "finmon_values": _totals(shifts),
        "rolling_z": _totals(reference) | {"z": z, "lookback_windows": lookback_windows},
        "series": [
            {"finmon_volume": a.as_dict(), "finmon_values": v.as_dict(), "rolling_z": b.as_dict()}
            for a, v, b in zip(ours, shifts, reference, strict=True)
        ],
    }


def _totals(scores: Sequence[SeriesScore]) -> dict[str, Any]:
    windows = sum(s.windows for s in scores)
    weeks = sum(s.weeks for s in scores)
    false_alarms = sum(s.false_alarms for s in scores)
    return {
        "series": len(scores),
        "windows": windows,
        "found": sum(s.found for s in scores),
        "recall": round(sum(s.found for s in scores) / windows, 4) if windows else 1.0,
        "false_alarms": false_alarms,
        "series_weeks": round(weeks, 2),
        "false_alarms_per_series_week": round(false_alarms / weeks, 3) if weeks else 0.0,
    }
