"""The classify role: consume ``news.raw``, classify, produce ``news.scored`` / ``news.dlq``.

Data flow in one worker: the Kafka thread polls and decodes records, sends dead letters at once
and submits valid items to the :class:`ModelOwner` thread, which micro-batches them through the
model. Finished predictions come back to the Kafka thread, which produces them. While the model
runs a batch, the Kafka thread keeps polling, decoding and queueing the next items.

Backpressure: the owner's inbox is bounded. When it refuses an item, the worker keeps the rest of
the poll in a small backlog, pauses its partitions and keeps calling ``poll`` (heartbeats and group
membership stay healthy however slow a batch is) until the owner has room again.

Commit policy (at least once): every polled offset is tracked; it becomes done only when the
broker has acknowledged its output record (scored or dead letter). Commits, every
``COMMIT_INTERVAL_SEC`` and at shutdown, cover only the contiguous done prefix per partition, so
an item still in the batcher, the model or the producer holds back everything after it. A crash
can duplicate scored records (the aggregator drops repeats by id) but never lose one. A produce that
fails after the producer's own retries is re-sent until acknowledged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from monitor.classify.batcher import BatchPolicy
from monitor.classify.engine import Classifier
from monitor.classify.owner import Job, ModelOwner, estimate_tokens
from monitor.ingest import kafka_io
from monitor.ingest.classify_step import OutRecord, RawRecord, Topics, decode_record, encode_result
from monitor.ingest.offsets import OffsetTracker
from monitor.metrics import Metrics
from monitor.settings import KafkaSettings

logger = logging.getLogger(__name__)

LAG_SAMPLE_INTERVAL_SEC = 5.0
COMMIT_INTERVAL_SEC = 0.5
BUSY_POLL_TIMEOUT_MS = 5
RESEND_BACKOFF_SEC = 1.0
DRAIN_TIMEOUT_SEC = 60.0


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a job came from: enough to produce its output and mark its offset done."""

    partition: TopicPartition
    record: RawRecord
    item: Any  # monitor.contract.NewsItem


@dataclass
class _Send:
    partition: TopicPartition
    offset: int
    out: OutRecord
    future: Any
    not_before: float = 0.0


@dataclass
class ClassifyWorker:
    """One classify consumer in the ``kafka.classify_group`` group. ``run`` blocks until stopped."""

    kafka: KafkaSettings
    classifier: Classifier
    metrics: Metrics
    policy: BatchPolicy = field(default_factory=BatchPolicy)

    def run(self, stop: threading.Event) -> None:
        """Poll, classify, produce, commit, until ``stop`` is set. Never raises on bad input."""
        kafka_io.ensure_topics(
            self.kafka, [self.kafka.raw_topic, self.kafka.scored_topic, self.kafka.dlq_topic]
        )
        owner: ModelOwner[Origin] = ModelOwner(self.classifier, self.policy, self.metrics)
        pipeline = _Pipeline(self, owner, kafka_io.make_producer(self.kafka))
        consumer = kafka_io.make_consumer(
            self.kafka, self.kafka.classify_group, [self.kafka.raw_topic], listener=pipeline
        )
        pipeline.consumer = consumer
        owner.start()
        self.metrics.up.labels("classify").set(1)
        logger.info("classify worker started on %s", self.kafka.raw_topic)
        try:
            pipeline.loop(stop)
            pipeline.drain()
        finally:
            self.metrics.up.labels("classify").set(0)
            owner.stop(timeout_sec=5)
            pipeline.producer.close(timeout=5)
            consumer.close(autocommit=False)
            logger.info("classify worker stopped")


class _Pipeline(ConsumerRebalanceListener):
    """The Kafka thread's state: backlog, sends awaiting acks, offsets in flight."""

    def __init__(self, worker: ClassifyWorker, owner: ModelOwner[Origin], producer: KafkaProducer):
        self.worker = worker
        self.kafka = worker.kafka
        self.metrics = worker.metrics
        self.topics = Topics(self.kafka.scored_topic, self.kafka.dlq_topic)
        self.owner = owner
        self.producer = producer
        self.consumer: KafkaConsumer | None = None
        self.tracker: OffsetTracker[TopicPartition] = OffsetTracker()
        self.backlog: deque[Job[Origin]] = deque()
        self.sends: deque[_Send] = deque()
        self.paused = False
        self._next_commit = 0.0
        self._next_lag = 0.0

    # -- the loop ---------------------------------------------------------------------------
    def loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.poll()
            self.step()

    def step(self) -> None:
        if not self.owner.alive:
            # Without its model thread the worker would sit paused forever: fail loudly instead,
            # so the daemon exits and its supervisor restarts it (uncommitted work is redelivered).
            raise RuntimeError("the model thread died; see the log above")
        self.feed()
        self.collect()
        self.reap()
        now = time.monotonic()
        if now >= self._next_commit:
            self._next_commit = now + COMMIT_INTERVAL_SEC
            self.commit()
        if now >= self._next_lag:
            self._next_lag = now + LAG_SAMPLE_INTERVAL_SEC
            self._sample_lag()

    def poll(self) -> None:
        assert self.consumer is not None
        busy = bool(self.backlog or self.sends or self.owner.pending)
        timeout_ms = BUSY_POLL_TIMEOUT_MS if busy else self.kafka.poll_timeout_ms
        polled = self.consumer.poll(timeout_ms=timeout_ms, max_records=self.kafka.max_poll_records)
        for partition, records in polled.items():
            self._accept(partition, records)

    def _accept(self, partition: TopicPartition, records: list[Any]) -> None:
        self.metrics.messages_consumed.inc(len(records))
        valid: list[tuple[Any, Any]] = []
        for record in records:
            self.tracker.track(partition, record.offset)
            decoded = decode_record(record, self.topics.dlq)
            if isinstance(decoded, OutRecord):
                self._send(partition, record.offset, decoded)
            else:
                valid.append((record, decoded))
        counts = estimate_tokens(self.worker.classifier, [item.text for _, item in valid])
        for (record, item), n_tokens in zip(valid, counts, strict=True):
            self.backlog.append(Job(item.text, n_tokens, Origin(partition, record, item)))

    def feed(self) -> None:
        """Hand the backlog to the model owner; pause partitions while it has no room."""
        while self.backlog and self.owner.submit(self.backlog[0]):
            self.backlog.popleft()
        assert self.consumer is not None
        if self.backlog and not self.paused:
            self.consumer.pause(*self.consumer.assignment())
            self.paused = True
            self.metrics.backpressure_pauses.inc()
            logger.debug("model queue full: partitions paused")
        elif not self.backlog and self.paused:
            self.consumer.resume(*self.consumer.paused())
            self.paused = False

    def collect(self) -> None:
        """Produce every finished prediction."""
        results = self.owner.results()
        if not results:
            return
        scored_at = datetime.now(UTC)
        version = self.worker.classifier.version
        for job, prediction in results:
            origin = job.context
            out = encode_result(
                origin.record,
                item=origin.item,
                prediction=prediction,
                model_version=version,
                topics=self.topics,
                scored_at=scored_at,
            )
            self._send(origin.partition, origin.record.offset, out)

    def _send(self, partition: TopicPartition, offset: int, out: OutRecord) -> None:
        send = _Send(partition, offset, out, None)
        send.future = self._resend(out)
        if send.future is None:
            send.not_before = time.monotonic() + RESEND_BACKOFF_SEC
        self.sends.append(send)

    def reap(self) -> None:
        """Mark acknowledged outputs done; re-send failed ones after a pause."""
        still: deque[_Send] = deque()
        now = time.monotonic()
        for send in self.sends:
            if send.future is None and now >= send.not_before:
                send.future = self._resend(send.out)
            if send.future is None or not send.future.is_done:
                still.append(send)
            elif send.future.succeeded():
                self.tracker.done(send.partition, send.offset)
                self._count(send.out)
            else:
                self.metrics.produce_errors.inc()
                logger.warning(
                    "produce to %s failed (%r); re-sending", send.out.topic, send.future.exception
                )
                send.future, send.not_before = None, now + RESEND_BACKOFF_SEC
                still.append(send)
        self.sends = still

    def _resend(self, out: OutRecord) -> Any:
        """The send's future, or None when the producer refused it outright (retried later)."""
        try:
            return self.producer.send(
                out.topic, key=out.key, value=out.value, headers=list(out.headers)
            )
        except KafkaError as exc:
            self.metrics.produce_errors.inc()
            logger.warning("producer refused a record for %s (%r)", out.topic, exc)
            return None

    def commit(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        offsets = self.tracker.committable()
        if partitions is not None:
            wanted = set(partitions)
            offsets = {tp: off for tp, off in offsets.items() if tp in wanted}
        if not offsets or self.consumer is None:
            return
        try:
            kafka_io.commit(self.consumer, offsets)
            self.tracker.committed(offsets)
        except KafkaError as exc:
            # The group rebalanced: the new owner re-reads from the last commit (duplicates only).
            logger.warning("commit rejected (%r); records will be redelivered", exc)

    def drain(self) -> None:
        """On stop: finish queued work, wait for acks, commit. Bounded by DRAIN_TIMEOUT_SEC."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_SEC
        self.backlog.clear()  # not submitted yet: redelivered after restart
        while (self.owner.pending or self.sends) and time.monotonic() < deadline:
            self.collect()
            self.producer.flush(timeout=1)
            self.reap()
            time.sleep(0.01)
        self.commit()

    # -- rebalance listener (called inside poll) --------------------------------------------
    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.commit(revoked)
        self.tracker.forget(revoked)
        gone = set(revoked)
        self.backlog = deque(j for j in self.backlog if j.context.partition not in gone)
        self.paused = False
        logger.info("partitions revoked: %s", sorted(str(tp) for tp in revoked))

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        logger.info("partitions assigned: %s", sorted(str(tp) for tp in assigned))

    # -- metrics ----------------------------------------------------------------------------
    def _sample_lag(self) -> None:
        if self.consumer is None:
            return
        value = kafka_io.lag(self.consumer)
        if value is not None:
            self.metrics.consumer_lag.labels(self.kafka.classify_group).set(value)

    def _count(self, out: OutRecord) -> None:
        if out.reason is not None:
            self.metrics.dlq_messages.labels(out.reason).inc()
            if out.reason == "model_error":
                self.metrics.model_errors.inc()
        else:
            self.metrics.items_scored.labels(out.item_topic, out.item_sentiment).inc()
