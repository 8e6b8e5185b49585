"""The classify role: consume ``news.raw``, classify, produce ``news.scored`` / ``news.dlq``.

Commit policy (at-least-once): the worker handles one poll at a time. It produces every output
record of the poll, waits until the broker has acknowledged all of them, and only then commits the
offsets one past the last record of each partition. If any produce fails, nothing is committed;
the partitions are rewound and the records are processed again, so a crash or a broker hiccup can
duplicate scored records but never lose one. The aggregator drops duplicates by id.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import CommitFailedError, KafkaError

from monitor.classify.engine import Classifier
from monitor.ingest import kafka_io
from monitor.ingest.classify_step import OutRecord, Topics, classify_records
from monitor.metrics import Metrics
from monitor.settings import KafkaSettings

logger = logging.getLogger(__name__)

LAG_SAMPLE_INTERVAL_SEC = 5.0
RETRY_BACKOFF_SEC = 1.0


@dataclass
class ClassifyWorker:
    """One classify consumer in the ``kafka.classify_group`` group. ``run`` blocks until stopped."""

    kafka: KafkaSettings
    classifier: Classifier
    metrics: Metrics
    on_output: Callable[[OutRecord], None] | None = None

    def run(self, stop: threading.Event) -> None:
        """Poll, classify, produce, commit, until ``stop`` is set. Never raises on bad input."""
        kafka_io.ensure_topics(
            self.kafka, [self.kafka.raw_topic, self.kafka.scored_topic, self.kafka.dlq_topic]
        )
        consumer = kafka_io.make_consumer(
            self.kafka, self.kafka.classify_group, [self.kafka.raw_topic]
        )
        producer = kafka_io.make_producer(self.kafka)
        self.metrics.up.labels("classify").set(1)
        logger.info("classify worker started on %s", self.kafka.raw_topic)
        next_lag_sample = 0.0
        try:
            while not stop.is_set():
                polled = consumer.poll(
                    timeout_ms=self.kafka.poll_timeout_ms, max_records=self.kafka.max_poll_records
                )
                if polled:
                    self._handle(consumer, producer, polled)
                if time.monotonic() >= next_lag_sample:
                    next_lag_sample = time.monotonic() + LAG_SAMPLE_INTERVAL_SEC
                    self._sample_lag(consumer)
        finally:
            self.metrics.up.labels("classify").set(0)
            producer.close(timeout=5)
            consumer.close(autocommit=False)
            logger.info("classify worker stopped")

    def _sample_lag(self, consumer: KafkaConsumer) -> None:
        value = kafka_io.lag(consumer)
        if value is not None:
            self.metrics.consumer_lag.labels(self.kafka.classify_group).set(value)

    def _handle(self, consumer: KafkaConsumer, producer: KafkaProducer, polled: dict) -> None:
        records = [r for batch in polled.values() for r in batch]
        self.metrics.messages_consumed.inc(len(records))
        started = time.perf_counter()
        outputs = classify_records(
            records, self.classifier, Topics(self.kafka.scored_topic, self.kafka.dlq_topic)
        )
        try:
            self._produce_all(producer, outputs)
        except KafkaError as exc:
            self.metrics.produce_errors.inc()
            logger.warning("produce not acknowledged (%r); rewinding %d records", exc, len(records))
            kafka_io.rewind(consumer, {tp: batch[0].offset for tp, batch in polled.items()})
            time.sleep(RETRY_BACKOFF_SEC)
            return
        self.metrics.stage_seconds.labels("produce").observe(time.perf_counter() - started)
        try:
            kafka_io.commit(consumer, kafka_io.next_offsets(polled))
        except (CommitFailedError, KafkaError) as exc:
            # The group rebalanced: the new owner re-reads from the last commit (duplicates only).
            logger.warning("commit rejected (%r); records will be redelivered", exc)
        self._count(outputs)

    def _produce_all(self, producer: KafkaProducer, outputs: list[OutRecord]) -> None:
        futures = [
            producer.send(o.topic, key=o.key, value=o.value, headers=list(o.headers))
            for o in outputs
        ]
        producer.flush(timeout=self.kafka.produce_timeout_sec)
        for future in futures:
            future.get(timeout=self.kafka.produce_timeout_sec)

    def _count(self, outputs: list[OutRecord]) -> None:
        for out in outputs:
            if out.reason is not None:
                self.metrics.dlq_messages.labels(out.reason).inc()
                if out.reason == "model_error":
                    self.metrics.model_errors.inc()
            else:
                self.metrics.items_scored.labels(out.item_topic, out.item_sentiment).inc()
            if self.on_output is not None:
                self.on_output(out)
