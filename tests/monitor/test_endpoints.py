"""The HTTP endpoints on a real loopback socket: metrics, health JSON, the token-guarded reload."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from monitor.endpoints import OpsServer, ReloadAnswer, Routes
from monitor.health import Health
from monitor.metrics import Metrics
from tests.http_helpers import call as _call

TOKEN = "s3cret-token"


@pytest.fixture
def server(metrics: Metrics) -> Iterator[tuple[OpsServer, Health, list[str]]]:
    health = Health(stall_after_ms=60_000)
    calls: list[str] = []

    def reload() -> ReloadAnswer:
        calls.append("reload")
        return ReloadAnswer(len(calls) == 1, {"outcome": "swapped" if len(calls) == 1 else "no"})

    ops = OpsServer(Routes(metrics.registry, health, reload, TOKEN), "127.0.0.1", 0)
    ops.start()
    yield ops, health, calls
    ops.stop()


def test_health_answers_503_with_reasons_then_200(server, metrics: Metrics) -> None:
    ops, health, _ = server
    ready = health.condition("model", "the model is not warmed yet")
    health.probe("classify").beat()
    status, body = _call(ops.port, "/readyz")
    assert status == 503
    assert json.loads(body) == {
        "status": "fail",
        "reasons": {"model": "the model is not warmed yet"},
    }
    ready.set(True)
    assert _call(ops.port, "/readyz")[0] == 200
    assert _call(ops.port, "/healthz") == (200, '{"reasons": {}, "status": "ok"}\n')
    metrics.up.labels("classify").set(1)
    assert 'finmon_up{role="classify"} 1.0' in _call(ops.port, "/metrics")[1]


def test_reload_needs_the_token(server) -> None:
    ops, _, calls = server
    assert _call(ops.port, "/admin/reload", "POST")[0] == 403
    assert _call(ops.port, "/admin/reload", "POST", token="wrong")[0] == 403
    assert calls == []
    status, body = _call(ops.port, "/admin/reload", "POST", token=TOKEN)
    assert (status, json.loads(body)["outcome"]) == (200, "swapped")
    assert _call(ops.port, "/admin/reload", "POST", token=TOKEN)[0] == 422
    assert _call(ops.port, "/nothing")[0] == 404


def test_without_a_configured_token_reload_is_refused(metrics: Metrics) -> None:
    ops = OpsServer(Routes(metrics.registry, Health()), "127.0.0.1", 0)
    ops.start()
    try:
        assert _call(ops.port, "/admin/reload", "POST", token="")[0] == 403
    finally:
        ops.stop()
