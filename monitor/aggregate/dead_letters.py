"""The aggregate role's intake (both modes): scored records counted or refused, refused ones
held as dead letters until acknowledged, alerts handed to the sinks.

A refused record is held (bounded by :data:`MAX_WAITING_DEAD_LETTERS`: past it the role pauses
its partitions) until the broker acknowledged it on ``kafka.dlq_topic``; offsets are committed
only after that, so a refused record is never lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from kafka import KafkaProducer
from kafka.errors import KafkaError

from alerts.events import AlertEvent
from monitor.aggregate.engine import AddOutcome
from monitor.aggregate.labels import check_scored
from monitor.contract import ScoredItem, decode_scored
from monitor.errors import InvalidMessage
from monitor.ingest.classify_step import OutRecord, RawRecord, dead_letter
from monitor.ingest.health import BrokerWatch
from monitor.metrics import Metrics
from monitor.settings import KafkaSettings

logger = logging.getLogger(__name__)

REJECT_LOG_INTERVAL_MS = 10_000  # one warning per interval at most
MAX_WAITING_DEAD_LETTERS = 1_000


class DeadLetters:
    """The dead letters waiting for the broker. Not thread-safe: the worker thread owns it."""

    def __init__(
        self, kafka: KafkaSettings, metrics: Metrics, broker: BrokerWatch | None = None
    ) -> None:
        self.kafka = kafka
        self.metrics = metrics
        self.broker = broker  # told of every produce's outcome, when given
        self.waiting: list[OutRecord] = []
        self._next_warning_ms = 0

    def __len__(self) -> int:
        return len(self.waiting)

    @property
    def full(self) -> bool:
        return len(self.waiting) >= MAX_WAITING_DEAD_LETTERS

    def reject(self, record: RawRecord, reason: str, detail: str, now_ms: int) -> None:
        if now_ms >= self._next_warning_ms:
            self._next_warning_ms = now_ms + REJECT_LOG_INTERVAL_MS
            logger.warning("record on %s dead-lettered (%s): %s", record.topic, reason, detail)
        self.waiting.append(dead_letter(record, self.kafka.dlq_topic, reason, detail))

    def count_scored(
        self, record: RawRecord, add: Callable[[ScoredItem, int], AddOutcome], now_ms: int
    ) -> None:
        """Decode one ``news.scored`` record and ``add`` it (an aggregator or a stage one);
        what cannot be counted is dead-lettered: only a foreign producer writes such records."""
        try:
            item = check_scored(decode_scored(record.value or b""))
            outcome = add(item, now_ms)
        except InvalidMessage as exc:
            self.reject(record, exc.reason, exc.detail, now_ms)
            return
        except Exception as exc:  # RecursionError, OverflowError, ...: one record, not the role
            self.reject(record, "processing_error", f"{type(exc).__name__}: {exc}"[:300], now_ms)
            return
        if outcome == "future":
            detail = f"published_at {item.published_at.isoformat()} is beyond max_future_ms"
            self.reject(record, "future_event_time", detail, now_ms)
        elif outcome != "duplicate":
            latency_sec = max(0.0, now_ms / 1000 - item.ingested_at.timestamp())
            self.metrics.e2e_latency_seconds.observe(latency_sec)
            self.metrics.last_item_timestamp_seconds.set(now_ms / 1000)

    def flush(self, producer: KafkaProducer) -> bool:
        """Produce the waiting dead letters; True once the broker acknowledged all of them."""
        if not self.waiting:
            return True
        try:
            futures = [
                producer.send(d.topic, key=d.key, value=d.value, headers=list(d.headers))
                for d in self.waiting
            ]
            producer.flush(timeout=self.kafka.produce_timeout_sec)
            for future in futures:
                future.get(timeout=self.kafka.produce_timeout_sec)
        except KafkaError as exc:
            self.metrics.produce_errors.inc()
            if self.broker is not None:
                self.broker.failed(exc)
            logger.warning("dead letters not acknowledged (%r); retrying next cycle", exc)
            return False
        if self.broker is not None:
            self.broker.ok()
        for dead in self.waiting:
            self.metrics.dlq_messages.labels(dead.reason or "unknown").inc()
        self.waiting.clear()
        return True


def deliver(
    sinks: Sequence[Callable[[AlertEvent], None]], metrics: Metrics, event: AlertEvent
) -> None:
    """Hand the event to every sink; one failing sink neither stops the others nor the role."""
    for sink in sinks:
        try:
            sink(event)
        except Exception:
            metrics.sink_errors.inc()
            logger.exception("alert sink %r failed for %s", sink, event.idempotency_key)
