"""Webhook outages on a fake clock: a 5-minute one loses nothing and sends nothing twice; one
longer than ``alerts.max_age_sec`` gives up loudly and never sends a resolved alone.

Each test prints one ``FIGURES`` line (run with ``-s``) for docs/reliability.md.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from alerts.events import AlertEvent
from alerts.notify import WebhookNotifier
from alerts.receiver import ReceivedAlert, ReceiverConfig, WebhookReceiver
from monitor.metrics import Metrics, build_metrics
from monitor.settings import AlertSettings
from tests.alerts.webhook_helpers import SECRET, FakeClock, free_port, quiet, spike_aggregator

TOPICS = ("Earnings", "Macro", "Dividend")
OUTAGE_SEC = 300
STEP_SEC = 1.0


@dataclass
class Drill:
    """A notifier with the shipped retry defaults, a fake clock and a port nobody serves yet."""

    tmp_path: Path
    clock: FakeClock
    port: int
    settings: AlertSettings
    metrics: Metrics

    @classmethod
    def start(cls, tmp_path: Path, **alerts: object) -> Drill:
        port = free_port()
        values = {"webhook_urls": [f"http://127.0.0.1:{port}/risk"], "webhook_secret": SECRET}
        settings = AlertSettings.model_validate({**values, "timeout_sec": 2.0, **alerts})
        return cls(tmp_path, FakeClock(), port, settings, build_metrics())

    def notifier(self, seed: int) -> WebhookNotifier:
        db = self.tmp_path / "state" / "webhook-outbox.sqlite"
        return WebhookNotifier(
            self.settings, db, metrics=self.metrics, clock=self.clock, rng=random.Random(seed)
        )

    def run_for(self, notifier: WebhookNotifier, seconds: float) -> int:
        """Delivery passes every STEP_SEC of fake time; returns the POSTs attempted."""
        attempts = 0
        for _ in range(int(seconds / STEP_SEC)):
            attempts += notifier.deliver_due()
            self.clock.advance(STEP_SEC)
        return attempts

    def receiver(self) -> WebhookReceiver:
        # The fake clock runs ahead of the real one: widen the replay window accordingly.
        config = ReceiverConfig(secret=SECRET, tolerance_sec=24 * 3600)
        return WebhookReceiver(port=self.port, config=config)

    def undelivered(self, reason: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "finmon_alerts_webhook_undelivered_total", {"reason": reason}
        )
        return value or 0.0


def transitions() -> tuple[list[AlertEvent], list[AlertEvent]]:
    """Firing transitions of a spike on each topic, and the resolved ones that follow."""
    agg, firing, now_ms = spike_aggregator(topics=TOPICS)
    resolved = quiet(agg, now_ms, 20)
    assert {e.key for e in firing if e.status == "firing"} == set(TOPICS)
    assert {e.key for e in resolved if e.status == "resolved"} == set(TOPICS)
    return firing, resolved


def in_order(received: list[ReceivedAlert]) -> bool:
    """Every resolved message came after the firing message of its key."""
    seen: set[str] = set()
    for alert in received:
        if alert.status == "resolved" and alert.idempotency_key not in seen:
            return False
        seen.add(alert.idempotency_key)
    return True


def test_a_five_minute_outage_delivers_each_alert_once_in_order(tmp_path: Path) -> None:
    drill = Drill.start(tmp_path)  # shipped defaults: 24 h, backoff up to 5 min
    firing, resolved = transitions()
    first = drill.notifier(seed=1)
    for event in firing:
        first.submit(event)
    attempts = drill.run_for(first, 120)
    for event in resolved:  # the alerts end while the receiver is still down
        first.submit(event)
    attempts += drill.run_for(first, 30)
    first.stop()  # FinMon restarts in the middle of the outage
    second = drill.notifier(seed=2)
    for event in firing + resolved:  # the restarted aggregator replays its transitions
        second.submit(event)
    attempts += drill.run_for(second, OUTAGE_SEC - 150)
    assert second.outbox.counts() == {"pending": len(firing) + len(resolved)}
    with drill.receiver() as receiver:
        back_sec = drill.clock.now_sec
        while second.outbox.pending_count() and drill.clock.now_sec - back_sec < 3600:
            attempts += drill.run_for(second, STEP_SEC)
        recovered_sec = drill.clock.now_sec - back_sec
        received, duplicates = receiver.alerts(), receiver.duplicates
    second.stop()
    sent = sorted((e.idempotency_key, e.status) for e in firing + resolved)
    got = sorted((a.idempotency_key, a.status) for a in received)
    assert got == sent  # each one arrived, none twice
    assert duplicates == 0 and in_order(received)
    assert recovered_sec <= 300 + STEP_SEC  # backoff is capped at 5 minutes
    assert sum(drill.undelivered(r) for r in ("expired", "attempts", "firing_undelivered")) == 0
    print(
        f"\nFIGURES webhook_outage_300s: sent={len(sent)} delivered={len(got)} lost=0 "
        f"duplicates={duplicates} attempts={attempts} recovered_after_sec={recovered_sec:.0f}"
    )


def test_an_outage_past_max_age_gives_up_loudly_and_never_sends_a_resolved_alone(
    tmp_path: Path,
) -> None:
    drill = Drill.start(tmp_path, max_age_sec=600.0)
    firing, resolved = transitions()
    notifier = drill.notifier(seed=3)
    for event in firing:
        notifier.submit(event)
    drill.run_for(notifier, 700)  # past max_age_sec: the firing rows are given up
    for event in resolved:
        notifier.submit(event)
    with drill.receiver() as receiver:
        drill.run_for(notifier, 60)
        received = receiver.alerts()
    notifier.stop()
    assert received == []  # no resolved without its firing
    assert drill.undelivered("expired") == len(firing)
    assert drill.undelivered("firing_undelivered") == len(resolved)
    print(
        f"\nFIGURES webhook_outage_700s_max_age_600s: sent={len(firing) + len(resolved)} "
        f"delivered=0 given_up={len(firing)} resolved_withheld={len(resolved)}"
    )
