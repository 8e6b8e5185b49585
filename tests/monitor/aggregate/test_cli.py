from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import typer
from typer.testing import CliRunner

from monitor.aggregate.cli import register
from tests.monitor.aggregate.test_backtest import crafted_records


def make_app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_backtest_command_prints_json_and_writes_plot(tmp_path: Path) -> None:
    path = tmp_path / "scored.csv"
    crafted_records().to_csv(path, index=False)
    config = tmp_path / "finmon.yaml"
    config.write_text("aggregate:\n  alert_key_kinds: [topic]\n", encoding="utf-8")
    out = tmp_path / "alerts.png"
    result = CliRunner().invoke(
        make_app(),
        ["backtest", "--input", str(path), "--config", str(config), "--json", "--plot", str(out)],
    )
    assert result.exit_code == 0, result.output
    alerts = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [(a["key_kind"], a["key"], a["start"]) for a in alerts] == [
        ("topic", "Earnings", "2026-03-02T09:21:00Z")
    ]
    assert out.stat().st_size > 0


def test_backtest_command_fails_cleanly_on_a_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(make_app(), ["backtest", "--input", str(tmp_path / "no.csv")])
    assert result.exit_code == 2
    assert "file not found" in result.output


def test_backtest_values_runs_the_two_sided_value_rule_on_a_series(tmp_path: Path) -> None:
    start = pd.Timestamp("2026-03-02T00:00:00Z")
    frame = pd.DataFrame(
        {
            "timestamp": [start + pd.Timedelta(minutes=5 * i) for i in range(4032)],
            "value": [20.0 if 3000 <= i < 3100 else 60.0 + (i % 7) for i in range(4032)],
        }
    )
    path = tmp_path / "series.csv"
    frame.to_csv(path, index=False)
    result = CliRunner().invoke(
        make_app(), ["backtest", "--input", str(path), "--values", "--json"]
    )
    assert result.exit_code == 0, result.output
    alerts = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [(a["rule"], a["start"]) for a in alerts] == [("value_shift", "2026-03-12T10:00:00Z")]
