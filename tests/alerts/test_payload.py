from __future__ import annotations

import json

from alerts.payload import (
    ZERO_TIME,
    alert_name,
    build_payload,
    encode_payload,
    rfc3339_ms,
)
from tests.alerts.webhook_helpers import event

V4_FIELDS = {
    "version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
    "commonLabels", "commonAnnotations", "externalURL", "alerts",
}  # fmt: skip
ALERT_FIELDS = {
    "status",
    "labels",
    "annotations",
    "startsAt",
    "endsAt",
    "generatorURL",
    "fingerprint",
}


def test_firing_payload_has_every_alertmanager_v4_field() -> None:
    payload = build_payload(event(), external_url="http://monitor.local:9108", top_n=2)
    assert payload.keys() >= V4_FIELDS
    assert payload["version"] == "4"
    assert payload["status"] == "firing"
    (alert,) = payload["alerts"]
    assert set(alert) == ALERT_FIELDS
    assert alert["labels"]["alertname"] == "FinMonNegativeSentimentSpike"
    assert alert["labels"]["topic"] == "Earnings"
    assert alert["labels"]["severity"] == "warning"
    assert alert["endsAt"] == ZERO_TIME
    assert alert["startsAt"] == "2023-11-14T22:14:00.000Z"
    assert alert["generatorURL"].startswith("http://monitor.local:9108/alerts?key=")
    assert payload["idempotencyKey"] == "negative_share_spike:topic=Earnings:1700000040000"
    assert {"summary", "description", "runbook"} <= alert["annotations"].keys()


def test_headlines_are_the_most_negative_first_capped() -> None:
    payload = build_payload(event(headlines=4), top_n=2)
    probs = [h["negativeProb"] for h in payload["headlines"]]
    assert probs == [0.8, 0.7]
    assert payload["headlines"][0]["headline"] == "Earnings headline 3"


def test_resolved_shares_fingerprint_and_sets_ends_at() -> None:
    firing = build_payload(event())["alerts"][0]
    resolved_event = event(status="resolved")
    resolved = build_payload(resolved_event)["alerts"][0]
    assert resolved["status"] == "resolved"
    assert resolved["fingerprint"] == firing["fingerprint"]
    assert resolved["endsAt"] == rfc3339_ms(resolved_event.at_ms)


def test_different_keys_have_different_fingerprints() -> None:
    a = build_payload(event("Earnings"))["alerts"][0]["fingerprint"]
    b = build_payload(event("Macro"))["alerts"][0]["fingerprint"]
    assert a != b


def test_encoding_is_deterministic_json() -> None:
    payload = build_payload(event())
    assert encode_payload(payload) == encode_payload(json.loads(encode_payload(payload)))


def test_unknown_rules_get_a_camel_case_name() -> None:
    assert alert_name("volume_surge") == "FinMonVolumeSurge"
    assert alert_name("price_gap") == "FinMonPriceGap"
