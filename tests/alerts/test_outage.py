"""Outage drill: the receiver is down while spikes fire, the notifier restarts during the outage,
the receiver comes back. Every (idempotency key, status) arrives exactly once, signed."""

from __future__ import annotations

import random
from pathlib import Path

from alerts.notify import WebhookNotifier
from alerts.receiver import ReceiverConfig, WebhookReceiver
from monitor.metrics import build_metrics
from tests.alerts.webhook_helpers import (
    SECRET,
    FakeClock,
    free_port,
    quiet,
    settings,
    spike_aggregator,
)


def test_outage_and_restart_deliver_each_alert_exactly_once(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/teams/risk"
    cfg = settings(url, max_attempts=20, backoff_initial_sec=1.0, backoff_max_sec=30.0)
    db = tmp_path / "state" / "webhook-outbox.sqlite"
    clock = FakeClock()

    agg, events, now_ms = spike_aggregator(topics=("Earnings", "Macro"))
    firing = [e for e in events if e.status == "firing"]
    assert {e.key for e in firing} == {"Earnings", "Macro"}

    # Receiver down: the notifier keeps every notification and backs off.
    first = WebhookNotifier(cfg, db, metrics=build_metrics(), clock=clock, rng=random.Random(3))
    for event in events:
        first.submit(event)
    for _ in range(3):
        first.deliver_due()
        clock.advance(5)
    assert first.outbox.counts() == {"pending": len(events)}
    first.stop()  # the monitor restarts during the outage

    metrics = build_metrics()
    second = WebhookNotifier(cfg, db, metrics=metrics, clock=clock, rng=random.Random(4))
    for event in events:  # the restarted aggregator replays the same transitions
        second.submit(event)
    second.deliver_due()
    clock.advance(60)

    with WebhookReceiver(port=port, config=ReceiverConfig(secret=SECRET)) as receiver:
        while second.deliver_due():
            clock.advance(60)
        resolved = quiet(agg, now_ms, 20)
        for event in resolved:
            second.submit(event)
        second.deliver_due()
        received = receiver.alerts()
        duplicates, rejected = receiver.duplicates, receiver.rejected
    second.stop()

    assert {e.status for e in resolved} == {"resolved"}
    sent = {(e.idempotency_key, e.status) for e in events + resolved}
    got = [(a.idempotency_key, a.status) for a in received]
    assert sorted(got) == sorted(sent)  # every one arrived, none twice
    assert len(sent) == len(events) + len(resolved) == 4
    assert all(a.signed for a in received)
    assert (duplicates, rejected) == (0, 0)
    assert all(a.path == "/teams/risk" for a in received)
    assert all(a.headlines for a in received if a.status == "firing")
    assert metrics.registry.get_sample_value("finmon_alerts_webhook_outbox_depth") == 0
