from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from monitor.aggregate.backtest import (
    BacktestInputError,
    format_json,
    format_table,
    run_backtest,
)
from monitor.settings import AggregateSettings

START = pd.Timestamp("2026-03-02T09:00:00Z")


def crafted_records() -> pd.DataFrame:
    """30 items a minute: 20 % negative, except minutes 20-22 (80 %, tickers ACME)."""
    rows = []
    for minute in range(35):
        spike = 20 <= minute < 23
        for i in range(30):
            negative = i < (24 if spike else 6)
            rows.append(
                {
                    "id": f"{minute}-{i}",
                    "published_at": (START + pd.Timedelta(seconds=minute * 60 + i * 2)).isoformat(),
                    "topic": "Earnings",
                    "sentiment": "negative" if negative else "neutral",
                    "tickers": "ACME" if spike else "",
                    "headline": f"story {minute}-{i}",
                }
            )
    return pd.DataFrame(rows)


def test_backtest_reports_the_crafted_spike(tmp_path: Path) -> None:
    path = tmp_path / "scored.csv"
    crafted_records().to_csv(path, index=False)
    result = run_backtest(path, AggregateSettings())
    spikes = [s for s in result.spans if s.rule == "negative_share_spike"]
    keys = {(s.key_kind, s.key) for s in spikes}
    # One topic drives the overall key: its overall alert is held back as a duplicate.
    assert keys == {("topic", "Earnings"), ("ticker", "ACME")}
    topic = next(s for s in spikes if s.key_kind == "topic")
    # fires at the close of minute 21 (2 consecutive breaching windows), resolves later
    assert topic.start_ms == int((START + pd.Timedelta(minutes=21)).timestamp() * 1000)
    assert topic.end_ms is not None and topic.end_ms > topic.start_ms
    assert topic.peak_score > 8
    assert result.items == 35 * 30 and result.late_items == 0
    table = format_table(result)
    assert "2026-03-02T09:21:00Z" in table and "topic=Earnings" in table
    lines = [json.loads(line) for line in format_json(result).splitlines()]
    assert {line["key"] for line in lines} >= {"Earnings", "ACME"}
    assert all(
        set(line) == {"rule", "key_kind", "key", "severity", "start", "end", "peak_score"}
        for line in lines
    )


def test_jsonl_and_parquet_give_the_same_alerts(tmp_path: Path) -> None:
    frame = crafted_records()
    frame.to_json(tmp_path / "scored.jsonl", orient="records", lines=True)
    frame.to_parquet(tmp_path / "scored.parquet")
    jsonl = run_backtest(tmp_path / "scored.jsonl", AggregateSettings())
    parquet = run_backtest(tmp_path / "scored.parquet", AggregateSettings())
    assert jsonl.spans == parquet.spans and len(jsonl.spans) == 2


def test_value_series_runs_the_volume_rule(tmp_path: Path) -> None:
    rows = [
        {
            "timestamp": (START + pd.Timedelta(minutes=5 * i)).isoformat(),
            "value": 400 if 50 <= i < 53 else 60 + (i % 5),
        }
        for i in range(80)
    ]
    path = tmp_path / "counts.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    result = run_backtest(path, AggregateSettings())
    assert result.mode == "series" and result.window_ms == 300_000
    assert [(s.rule, s.severity) for s in result.spans] == [("volume_surge", "critical")]
    # consecutive_windows=2: fires when the second surging window (i=51) closes
    assert result.spans[0].start_ms == int((START + pd.Timedelta(minutes=255)).timestamp() * 1000)


def test_missing_columns_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    pd.DataFrame([{"published_at": START.isoformat(), "topic": "x"}]).to_csv(path, index=False)
    with pytest.raises(BacktestInputError, match="sentiment"):
        run_backtest(path, AggregateSettings())


def test_plot_is_written(tmp_path: Path) -> None:
    from monitor.aggregate.plot import plot_backtest

    path = tmp_path / "scored.csv"
    crafted_records().to_csv(path, index=False)
    out = plot_backtest(run_backtest(path, AggregateSettings()), tmp_path / "plot.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
