"""Direct webhook notifier: durable outbox in, signed HTTP POSTs out, on a background thread.

:meth:`WebhookNotifier.submit` only writes to the SQLite outbox (one row per URL, idempotency key
and status) and returns; it never waits on HTTP. A delivery pass (:meth:`deliver_due`, run by the
thread that :meth:`start` launches) posts due rows. Retries are declared in :class:`RetryPolicy`:
5xx answers and :data:`RETRYABLE_EXCEPTIONS` (connection errors, timeouts) are retried with capped
exponential backoff and jitter until the notification is ``max_age_sec`` old (or, when set, after
``max_attempts``); any other answer (4xx, 3xx) fails at once. Every notification that will never
be delivered is counted in ``finmon_alerts_webhook_undelivered_total{reason}``. One unreachable
URL never stalls the caller, only its own rows.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import httpx

from alerts.events import AlertEvent
from alerts.outbox import Outbox, OutboxRow
from alerts.payload import build_payload, encode_payload
from alerts.signing import ATTEMPT_HEADER, IDEMPOTENCY_HEADER, signature_headers
from monitor.metrics import Metrics
from monitor.settings import AlertSettings

logger = logging.getLogger(__name__)

Outcome = Literal["ok", "retry", "failed"]
# Why a notification was not delivered (finmon_alerts_webhook_undelivered_total{reason}).
Undelivered = Literal["expired", "attempts", "rejected", "dropped", "firing_undelivered"]
# httpx.TransportError covers ConnectError, every TimeoutException, and protocol errors.
RETRYABLE_EXCEPTIONS: tuple[type[Exception], ...] = (httpx.TransportError,)
USER_AGENT = "finmon-webhook/1"
DELIVERY_BATCH_ROWS = 100


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a notification is retried.

    The n-th retry waits ``min(max_sec, initial_sec * 2**(n-1))`` scaled by a random factor in
    ``[1 - jitter_ratio, 1]``, so receivers coming back are not hit by every sender at once. The
    last retry is at ``max_age_sec`` after the notification was queued; ``max_attempts`` (0: no
    limit) can stop it sooner.
    """

    max_attempts: int = 0
    initial_sec: float = 0.5
    max_sec: float = 300.0
    jitter_ratio: float = 0.5
    max_age_sec: float = 86_400.0

    @classmethod
    def from_settings(cls, settings: AlertSettings) -> RetryPolicy:
        return cls(
            max_attempts=settings.max_attempts,
            initial_sec=settings.backoff_initial_sec,
            max_sec=settings.backoff_max_sec,
            max_age_sec=settings.max_age_sec,
        )

    def next_attempt_sec(
        self, attempts: int, created_sec: float, now_sec: float, rng: random.Random
    ) -> float | None:
        """When to try again after ``attempts`` failed tries; None to give up."""
        deadline = created_sec + self.max_age_sec
        if now_sec >= deadline or (self.max_attempts and attempts >= self.max_attempts):
            return None
        return min(deadline, now_sec + self.delay_sec(attempts, rng))

    def delay_sec(self, attempts: int, rng: random.Random) -> float:
        """Wait before the next try, after ``attempts`` (>= 1) failed tries."""
        ceiling = min(self.max_sec, self.initial_sec * 2 ** (attempts - 1))
        return ceiling * (1 - self.jitter_ratio * rng.random())


def classify_status(status_code: int) -> Outcome:
    """2xx is delivered, 5xx is retried, anything else (4xx, 3xx) fails without retry."""
    if 200 <= status_code < 300:
        return "ok"
    return "retry" if status_code >= 500 else "failed"


class WebhookNotifier:
    """Sends every alert transition to each configured webhook URL, at least once, signed.

    The receiver drops duplicates by the ``X-FinMon-Idempotency-Key`` header together with the
    payload ``status``. Close with :meth:`stop` (which also closes the outbox).
    """

    def __init__(
        self,
        settings: AlertSettings,
        db_path: Path,
        *,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
        external_url: str = "",
        transport: httpx.BaseTransport | None = None,
        rng: random.Random | None = None,
        idle_poll_sec: float = 1.0,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._clock = clock
        self._external_url = external_url
        self._policy = RetryPolicy.from_settings(settings)
        self._rng = rng or random.Random()
        self._idle_poll_sec = idle_poll_sec
        self._outbox = Outbox(db_path, max_pending=settings.outbox_max_pending)
        secret = settings.webhook_secret
        self._secret = secret.get_secret_value() if secret is not None else None
        self._client = httpx.Client(
            timeout=settings.timeout_sec, transport=transport, follow_redirects=False
        )
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._pass_lock = threading.Lock()
        for reason in get_args(Undelivered):  # exported at 0, so increase() sees the first one
            metrics.webhook_undelivered.labels(reason=reason)
        self._refresh_depth()

    @property
    def outbox(self) -> Outbox:
        return self._outbox

    def submit(self, event: AlertEvent) -> None:
        """Queue ``event`` for every webhook URL. Durable once it returns; never blocks on HTTP.

        A transition already queued (same URL, idempotency key and status) is ignored.
        """
        if not self._settings.webhook_urls:
            return
        body = encode_payload(
            build_payload(
                event, external_url=self._external_url, top_n=self._settings.top_headlines
            )
        )
        now = self._clock()
        for url in self._settings.webhook_urls:
            result = self._outbox.put(url, event.idempotency_key, event.status, body, now)
            if result.dropped:
                logger.error("webhook outbox full: dropped %d oldest rows", result.dropped)
                self._metrics.webhook_deliveries.labels(outcome="dropped").inc(result.dropped)
                self._undelivered("dropped", result.dropped)
            self._count_orphans(result.orphaned, event.idempotency_key)
        self._refresh_depth()
        self._wake.set()

    def deliver_due(self) -> int:
        """One delivery pass over the rows due now; returns how many POSTs were attempted.

        Blocks for at most ``timeout_sec`` per attempted row. Safe to call from tests directly.
        """
        with self._pass_lock:
            rows = self._outbox.due(self._clock(), DELIVERY_BATCH_ROWS)
            for row in rows:
                self._deliver(row)
            self._outbox.purge(self._clock() - self._settings.outbox_retention_sec)
            self._refresh_depth()
        return len(rows)

    def _deliver(self, row: OutboxRow) -> None:
        attempts = row.attempts + 1
        outcome, detail = self._post(row, attempts)
        now = self._clock()
        if outcome == "ok":
            self._outbox.mark_delivered(row.id, attempts, now)
            logger.debug("webhook %s %s delivered to %s", row.idempotency_key, row.status, row.url)
        elif outcome == "retry":
            next_sec = self._policy.next_attempt_sec(attempts, row.created_sec, now, self._rng)
            if next_sec is None:
                outcome = "failed"
                self._give_up(row, attempts, now, detail)
            else:
                self._outbox.mark_retry(row.id, attempts, next_sec, detail)
                logger.info(
                    "webhook to %s will be retried (attempt %d): %s", row.url, attempts, detail
                )
        else:
            self._fail(row, attempts, now, detail, "rejected")
        self._metrics.webhook_deliveries.labels(outcome=outcome).inc()

    def _give_up(self, row: OutboxRow, attempts: int, now: float, detail: str) -> None:
        expired = now >= row.created_sec + self._policy.max_age_sec
        age = f"{(now - row.created_sec) / 3600:.1f} h old" if expired else "max_attempts"
        message = f"gave up after {attempts} attempts ({age}): {detail}"
        self._fail(row, attempts, now, message, "expired" if expired else "attempts")

    def _fail(
        self, row: OutboxRow, attempts: int, now: float, detail: str, reason: Undelivered
    ) -> None:
        orphaned = self._outbox.mark_failed(row.id, attempts, now, detail)
        logger.error(
            "webhook %s %s to %s failed: %s", row.idempotency_key, row.status, row.url, detail
        )
        self._undelivered(reason)
        self._count_orphans(orphaned, row.idempotency_key)

    def _count_orphans(self, orphaned: int, key: str) -> None:
        if orphaned:
            logger.error("webhook %s: resolved notification not sent, its firing one failed", key)
            self._undelivered("firing_undelivered", orphaned)

    def _undelivered(self, reason: Undelivered, count: int = 1) -> None:
        self._metrics.webhook_undelivered.labels(reason=reason).inc(count)

    def _post(self, row: OutboxRow, attempts: int) -> tuple[Outcome, str]:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            IDEMPOTENCY_HEADER: row.idempotency_key,
            ATTEMPT_HEADER: str(attempts),
            **signature_headers(self._secret, int(self._clock()), row.body),
        }
        try:
            response = self._client.post(row.url, content=row.body, headers=headers)
        except RETRYABLE_EXCEPTIONS as exc:
            return "retry", f"{type(exc).__name__}: {exc}"
        return classify_status(response.status_code), f"HTTP {response.status_code}"

    def _refresh_depth(self) -> None:
        self._metrics.webhook_outbox_depth.set(self._outbox.pending_count())

    def start(self) -> None:
        """Start the background delivery thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="finmon-webhooks", daemon=True)
        self._thread.start()
        logger.info("webhook notifier started for %d URL(s)", len(self._settings.webhook_urls))

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.deliver_due()
            except Exception:
                # A broken pass must not kill the thread: rows stay pending and are retried.
                logger.exception("webhook delivery pass failed")
            self._wake.wait(self._wait_sec())
            self._wake.clear()

    def _wait_sec(self) -> float:
        next_due = self._outbox.next_due_sec()
        if next_due is None:
            return self._idle_poll_sec
        return max(0.01, min(self._idle_poll_sec, next_due - self._clock()))

    def stop(self, timeout_sec: float = 5.0) -> None:
        """Stop the thread (waiting up to ``timeout_sec``) and close HTTP client and outbox.

        Undelivered rows stay in the outbox for the next process.
        """
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_sec)
            if self._thread.is_alive():
                logger.warning("webhook thread still busy after %.1f s; leaving it", timeout_sec)
                return
            self._thread = None
        self._client.close()
        self._outbox.close()
        logger.info("webhook notifier stopped")
