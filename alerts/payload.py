"""Webhook bodies in Alertmanager's webhook format (version 4), plus FinMon's headlines.

A receiver written for Alertmanager reads a FinMon notification unchanged. FinMon adds two
top-level fields Alertmanager does not send: ``idempotencyKey`` (rule, key and first firing window,
shared by the firing and the resolved message) and ``headlines`` (the items with the highest
negative probability, so an analyst can act without opening a dashboard).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from alerts.events import AlertEvent, Headline

PAYLOAD_VERSION = "4"
DIRECT_RECEIVER = "finmon-direct"
# Alertmanager's "not yet resolved" endsAt.
ZERO_TIME = "0001-01-01T00:00:00Z"
# Alert names shared with deploy/prometheus/rules/finmon-alerts.yml, so both paths route alike.
ALERT_NAMES: Mapping[str, str] = {
    "negative_share_spike": "FinMonNegativeSentimentSpike",
    "volume_surge": "FinMonVolumeSurge",
}
RUNBOOK = "docs/alerting.md#runbook-sentiment-alerts"


def alert_name(rule: str) -> str:
    """The ``alertname`` label for a detector rule (``volume_surge`` -> ``FinMonVolumeSurge``)."""
    return ALERT_NAMES.get(rule) or "FinMon" + "".join(p.title() for p in rule.split("_"))


def rfc3339_ms(epoch_ms: int) -> str:
    """Epoch milliseconds as RFC 3339 UTC with a ``Z`` suffix."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alert_labels(event: AlertEvent) -> dict[str, str]:
    """Identifying labels; equal for the firing and resolved message of one alert."""
    labels = {
        "alertname": alert_name(event.rule),
        "rule": event.rule,
        "key_kind": event.key_kind,
        "key": event.key,
        "severity": event.severity,
        "category": "sentiment",
        "source": "finmon",
    }
    if event.key_kind in ("topic", "ticker"):
        labels[event.key_kind] = event.key
    labels.update(event.labels)
    return labels


def alert_annotations(event: AlertEvent) -> dict[str, str]:
    window = f"{rfc3339_ms(event.window_start_ms)} .. {rfc3339_ms(event.window_end_ms)}"
    return {
        "summary": event.summary,
        "description": (
            f"{event.rule} on {event.key_kind}={event.key}: value {event.value:.3f} vs "
            f"baseline {event.baseline:.3f} (score {event.score:.2f}, {event.volume} items) "
            f"in window {window}"
        ),
        "value": f"{event.value:.6g}",
        "baseline": f"{event.baseline:.6g}",
        "score": f"{event.score:.6g}",
        "volume": str(event.volume),
        "runbook": RUNBOOK,
    }


def fingerprint(labels: Mapping[str, str]) -> str:
    """16 hex digits identifying a label set (Alertmanager's fingerprint has the same shape)."""
    canonical = json.dumps(sorted(labels.items()), separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def top_headlines(headlines: tuple[Headline, ...], limit: int) -> list[dict[str, Any]]:
    """The ``limit`` headlines with the highest negative probability, most negative first."""
    ranked = sorted(headlines, key=lambda h: (-h.negative_prob, h.id))[:limit]
    return [
        {
            "id": h.id,
            "headline": h.headline,
            "negativeProb": round(h.negative_prob, 4),
            "publishedAt": rfc3339_ms(h.published_at_ms),
        }
        for h in ranked
    ]


def _generator_url(external_url: str, event: AlertEvent) -> str:
    if not external_url:
        return ""
    return f"{external_url.rstrip('/')}/alerts?key={quote(event.idempotency_key, safe='')}"


def build_payload(
    event: AlertEvent,
    *,
    external_url: str = "",
    top_n: int = 5,
    receiver: str = DIRECT_RECEIVER,
) -> dict[str, Any]:
    """The JSON object for one alert transition (one alert per notification)."""
    labels = alert_labels(event)
    annotations = alert_annotations(event)
    group_labels = {"alertname": labels["alertname"], "key": event.key}
    alert = {
        "status": event.status,
        "labels": labels,
        "annotations": annotations,
        "startsAt": rfc3339_ms(event.window_start_ms),
        "endsAt": rfc3339_ms(event.at_ms) if event.status == "resolved" else ZERO_TIME,
        "generatorURL": _generator_url(external_url, event),
        "fingerprint": fingerprint(labels),
    }
    group_key = "{}:{" + ", ".join(f'{k}="{v}"' for k, v in sorted(group_labels.items())) + "}"
    return {
        "version": PAYLOAD_VERSION,
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": event.status,
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": labels,
        "commonAnnotations": annotations,
        "externalURL": external_url,
        "alerts": [alert],
        "idempotencyKey": event.idempotency_key,
        "headlines": top_headlines(event.headlines, top_n),
    }


def encode_payload(payload: Mapping[str, Any]) -> bytes:
    """Compact, key-sorted UTF-8 JSON: the exact bytes that are signed and sent."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
