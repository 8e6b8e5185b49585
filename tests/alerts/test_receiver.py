"""The webhook receiver over real loopback HTTP."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from alerts.payload import build_payload, encode_payload
from alerts.receiver import ReceiverConfig, WebhookReceiver
from alerts.signing import IDEMPOTENCY_HEADER, signature_headers
from tests.alerts.webhook_helpers import SECRET, event


def _post(url: str, body: bytes, *, secret: str | None, key: str | None = None) -> httpx.Response:
    headers = signature_headers(secret, int(time.time()), body)
    if key:
        headers[IDEMPOTENCY_HEADER] = key
    return httpx.post(url, content=body, headers=headers, timeout=5)


def test_duplicates_are_dropped_and_stored_once(tmp_path: Path) -> None:
    out = tmp_path / "alerts.jsonl"
    body = encode_payload(build_payload(event()))
    key = event().idempotency_key
    with WebhookReceiver(config=ReceiverConfig(secret=SECRET, out_path=out)) as receiver:
        first = _post(receiver.url, body, secret=SECRET, key=key)
        second = _post(receiver.url, body, secret=SECRET, key=key)
        alerts = receiver.alerts()
    assert first.json() == {"accepted": 1, "duplicates": 0}
    assert second.status_code == 200 and second.json() == {"accepted": 0, "duplicates": 1}
    assert len(alerts) == 1 and alerts[0].signed
    (line,) = out.read_text().splitlines()
    assert json.loads(line)["idempotency_key"] == key


def test_bad_or_missing_signature_gets_401() -> None:
    body = encode_payload(build_payload(event()))
    with WebhookReceiver(config=ReceiverConfig(secret=SECRET)) as receiver:
        assert _post(receiver.url, body, secret="wrong").status_code == 401
        assert _post(receiver.url, body, secret=None).status_code == 401
        assert receiver.rejected == 2
        assert receiver.alerts() == []


def test_bearer_token_admits_unsigned_alertmanager_posts() -> None:
    payload = build_payload(event(), receiver="team-equities")
    body = encode_payload(payload)
    config = ReceiverConfig(secret=SECRET, bearer_token="am-token")
    with WebhookReceiver(config=config) as receiver:
        ok = httpx.post(receiver.url, content=body, headers={"Authorization": "Bearer am-token"})
        bad = httpx.post(receiver.url, content=body, headers={"Authorization": "Bearer nope"})
        again = httpx.post(receiver.url, content=body, headers={"Authorization": "Bearer am-token"})
        alerts = receiver.alerts()
    assert (ok.status_code, bad.status_code, again.status_code) == (200, 401, 200)
    assert again.json()["duplicates"] == 1
    (alert,) = alerts
    assert not alert.signed
    assert alert.idempotency_key == f"{payload['alerts'][0]['fingerprint']}:" + str(
        payload["alerts"][0]["startsAt"]
    )


def test_non_json_is_rejected_with_400() -> None:
    with WebhookReceiver() as receiver:
        response = httpx.post(receiver.url, content=b"not json")
    assert response.status_code == 400


def test_same_alertmanager_alert_on_two_team_paths_is_kept_for_each() -> None:
    from alerts.receiver import ReceiverConfig, WebhookReceiver

    body = {
        "version": "4", "status": "firing",
        "alerts": [{"status": "firing", "labels": {"alertname": "X"}, "annotations": {},
                    "fingerprint": "abc", "startsAt": "2026-11-28T00:00:00Z"}],
    }  # fmt: skip
    with WebhookReceiver(config=ReceiverConfig()) as receiver:
        raw = json.dumps(body).encode()
        for path in ("/teams/risk-oncall", "/teams/equities", "/teams/equities"):
            receiver.handle(path, {}, raw)
        paths = sorted(a.path for a in receiver.alerts())
        assert paths == ["/teams/equities", "/teams/risk-oncall"]
        assert receiver.duplicates == 1
