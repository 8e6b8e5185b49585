"""The whole alert path with real parts: the aggregator's collector on a /metrics endpoint,
Prometheus scraping it and evaluating the shipped rules, Alertmanager routing with the shipped
config, and the webhook receiver at the end."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client import start_http_server

from alerts.cli import render_deploy
from alerts.receiver import ReceivedAlert, ReceiverConfig, WebhookReceiver
from monitor.metrics import Metrics
from tests.alerts.webhook_helpers import spike_aggregator
from tests.deploy.services import (
    alertmanager_args,
    free_port,
    prometheus_args,
    running,
)
from tests.deploy.tools import DEPLOY, alertmanager_binary, require

pytestmark = pytest.mark.integration
TOKEN = "am-test-token"


@dataclass
class Stack:
    receiver: WebhookReceiver
    am_url: str
    rendered: Path


def _render(tmp_path: Path, receiver: WebhookReceiver, metrics_port: int, am_port: int) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    token_file = tmp_path / "webhook-token"
    token_file.write_text(TOKEN)
    out = tmp_path / "deploy"
    render_deploy(
        DEPLOY,
        out,
        {
            "FINMON_TARGET": f"127.0.0.1:{metrics_port}",
            "ALERTMANAGER_TARGET": f"127.0.0.1:{am_port}",
            # 2 s, not 1 s: the scrape timeout equals the interval, and on a loaded 2-core CI
            # machine a missed scrape would reset the rule's `for:` clock.
            "SCRAPE_INTERVAL": "2s",
            "EVALUATION_INTERVAL": "1s",
            "WEBHOOK_BASE_URL": receiver.url.rstrip("/"),
            "WEBHOOK_TOKEN_FILE": str(token_file),
            "GROUP_WAIT": "1s",
            "GROUP_INTERVAL": "1s",
            "REPEAT_INTERVAL": "1h",
        },
    )
    return out


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """Alertmanager with the shipped config, routing to a receiver that requires the token."""
    binary = alertmanager_binary()
    am_port = free_port()
    config = ReceiverConfig(bearer_token=TOKEN)
    with WebhookReceiver(config=config) as receiver:
        rendered = _render(tmp_path, receiver, free_port(), am_port)
        args = alertmanager_args(
            binary, rendered / "alertmanager" / "alertmanager.yml", tmp_path / "am", am_port
        )
        url = f"http://127.0.0.1:{am_port}"
        with running(args, f"{url}/-/ready", tmp_path / "alertmanager.log"):
            yield Stack(receiver, url, rendered)


def _post_alerts(am_url: str, alerts: list[dict[str, dict[str, str]]]) -> None:
    starts = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    body = [{**a, "startsAt": starts} for a in alerts]
    httpx.post(f"{am_url}/api/v2/alerts", json=body, timeout=5).raise_for_status()


def _wait_listed(am_url: str, alertname: str, timeout_sec: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_sec
    while time.monotonic() < deadline:
        listed = httpx.get(f"{am_url}/api/v2/alerts", timeout=5).json()
        if any(a["labels"].get("alertname") == alertname for a in listed):
            return True
        time.sleep(0.1)
    return False


def test_alertmanager_routes_by_topic_and_pipeline_down_inhibits(stack: Stack) -> None:
    sentiment = {"category": "sentiment", "rule": "negative_share_spike", "key_kind": "topic"}
    # The pipeline-down alert is active first (as when a pipeline fails, then its sentiment goes
    # stale); Alertmanager's inhibitor learns of it asynchronously, so wait until it is listed.
    down = {"alertname": "FinMonPipelineDown", "job": "finmon-b", "category": "pipeline",
            "team": "platform", "severity": "critical"}  # fmt: skip
    _post_alerts(stack.am_url, [{"labels": down}])
    assert _wait_listed(stack.am_url, "FinMonPipelineDown")
    _post_alerts(
        stack.am_url,
        [
            {"labels": {"alertname": "FinMonNegativeSentimentSpike", "job": "finmon-a",
                        "key": "Macro", "topic": "Macro", "severity": "warning", **sentiment},
             "annotations": {"summary": "spike on Macro"}},
            # Same alert on a job whose pipeline is down: muted.
            {"labels": {"alertname": "FinMonNegativeSentimentSpike", "job": "finmon-b",
                        "key": "Earnings", "topic": "Earnings", "severity": "warning",
                        **sentiment}},
        ],
    )  # fmt: skip
    receiver = stack.receiver
    assert receiver.wait_for(lambda a: len(a) >= 2, timeout_sec=30), receiver.alerts()
    # A muted alert would have been sent in the same group cycles; give it a few more.
    receiver.wait_for(lambda a: len(a) > 2, timeout_sec=4)
    paths = {(a.alertname, a.labels.get("topic", "")): a.path for a in receiver.alerts()}
    assert paths == {
        ("FinMonNegativeSentimentSpike", "Macro"): "/teams/rates-fx",
        ("FinMonPipelineDown", ""): "/teams/platform",
    }
    assert receiver.rejected == 0


@pytest.mark.slow
def test_spike_travels_from_aggregator_through_prometheus_and_alertmanager(
    stack: Stack, metrics: Metrics, tmp_path: Path
) -> None:
    prometheus = require("prometheus")
    agg, events, _ = spike_aggregator(metrics, topics=("Earnings",))
    firing = [e for e in events if e.status == "firing" and e.key == "Earnings"]
    assert firing, events
    severity = firing[0].severity
    metrics.register_collector(agg.collector())
    server, thread = start_http_server(0, addr="127.0.0.1", registry=metrics.registry)
    try:
        metrics_port = int(server.server_port)
        am_port = int(stack.am_url.rsplit(":", 1)[1])
        rendered = _render(tmp_path / "prom", stack.receiver, metrics_port, am_port)
        prom_port = free_port()
        args = prometheus_args(
            prometheus, rendered / "prometheus" / "prometheus.yml", tmp_path / "tsdb", prom_port
        )
        with running(args, f"http://127.0.0.1:{prom_port}/-/ready", tmp_path / "prometheus.log"):
            # Critical spikes go to two receivers; wait for the team route, not just the first.
            arrived = stack.receiver.wait_for(
                lambda alerts: any(
                    a.alertname == "FinMonNegativeSentimentSpike" and a.path == "/teams/equities"
                    for a in alerts
                ),
                timeout_sec=150,
            )
            diagnosis = "" if arrived else _diagnose(prom_port, stack)
    finally:
        server.shutdown()
        thread.join()
    assert arrived, diagnosis + (tmp_path / "prometheus.log").read_text()[-2000:]
    spikes = [a for a in stack.receiver.alerts() if a.alertname == "FinMonNegativeSentimentSpike"]
    _check_spike(spikes, severity)


def _diagnose(prom_port: int, stack: Stack) -> str:
    """What Prometheus and the receiver saw, for a failure message."""
    base = f"http://127.0.0.1:{prom_port}/api/v1"
    parts = [f"received: {[a.to_dict() for a in stack.receiver.alerts()]}"]
    for path in ("alerts", "targets"):
        try:
            parts.append(f"{path}: {httpx.get(f'{base}/{path}', timeout=5).text[:1500]}")
        except httpx.HTTPError as exc:
            parts.append(f"{path}: {exc!r}")
    return "\n".join(parts) + "\n"


def _check_spike(spikes: list[ReceivedAlert], severity: str) -> None:
    first = spikes[0]
    assert first.status == "firing"
    assert first.labels["topic"] == "Earnings"
    assert first.labels["severity"] == severity
    assert first.labels["job"] == "finmon"
    assert first.annotations["topic"] == "Earnings"
    assert "Earnings" in first.annotations["description"]
    assert "%" in first.annotations["description"]  # the share came from the collector
    expected = {"/teams/equities"} | ({"/teams/risk-oncall"} if severity == "critical" else set())
    assert {a.path for a in spikes} <= expected
    assert "/teams/equities" in {a.path for a in spikes}
