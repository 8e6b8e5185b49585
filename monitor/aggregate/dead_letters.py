"""Dead letters of the partitioned aggregate role: records refused, held until acknowledged.

A refused record is held (bounded by :data:`MAX_WAITING_DEAD_LETTERS`: past it the role pauses
its partitions) until the broker acknowledged it on ``kafka.dlq_topic``; offsets are committed
only after that, so a refused record is never lost.
"""

from __future__ import annotations

import logging

from kafka import KafkaProducer
from kafka.errors import KafkaError

from monitor.ingest.classify_step import OutRecord, RawRecord, dead_letter
from monitor.metrics import Metrics
from monitor.settings import KafkaSettings

logger = logging.getLogger(__name__)

REJECT_LOG_INTERVAL_MS = 10_000  # one warning per interval at most
MAX_WAITING_DEAD_LETTERS = 1_000


class DeadLetters:
    """The dead letters waiting for the broker. Not thread-safe: the worker thread owns it."""

    def __init__(self, kafka: KafkaSettings, metrics: Metrics) -> None:
        self.kafka = kafka
        self.metrics = metrics
        self.waiting: list[OutRecord] = []
        self._next_warning_ms = 0

    @property
    def full(self) -> bool:
        return len(self.waiting) >= MAX_WAITING_DEAD_LETTERS

    def reject(self, record: RawRecord, reason: str, detail: str, now_ms: int) -> None:
        if now_ms >= self._next_warning_ms:
            self._next_warning_ms = now_ms + REJECT_LOG_INTERVAL_MS
            logger.warning("record on %s dead-lettered (%s): %s", record.topic, reason, detail)
        self.waiting.append(dead_letter(record, self.kafka.dlq_topic, reason, detail))

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
            logger.warning("dead letters not acknowledged (%r); retrying next cycle", exc)
            return False
        for dead in self.waiting:
            self.metrics.dlq_messages.labels(dead.reason or "unknown").inc()
        self.waiting.clear()
        return True
