"""The whole `all` role on the real broker: classify -> windows -> spike -> signed webhook."""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from alerts.receiver import ReceiverConfig, WebhookReceiver
from monitor.broker import EmbeddedBroker, free_port
from monitor.daemon import Daemon
from monitor.settings import Settings
from tests.headlines import own_story
from tests.kafka_helpers import drain, news, produce, unique_kafka_settings
from tests.keyword_classifier import KeywordClassifier

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SECRET = "e2e-secret"
TOPICS = ("oil output steady", "earnings season opens", "fed speakers due", "stocks flat")
MALFORMED = (b"{oops", b'{"headline": "no id"}', b'{"id": "x", "headline": ""}', b"\xff", b"[]")
WINDOW_MS = 2_000


def _settings(bootstrap: str, receiver_url: str, state_dir: Path) -> Settings:
    return Settings(
        kafka=unique_kafka_settings(bootstrap),
        aggregate={
            "window_ms": WINDOW_MS,
            "allowed_lateness_ms": 2_000,
            "idle_close_ms": 3_000,
            "min_volume": 20,
            "alert_key_kinds": ("topic",),
        },
        alerts={
            "webhook_urls": (receiver_url + "risk",),
            "webhook_secret": SECRET,
            "backoff_initial_sec": 0.2,
        },
        metrics={"port": free_port()},
        state={"dir": str(state_dir)},
    )


def _feed(bootstrap: str, topic: str, start: int, count: int, seconds: float) -> list[str]:
    """``count`` neutral items spread over ``seconds``, with ``published_at`` = now."""
    ids = []
    per_step = max(1, count // int(seconds * 4))
    for i in range(start, start + count, per_step):
        batch = range(i, min(i + per_step, start + count))
        now = _now()
        produce(
            bootstrap,
            topic,
            (news(j, headline=own_story(TOPICS[j % 4], j), published_at=now) for j in batch),
        )
        ids += [f"n-{j}" for j in batch]
        time.sleep(0.25)
    return ids


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def _value(text: str, prefix: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )


def _wait_until_aggregated(port: int, items: int, timeout_sec: float) -> None:
    """Until the aggregator has counted ``items`` (windowed or late), or fail."""
    deadline = time.monotonic() + timeout_sec
    while time.monotonic() < deadline:
        text = _scrape(port)
        seen = _value(text, "finmon_aggregate_items_total{")
        if seen + _value(text, "finmon_aggregate_late_items_total{") >= items:
            return
        time.sleep(0.2)
    pytest.fail(f"the aggregator counted fewer than {items} items in {timeout_sec} s")


def test_burst_makes_exactly_one_alert_and_counters_match(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    bs = broker.bootstrap_servers
    with WebhookReceiver(config=ReceiverConfig(secret=SECRET)) as receiver:
        settings = _settings(bs, receiver.url, tmp_path / "state")
        daemon = Daemon.from_settings(settings, classifier=KeywordClassifier())
        daemon.start()
        try:
            raw = settings.kafka.raw_topic
            # One item through both consumer groups first: group joins take seconds on a busy
            # CPU, and items stamped before the aggregator consumes would only count as late.
            produce(bs, raw, [news(5000, headline=TOPICS[3], published_at=_now())])
            _wait_until_aggregated(daemon.metrics_port or 0, 1, 60.0)
            ids = ["n-5000", *_feed(bs, raw, 0, 250, 6.0)]
            produce(bs, raw, (MALFORMED[i % 5] for i in range(50)))
            now = _now()
            produce(
                bs,
                raw,
                (
                    news(
                        1000 + i,
                        headline=own_story("Oil prices plunge as demand collapses", 1000 + i),
                        published_at=now,
                    )
                    for i in range(60)
                ),
            )
            ids += [f"n-{1000 + i}" for i in range(60)]
            ids += _feed(bs, raw, 250, 250, 8.0)
            fired = receiver.wait_for(lambda a: any(x.status == "firing" for x in a), 30)
            resolved = receiver.wait_for(lambda a: any(x.status == "resolved" for x in a), 40)
            metrics_text = _scrape(daemon.metrics_port or 0)
        finally:
            daemon.stop()
    alerts = receiver.alerts()
    firing = [a for a in alerts if a.status == "firing"]
    assert fired and resolved, [a.to_dict() for a in alerts]
    assert len(firing) == 1
    assert firing[0].labels["topic"] == "Energy | Oil"
    assert firing[0].labels["alertname"] == "FinMonNegativeSentimentSpike"
    assert firing[0].signed
    assert any("plunge" in h.get("headline", "") for h in firing[0].headlines)
    assert _value(metrics_text, "finmon_alerts_active{") == 0
    scored = drain(
        bs,
        settings.kafka.scored_topic,
        lambda rs: {json.loads(r.value)["id"] for r in rs} >= set(ids),
        30,
    )
    assert {json.loads(r.value)["id"] for r in scored} == set(ids)
    assert _value(metrics_text, "finmon_ingest_dlq_messages_total{") == 50
    assert _value(metrics_text, "finmon_classify_items_total{") == len(ids)
    # Every scored item is either windowed or reported late; none vanishes.
    windowed = _value(metrics_text, "finmon_aggregate_items_total{")
    late = _value(metrics_text, "finmon_aggregate_late_items_total{")
    assert windowed + late == len(ids)
    assert windowed >= 0.9 * len(ids)
