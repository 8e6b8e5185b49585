from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from monitor.aggregate.backtest import BacktestInputError, backtest_series, value_series_alerts
from monitor.aggregate.labelled import evaluate_labelled, rolling_z_alerts, score_series
from monitor.settings import AggregateSettings

H = 3_600_000


def test_scoring_counts_found_windows_and_false_alarms_after_probation() -> None:
    times = list(range(0, 100 * H, H))
    score = score_series("s", times, [5 * H, 40 * H, 41 * H, 70 * H], [(39 * H, 45 * H)])
    # 5 h is in the probation (first 15 %); 40 h and 41 h inside the window; 70 h is false
    assert (score.found, score.false_alarms, score.windows) == (1, 1, 1)


def test_rolling_z_fires_once_per_excursion() -> None:
    values = [10.0 + (i % 3) for i in range(100)]
    values[60:63] = [50.0, 50.0, 50.0]
    fired = rolling_z_alerts(list(range(100)), values, lookback=30, z=3.0)
    assert fired == [60]


def test_a_labelled_folder_is_scored_for_every_detector(tmp_path: Path) -> None:
    start = pd.Timestamp("2026-03-02T00:00:00Z")
    rows = [
        {
            "timestamp": (start + pd.Timedelta(minutes=5 * i)).strftime("%Y-%m-%d %H:%M:%S"),
            "value": 400 if 1500 <= i < 1510 else 60 + (i % 5),
        }
        for i in range(2016)
    ]
    (tmp_path / "data" / "cat").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(tmp_path / "data" / "cat" / "s.csv", index=False)
    window = [[rows[1490]["timestamp"], rows[1530]["timestamp"]]]
    (tmp_path / "combined_windows.json").write_text(json.dumps({"cat/s.csv": window}))
    report = evaluate_labelled(tmp_path, AggregateSettings())
    assert report["finmon_volume"]["recall"] == 1.0
    assert report["finmon_volume"]["false_alarms"] == 0
    assert report["rolling_z"]["found"] == 1
    assert (report["finmon_values"]["found"], report["finmon_values"]["false_alarms"]) == (1, 0)
    assert set(report["series"][0]) == {"finmon_volume", "finmon_values", "rolling_z"}
    assert abs(report["finmon_volume"]["series_weeks"] - 1.0) < 0.01


def test_the_value_rule_sees_a_drop_that_the_count_rule_cannot(tmp_path: Path) -> None:
    """A level drop (a feed or a sensor failing) is no surge: only the two-sided value rule
    fires on it."""
    start = pd.Timestamp("2026-03-02T00:00:00Z")
    frame = pd.DataFrame(
        {
            "timestamp": [start + pd.Timedelta(minutes=5 * i) for i in range(4032)],
            "value": [20.0 if 3000 <= i < 3100 else 60.0 + (i % 7) for i in range(4032)],
        }
    )
    fired = value_series_alerts(frame)
    drop_ms = int((start + pd.Timedelta(minutes=5 * 3000)).value // 1_000_000)
    assert fired == [drop_ms]
    counted = backtest_series(frame, AggregateSettings())
    assert not counted.spans


def test_a_folder_without_labels_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BacktestInputError, match="labelled windows"):
        evaluate_labelled(tmp_path, AggregateSettings())
