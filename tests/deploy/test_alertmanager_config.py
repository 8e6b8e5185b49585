"""The shipped Alertmanager config: valid, and routes by topic and severity (amtool)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from alerts.cli import render_deploy
from tests.deploy.tools import DEPLOY, require


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deploy")
    render_deploy(DEPLOY, out, {"WEBHOOK_BASE_URL": "http://127.0.0.1:1"})
    return out / "alertmanager" / "alertmanager.yml"


def test_config_is_valid(config: Path) -> None:
    amtool = require("amtool")
    result = subprocess.run(
        [amtool, "check-config", str(config)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "http://127.0.0.1:1/teams/equities" in config.read_text()


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["category=sentiment", "topic=Fed | Central Banks", "severity=warning"], "rates-fx"),
        (["category=sentiment", "topic=Earnings", "severity=warning"], "equities"),
        (["category=sentiment", "topic=Earnings", "severity=critical"], "risk-oncall,equities"),
        (["category=sentiment", "key_kind=ticker", "ticker=AAPL"], "equities"),
        (["category=sentiment", "topic=Energy | Oil"], "commodities"),
        (["category=sentiment", "topic=Legal | Regulation"], "compliance"),
        (["category=sentiment", "topic=Financials"], "risk-desk"),
        # Regex anchoring: a partial topic name is not a desk's topic.
        (["category=sentiment", "topic=Fed"], "risk-desk"),
        (["category=pipeline", "alertname=FinMonPipelineDown", "severity=critical"], "platform"),
    ],
)
def test_routes(config: Path, labels: list[str], receivers: str) -> None:
    amtool = require("amtool")
    result = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={config}", *labels],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout.strip() == receivers, result.stderr
