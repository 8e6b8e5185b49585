"""The direct notifier against a real loopback receiver (no HTTP mocks)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from alerts.notify import RetryPolicy, WebhookNotifier, classify_status
from alerts.receiver import ReceiverConfig, WebhookReceiver
from monitor.metrics import Metrics
from monitor.settings import AlertSettings
from tests.alerts.webhook_helpers import SECRET, FakeClock, dead_url, event, settings


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(config=ReceiverConfig(secret=SECRET)) as running:
        yield running


def _deliveries(metrics: Metrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "finmon_alerts_webhook_deliveries_total", {"outcome": outcome}
    )
    return value or 0.0


def _depth(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value("finmon_alerts_webhook_outbox_depth")


def _notifier(
    cfg: AlertSettings, tmp_path: Path, metrics: Metrics, clock: FakeClock
) -> WebhookNotifier:
    return WebhookNotifier(
        cfg, tmp_path / "outbox.sqlite", metrics=metrics, clock=clock, rng=random.Random(7)
    )


def test_signed_delivery_reaches_receiver(
    receiver: WebhookReceiver, tmp_path: Path, metrics: Metrics
) -> None:
    notifier = _notifier(settings(receiver.url + "risk"), tmp_path, metrics, FakeClock())
    notifier.submit(event())
    assert _depth(metrics) == 1
    assert notifier.deliver_due() == 1
    notifier.stop()
    (alert,) = receiver.alerts()
    assert alert.signed
    assert alert.path == "/risk"
    assert alert.idempotency_key == "negative_share_spike:topic=Earnings:1700000040000"
    assert alert.labels["topic"] == "Earnings"
    assert len(alert.headlines) == 3
    assert _deliveries(metrics, "ok") == 1
    assert _depth(metrics) == 0


def test_5xx_is_retried_after_backoff(
    receiver: WebhookReceiver, tmp_path: Path, metrics: Metrics
) -> None:
    clock = FakeClock()
    notifier = _notifier(settings(receiver.url), tmp_path, metrics, clock)
    receiver.fail_next(1, 503)
    notifier.submit(event())
    assert notifier.deliver_due() == 1
    assert _deliveries(metrics, "retry") == 1
    assert notifier.deliver_due() == 0  # backoff not elapsed
    clock.advance(1.0)  # initial backoff is 1 s, jitter only shortens it
    assert notifier.deliver_due() == 1
    notifier.stop()
    assert _deliveries(metrics, "ok") == 1
    assert len(receiver.alerts()) == 1
    assert receiver.requests == 2


def test_4xx_fails_without_retry(
    receiver: WebhookReceiver, tmp_path: Path, metrics: Metrics
) -> None:
    clock = FakeClock()
    notifier = _notifier(settings(receiver.url, secret="wrong"), tmp_path, metrics, clock)
    notifier.submit(event())
    assert notifier.deliver_due() == 1
    clock.advance(3600)
    assert notifier.deliver_due() == 0
    assert notifier.outbox.counts() == {"failed": 1}
    notifier.stop()
    assert receiver.rejected == 1
    assert receiver.alerts() == []
    assert _deliveries(metrics, "failed") == 1
    assert _deliveries(metrics, "retry") == 0


def test_connection_errors_retry_until_max_attempts(tmp_path: Path, metrics: Metrics) -> None:
    clock = FakeClock()
    notifier = _notifier(settings(dead_url(), max_attempts=3), tmp_path, metrics, clock)
    notifier.submit(event())
    attempts = 0
    for _ in range(10):
        attempts += notifier.deliver_due()
        clock.advance(60)
    notifier.stop()
    assert attempts == 3
    assert _deliveries(metrics, "retry") == 2
    assert _deliveries(metrics, "failed") == 1
    assert _undelivered(metrics, "attempts") == 1


def _undelivered(metrics: Metrics, reason: str) -> float | None:
    return metrics.registry.get_sample_value(
        "finmon_alerts_webhook_undelivered_total", {"reason": reason}
    )


def test_by_default_retries_run_until_the_alert_is_a_day_old(
    tmp_path: Path, metrics: Metrics
) -> None:
    clock = FakeClock()
    cfg = AlertSettings.model_validate({"webhook_urls": [dead_url()], "timeout_sec": 1.0})
    notifier = _notifier(cfg, tmp_path, metrics, clock)
    notifier.submit(event())
    queued_sec, gaps, last = clock.now_sec, [], clock.now_sec
    while notifier.outbox.pending_count():
        if notifier.deliver_due():
            gaps.append(clock.now_sec - last)
            last = clock.now_sec
        next_due = notifier.outbox.next_due_sec()
        clock.now_sec = next_due if next_due is not None else clock.now_sec
    notifier.stop()
    assert _undelivered(metrics, "expired") == 1
    assert last - queued_sec == 86_400  # the last try is at the deadline, not past it
    assert max(gaps) <= 300  # capped backoff: never more than 5 minutes apart
    assert len(gaps) > 86_400 / 300  # so hundreds of attempts, not 8
    assert _undelivered(metrics, "attempts") == 0


def test_retry_deadline_and_attempt_cap() -> None:
    rng = random.Random(1)
    policy = RetryPolicy(initial_sec=1, max_sec=300, max_age_sec=1_000)
    assert policy.next_attempt_sec(20, created_sec=0, now_sec=900, rng=rng) == 1_000
    assert policy.next_attempt_sec(21, created_sec=0, now_sec=1_000, rng=rng) is None
    capped = RetryPolicy(max_attempts=3, max_age_sec=1_000)
    assert capped.next_attempt_sec(2, created_sec=0, now_sec=10, rng=rng) is not None
    assert capped.next_attempt_sec(3, created_sec=0, now_sec=10, rng=rng) is None


def test_a_refused_firing_is_never_followed_by_its_resolved(
    receiver: WebhookReceiver, tmp_path: Path, metrics: Metrics
) -> None:
    clock = FakeClock()
    notifier = _notifier(settings(receiver.url), tmp_path, metrics, clock)
    receiver.fail_next(1, 410)
    notifier.submit(event())
    notifier.submit(event(status="resolved"))
    assert notifier.deliver_due() == 1  # the firing row, refused; the resolved one fails with it
    clock.advance(3600)
    assert notifier.deliver_due() == 0
    notifier.submit(event(status="resolved"))  # a replayed transition changes nothing
    notifier.stop()
    assert receiver.alerts() == []
    assert _undelivered(metrics, "rejected") == 1
    assert _undelivered(metrics, "firing_undelivered") == 1


def test_dead_url_does_not_stop_delivery_to_another(
    receiver: WebhookReceiver, tmp_path: Path, metrics: Metrics
) -> None:
    notifier = _notifier(settings(dead_url(), receiver.url), tmp_path, metrics, FakeClock())
    notifier.submit(event())
    assert notifier.deliver_due() == 2
    notifier.stop()
    assert len(receiver.alerts()) == 1
    assert _depth(metrics) == 1


def test_pending_rows_survive_restart(
    receiver: WebhookReceiver, tmp_path: Path, metrics: Metrics
) -> None:
    clock = FakeClock()
    first = _notifier(settings(receiver.url), tmp_path, metrics, clock)
    first.submit(event("Macro"))
    first.submit(event("Macro", status="resolved"))
    first.stop()
    second = _notifier(settings(receiver.url), tmp_path, metrics, clock)
    second.submit(event("Macro"))  # replayed after restart: already queued, ignored
    assert second.deliver_due() == 1  # firing first; resolved waits for it
    assert second.deliver_due() == 1
    second.stop()
    assert [(a.idempotency_key, a.status) for a in receiver.alerts()] == [
        ("negative_share_spike:topic=Macro:1700000040000", "firing"),
        ("negative_share_spike:topic=Macro:1700000040000", "resolved"),
    ]


def test_background_thread_delivers(
    receiver: WebhookReceiver, tmp_path: Path, metrics: Metrics
) -> None:
    notifier = WebhookNotifier(settings(receiver.url), tmp_path / "o.sqlite", metrics=metrics)
    notifier.start()
    notifier.submit(event())
    arrived = receiver.wait_for(lambda alerts: len(alerts) == 1, timeout_sec=10)
    notifier.stop()
    assert arrived


def test_no_urls_means_nothing_is_queued(tmp_path: Path, metrics: Metrics) -> None:
    notifier = _notifier(AlertSettings(), tmp_path, metrics, FakeClock())
    notifier.submit(event())
    assert notifier.outbox.counts() == {}
    notifier.stop()


def test_retry_policy_backoff_is_capped_and_jittered() -> None:
    policy = RetryPolicy(max_attempts=10, initial_sec=1, max_sec=8, jitter_ratio=0.5)
    rng = random.Random(1)
    delays = [policy.delay_sec(n, rng) for n in range(1, 8)]
    ceilings = [1, 2, 4, 8, 8, 8, 8]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len(set(delays)) == len(delays)


@pytest.mark.parametrize(
    ("code", "outcome"),
    [(200, "ok"), (204, "ok"), (301, "failed"), (400, "failed"), (404, "failed"),
     (429, "failed"), (500, "retry"), (503, "retry")],
)  # fmt: skip
def test_status_classification(code: int, outcome: str) -> None:
    assert classify_status(code) == outcome
