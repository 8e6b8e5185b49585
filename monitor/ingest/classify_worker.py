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
fails after the producer's own retries is re-sent, with capped exponential backoff, until
acknowledged; one the producer or broker refuses as too large is dead-lettered instead
(``too_large_output``, or a dead letter cut to fit), never retried forever.

Poison (see :mod:`monitor.ingest.classify_step`): no record's exception reaches this loop; the
only exceptions that stop the role are :class:`~monitor.classify.isolate.ModelUnavailable` (the
model or device is gone) and :class:`~monitor.ingest.health.BrokerLost` (the broker failed every
call for ``kafka.broker_exit_after_sec``). :attr:`ClassifyWorker.broker_reachable` is False once
calls have failed for ``kafka.broker_down_after_sec`` (``finmon_broker_up 0``, an ERROR log).
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
from kafka.errors import KafkaError, MessageSizeTooLargeError

from monitor.classify.batcher import BatchPolicy
from monitor.classify.entities import entity_queries
from monitor.classify.owner import Job, ModelOwner
from monitor.classify.protocol import Classifier
from monitor.contract import DEFAULT_LIMITS, DLQ_TRUNCATED_HEADER, DecodeLimits
from monitor.errors import FinMonError
from monitor.health import RoleHealth
from monitor.ingest import kafka_io
from monitor.ingest.classify_step import (
    OutRecord,
    RawRecord,
    Topics,
    count_tokens,
    dead_letter,
    decode_record,
    encode_result,
    processing_error,
)
from monitor.ingest.health import BrokerWatch
from monitor.ingest.offsets import OffsetTracker
from monitor.ingest.throttle import Throttle
from monitor.metrics import Metrics
from monitor.settings import KafkaSettings
from monitor.tickers import EMPTY_DICTIONARY, TickerDictionary

logger = logging.getLogger(__name__)

COMMIT_TIMEOUT_MS = 2_000
COMMIT_INTERVAL_SEC = 0.5
# While the model has work, the Kafka thread waits for its results (woken as each batch ends) and
# polls the broker only every BUSY_POLL_INTERVAL_MS, or FED_POLL_INTERVAL_MS once the model has a
# full call queued behind the one it runs (or a full queue: partitions paused). A poll cost about
# 1.5 ms of CPU across this thread and kafka-python's IO thread; polling every 5 ms while the model
# worked cost more CPU than the items did (docs/bench-e2e.md). Such a poll waits at most
# BUSY_POLL_TIMEOUT_MS for records; an idle worker blocks in poll for kafka.poll_timeout_ms.
BUSY_POLL_TIMEOUT_MS = 5
BUSY_POLL_INTERVAL_MS = 20
FED_POLL_INTERVAL_MS = 100
RESEND_BACKOFF_SEC = 0.5
RESEND_BACKOFF_MAX_SEC = 10.0
WARN_INTERVAL_SEC = 10.0
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
    record: RawRecord
    out: OutRecord
    future: Any
    not_before: float = 0.0
    attempts: int = 0

    @property
    def offset(self) -> int:
        return self.record.offset

    def back_off(self, now: float) -> None:
        """No future; the next attempt after a capped exponential pause."""
        self.future = None
        self.not_before = now + min(RESEND_BACKOFF_MAX_SEC, RESEND_BACKOFF_SEC * 2**self.attempts)
        self.attempts += 1


@dataclass
class ClassifyWorker:
    """One classify consumer in the ``kafka.classify_group`` group. ``run`` blocks until stopped."""

    kafka: KafkaSettings
    classifier: Classifier
    metrics: Metrics
    policy: BatchPolicy = field(default_factory=BatchPolicy)
    limits: DecodeLimits = DEFAULT_LIMITS
    role_health: RoleHealth | None = None
    drain_timeout_sec: float = DRAIN_TIMEOUT_SEC
    # The running model owner (set by ``run``): the hot reload swaps models through it.
    owner: ModelOwner[Origin] | None = field(default=None, init=False)
    # Name -> ticker dictionary for the entities scored with each item (model.ticker_names).
    names: TickerDictionary = EMPTY_DICTIONARY
    broker: BrokerWatch = field(init=False)

    def __post_init__(self) -> None:
        self.broker = BrokerWatch("classify", self.kafka, self.metrics.broker_up)

    @property
    def broker_reachable(self) -> bool:
        """False once broker calls have failed for ``kafka.broker_down_after_sec``. Thread-safe."""
        return self.broker.reachable

    def run(self, stop: threading.Event) -> None:
        """Poll, classify, produce, commit, until ``stop`` is set. Never raises on bad input.

        Raises ModelUnavailable when the model is gone and BrokerLost when the broker is.
        """
        kafka_io.ensure_topics(
            self.kafka, [self.kafka.raw_topic, self.kafka.scored_topic, self.kafka.dlq_topic]
        )
        owner: ModelOwner[Origin] = ModelOwner(
            self.classifier,
            self.policy,
            self.metrics,
            beat=self.role_health.model.beat
            if self.role_health and self.role_health.model
            else None,
        )
        self.owner = owner
        pipeline = _Pipeline(self, owner, kafka_io.make_producer(self.kafka))
        consumer = kafka_io.make_consumer(
            self.kafka, self.kafka.classify_group, [self.kafka.raw_topic], listener=pipeline
        )
        pipeline.consumer = consumer
        owner.start()
        self.metrics.up.labels("classify").set(1)
        self.broker.started()
        logger.info("classify worker started on %s", self.kafka.raw_topic)
        try:
            pipeline.loop(stop)
            pipeline.drain()
        finally:
            self.metrics.up.labels("classify").set(0)
            owner.stop(timeout_sec=5)
            pipeline.producer.close(timeout=5)
            # drain() committed what is durable; kafka-python calls the revoke listener from its
            # IO thread on close, where a blocking commit is refused.
            pipeline.closing = True
            try:
                consumer.close(autocommit=False)
            except KafkaError as exc:
                logger.warning("consumer close failed (%r)", exc)
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
        self.closing = False
        self.broker = worker.broker
        self.warnings = Throttle(WARN_INTERVAL_SEC)
        self._next_commit = 0.0
        self._next_poll = 0.0

    # -- the loop ---------------------------------------------------------------------------
    def loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self.poll()
            self.step()

    def step(self) -> None:
        if self.worker.role_health is not None:
            self.worker.role_health.loop.beat()
        if not self.owner.alive:
            # Without its model thread the worker would sit paused forever: fail loudly instead,
            # so the daemon exits and its supervisor restarts it (uncommitted work is redelivered).
            error = self.owner.error
            if isinstance(error, FinMonError):
                raise error
            raise RuntimeError(f"the model thread died ({error!r}); see the log above")
        self.feed()
        self.collect()
        self.reap()
        now = time.monotonic()
        if now >= self._next_commit:
            self._next_commit = now + COMMIT_INTERVAL_SEC
            self.commit()
        self._probe()
        self.broker.judge()

    def poll(self) -> None:
        """Poll the broker; while the model works, between polls, wait for its results."""
        assert self.consumer is not None
        now = time.monotonic()
        working = self.owner.pending > 0
        if working and now < self._next_poll:
            self.owner.wait_results(self._next_poll - now)
            return
        interval_ms = FED_POLL_INTERVAL_MS if self._model_fed() else BUSY_POLL_INTERVAL_MS
        self._next_poll = now + interval_ms / 1000
        busy = working or bool(self.backlog or self.sends)
        timeout_ms = BUSY_POLL_TIMEOUT_MS if busy else self.kafka.poll_timeout_ms
        polled = self.consumer.poll(timeout_ms=timeout_ms, max_records=self.kafka.max_poll_records)
        if polled:
            self.broker.ok()
        for partition, records in polled.items():
            self._accept(partition, records)

    def _model_fed(self) -> bool:
        """Whether the model has a call's worth queued behind the one it runs (or a full queue)."""
        return self.paused or self.owner.pending >= 2 * self.worker.policy.max_batch_items

    def _accept(self, partition: TopicPartition, records: list[Any]) -> None:
        self.metrics.messages_consumed.inc(len(records))
        valid: list[tuple[Any, Any]] = []
        now = datetime.now(UTC)
        started = time.perf_counter()
        for record in records:
            self.tracker.track(partition, record.offset)
            decoded = decode_record(record, self.topics.dlq, self.worker.limits, now)
            if isinstance(decoded, OutRecord):
                self._send(partition, record, decoded)
            else:
                valid.append((record, decoded))
                if decoded.repaired_chars:
                    self.metrics.text_repairs.inc(decoded.repaired_chars)
        counts = count_tokens([item.text for _, item in valid])
        self._observe("decode", started)
        for (record, item), n_tokens in zip(valid, counts, strict=True):
            if isinstance(n_tokens, Exception):
                self._send(
                    partition,
                    record,
                    processing_error(record, self.topics.dlq, "tokenize", n_tokens),
                )
                continue
            try:
                queries = (
                    entity_queries(item.text, item.tickers, self.worker.names)
                    if self._wants_entities()
                    else ()
                )
            except Exception as exc:
                self._send(
                    partition, record, processing_error(record, self.topics.dlq, "entities", exc)
                )
                continue
            origin = Origin(partition, record, item)
            self.backlog.append(Job(item.text, n_tokens, origin, queries))

    def _wants_entities(self) -> bool:
        """Whether the served model scores entities (a Classifier without ``scores_entities``
        is asked). Without an entity head the engine ignores the queries, so they are not built
        (13 us per item); items queued across a hot reload onto an entity model go without."""
        return bool(getattr(self.owner.classifier, "scores_entities", True))

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
        started = time.perf_counter()
        outs = [
            encode_result(
                job.context.record,
                item=job.context.item,
                prediction=prediction,
                model_version=version,
                topics=self.topics,
                scored_at=scored_at,
                max_record_bytes=self.kafka.max_request_bytes,
            )
            for job, prediction, version in results
        ]
        started = self._observe("encode", started)
        for (job, _, _), out in zip(results, outs, strict=True):
            self._send(job.context.partition, job.context.record, out)
        self._observe("produce", started)

    def _observe(self, stage: str, started: float) -> float:
        """Record a stage's seconds since ``started``; returns now, the next stage's start."""
        now = time.perf_counter()
        self.metrics.stage_seconds.labels(stage).observe(now - started)
        return now

    def _send(self, partition: TopicPartition, record: RawRecord, out: OutRecord) -> None:
        send = _Send(partition, record, out, None)
        self._attempt(send, time.monotonic())
        self.sends.append(send)

    def reap(self) -> None:
        """Mark acknowledged outputs done; re-send failed ones after a capped backoff."""
        still: deque[_Send] = deque()
        now = time.monotonic()
        for send in self.sends:
            if send.future is None and now >= send.not_before:
                self._attempt(send, now)
            if send.future is None or not send.future.is_done:
                still.append(send)
            elif send.future.succeeded():
                self.broker.ok()
                self.tracker.done(send.partition, send.offset)
                self._count(send.out)
            else:
                self._failed(send, send.future.exception, now)
                still.append(send)
        self.sends = still

    def _attempt(self, send: _Send, now: float) -> None:
        """Hand the record to the producer; a refusal is handled like a failed produce."""
        out = send.out
        try:
            send.future = self.producer.send(
                out.topic, key=out.key, value=out.value, headers=list(out.headers)
            )
        except KafkaError as exc:
            self._failed(send, exc, now)

    def _failed(self, send: _Send, exc: BaseException, now: float) -> None:
        """Too large: shrink it into a dead letter and send that. Otherwise retry after a pause."""
        self.metrics.produce_errors.inc()
        if isinstance(exc, MessageSizeTooLargeError):
            send.out = self._shrunk(send)
            self._warn(
                "too_large", "record for %s too large (%r): dead-lettered", send.out.topic, exc
            )
            self._attempt(send, now)
            return
        self.broker.failed(exc)
        self._warn("produce", "produce to %s failed (%r); re-sending", send.out.topic, exc)
        send.back_off(now)

    def _shrunk(self, send: _Send) -> OutRecord:
        """The dead letter that replaces a record the producer or broker refused as too large."""
        limit = self.kafka.max_request_bytes
        if send.out.reason is None:
            detail = f"scored record of {send.out.size_bytes} bytes refused as too large"
            return dead_letter(
                send.record, self.topics.dlq, "too_large_output", detail, max_record_bytes=limit
            )
        # A dead letter the broker refused (its limit is below ours): keep the headers only.
        headers = dict(send.out.headers)
        headers.setdefault(DLQ_TRUNCATED_HEADER, str(len(send.out.value)).encode())
        return OutRecord(send.out.topic, send.out.key, b"", tuple(headers.items()), send.out.reason)

    def _warn(self, kind: str, message: str, *args: object) -> None:
        """A rate-limited WARNING: at most one per kind every WARN_INTERVAL_SEC."""
        held = self.warnings.allow(kind)
        if held is not None:
            suffix = f" ({held} similar warnings suppressed)" if held else ""
            logger.warning("%s%s", message % args, suffix)

    def commit(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        offsets = self.tracker.committable()
        if partitions is not None:
            wanted = set(partitions)
            offsets = {tp: off for tp, off in offsets.items() if tp in wanted}
        if not offsets or self.consumer is None:
            return
        started = time.perf_counter()
        try:
            kafka_io.commit(self.consumer, offsets, timeout_ms=COMMIT_TIMEOUT_MS)
            self._observe("commit", started)
            self.tracker.committed(offsets)
            self.broker.ok()
        except KafkaError as exc:
            # A rebalance: the new owner re-reads from the last commit (duplicates only). A
            # timeout: the broker is unreachable; the next commit covers these offsets too.
            if getattr(exc, "retriable", False):
                self.broker.failed(exc)
            self._warn("commit", "commit failed (%r); will retry or be redelivered", exc)

    def drain(self) -> None:
        """On stop: finish the batch in the model, wait for every ack, commit. Queued items are
        dropped (uncommitted, so redelivered). Bounded by the drain timeout."""
        started = time.monotonic()
        deadline = started + self.worker.drain_timeout_sec
        self.backlog.clear()  # not submitted yet: redelivered after restart
        self.owner.abandon_queued()  # queued, not in the model yet: redelivered too
        while (self.owner.pending or self.sends) and time.monotonic() < deadline:
            self.collect()
            self.producer.flush(timeout=1)
            self.reap()
            time.sleep(0.01)
        self.commit()
        drain_sec = time.monotonic() - started
        self.metrics.drain_seconds.set(drain_sec)
        left = self.owner.pending + len(self.sends)
        logger.info(
            "classify drained in %.0f ms (%d items left to redelivery)", drain_sec * 1000, left
        )

    # -- rebalance listener (called inside poll) --------------------------------------------
    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        if not self.closing:
            self.commit(revoked)
        self.tracker.forget(revoked)
        gone = set(revoked)
        self.backlog = deque(j for j in self.backlog if j.context.partition not in gone)
        self.paused = False
        logger.info("partitions revoked: %s", sorted(str(tp) for tp in revoked))

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        logger.info("partitions assigned: %s", sorted(str(tp) for tp in assigned))
        if self.worker.role_health is not None:
            self.worker.role_health.note_assignment(assigned)

    # -- broker health and metrics ----------------------------------------------------------
    def _probe(self) -> None:
        """A broker round trip when due (log-end offsets of news.raw), which also gives the lag."""
        if self.consumer is None:
            return
        ends = self.broker.probe(self.consumer, self.kafka.raw_topic)
        value = None if ends is None else kafka_io.lag_from(self.consumer, ends)
        if value is not None:
            self.metrics.consumer_lag.labels(self.kafka.classify_group).set(value)

    def _count(self, out: OutRecord) -> None:
        if out.reason is not None:
            self.metrics.dlq_messages.labels(out.reason).inc()
            if out.error_stage == "model":
                self.metrics.model_errors.inc()
        else:
            self.metrics.items_scored.labels(out.item_topic, out.item_sentiment).inc()
