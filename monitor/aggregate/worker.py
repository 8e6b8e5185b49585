"""The aggregate role: consume ``news.scored`` into windows, raise alerts, commit.

Commit policy: records are counted into the aggregator as they arrive. Every tick
(``TICK_INTERVAL_SEC``) the worker closes due windows, hands the resulting alert events to the
sinks (the webhook outbox commits them to SQLite before returning), checkpoints the aggregator
state to SQLite, and only then commits the offsets of every record counted so far. After a crash the
records since the last commit are replayed; the aggregator's persisted id set drops the ones it had
already counted.

Records are keyed by topic, so with several aggregators each topic's windows live in exactly one of
them, but the ticker and ``overall`` windows of each cover only its own partitions. Hence one
aggregator per deployment: at every rebalance the worker exports how many partitions of
``news.scored`` it owns against how many there are, and warns when it owns fewer (the
``FinMonAggregatorPartial`` alert watches the two gauges).

Broker loss (:class:`~monitor.ingest.health.BrokerWatch`, as in the classify role): polls,
produces, commits and a log-end probe of ``news.scored`` feed
``finmon_broker_up{role="aggregate"}``; after ``kafka.broker_exit_after_sec`` of failures ``run``
raises BrokerLost.

Rebalances: kafka-python 3 runs the rebalance listener on its network thread while ``poll`` waits,
where a blocking commit raises ("Cannot block on net.run()"). So on revocation the worker
checkpoints (windows, alerts and the id set, to SQLite; dead letters to the broker) without
committing, and carries the revoked partitions' offsets; partitions assigned back (under the eager
protocol, every rebalance revokes all of them) are sought to those offsets and committed on the
poll thread at the next tick. A partition that moved to another member resumes there from the last
commit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition

from alerts.events import AlertEvent
from monitor.aggregate.dead_letters import DeadLetters, deliver
from monitor.aggregate.engine import Aggregator
from monitor.health import RoleHealth
from monitor.ingest import kafka_io
from monitor.ingest.health import BrokerWatch
from monitor.metrics import Metrics
from monitor.settings import KafkaSettings

logger = logging.getLogger(__name__)

TICK_INTERVAL_SEC = 1.0
COMMIT_TIMEOUT_MS = 2_000  # bounded, so a dead broker cannot hang the loop

AlertSink = Callable[[AlertEvent], None]


def wall_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class AggregateWorker:
    """One aggregator in the ``kafka.aggregate_group`` group. ``run`` blocks until stopped."""

    kafka: KafkaSettings
    aggregator: Aggregator
    metrics: Metrics
    sinks: Sequence[AlertSink] = ()
    clock_ms: Callable[[], int] = wall_ms
    health: RoleHealth | None = None
    _pending: dict[TopicPartition, int] = field(default_factory=dict, init=False)
    _carried: dict[TopicPartition, int] = field(default_factory=dict, init=False)
    _producer: KafkaProducer | None = field(default=None, init=False)
    broker: BrokerWatch = field(init=False)
    _dead: DeadLetters = field(init=False)

    def __post_init__(self) -> None:
        self.broker = BrokerWatch("aggregate", self.kafka, self.metrics.broker_up)
        self._dead = DeadLetters(self.kafka, self.metrics, self.broker)

    @property
    def broker_reachable(self) -> bool:
        """False once broker calls have failed for ``kafka.broker_down_after_sec``. Thread-safe."""
        return self.broker.reachable

    def run(self, stop: threading.Event) -> None:
        """Consume, window, alert, checkpoint, commit until ``stop`` is set.

        Raises BrokerLost once every broker call has failed for ``kafka.broker_exit_after_sec``.
        """
        kafka_io.ensure_topics(self.kafka, [self.kafka.scored_topic, self.kafka.dlq_topic])
        listener = _CheckpointOnRevoke(self)
        consumer = kafka_io.make_consumer(
            self.kafka, self.kafka.aggregate_group, [self.kafka.scored_topic], listener=listener
        )
        listener.consumer = consumer
        self._producer = kafka_io.make_producer(self.kafka)
        self.metrics.up.labels("aggregate").set(1)
        self.broker.started()
        logger.info("aggregate worker started on %s", self.kafka.scored_topic)
        next_tick = 0.0
        try:
            while not stop.is_set():
                if self.health is not None:
                    self.health.loop.beat()
                polled = consumer.poll(
                    timeout_ms=self.kafka.poll_timeout_ms, max_records=self.kafka.max_poll_records
                )
                if polled:
                    self.broker.ok()
                self._count(polled)
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + TICK_INTERVAL_SEC
                    self.tick(consumer)
                self.hold_while_dead_letters_wait(consumer)
                self.broker.probe(consumer, self.kafka.scored_topic)
                self.broker.judge()
            self.tick(consumer)
        finally:
            self.metrics.up.labels("aggregate").set(0)
            consumer.close(autocommit=False)
            self._producer.close(timeout=5)
            logger.info("aggregate worker stopped")

    def _count(self, polled: dict) -> None:
        now_ms = self.clock_ms()
        for tp, batch in polled.items():
            for record in batch:
                self._dead.count_scored(record, self.aggregator.add, now_ms)
            if batch:
                self._pending[tp] = batch[-1].offset + 1

    def hold_while_dead_letters_wait(self, consumer: KafkaConsumer) -> None:
        """Flow control: pause every partition while MAX_WAITING_DEAD_LETTERS dead letters wait
        for the broker (the consumer keeps polling, so it stays in the group), resume after."""
        paused = consumer.paused()
        if self._dead.full and not paused:
            waiting, topic = len(self._dead), self.kafka.scored_topic
            logger.warning("%d dead letters not acknowledged: pausing %s", waiting, topic)
            consumer.pause(*consumer.assignment())
        elif not self._dead.full and paused:
            consumer.resume(*paused)

    def deliver(self, event: AlertEvent) -> None:
        """Hand the event to every sink; one failing sink neither stops the others nor the role."""
        deliver(self.sinks, self.metrics, event)

    def _flush_dead_letters(self) -> bool:
        """Produce pending dead letters; True once the broker acknowledged all of them."""
        if self._producer is None:
            return not self._dead.waiting
        return self._dead.flush(self._producer)

    def note_ownership(self, owned: int, total: int, *, warn: bool = True) -> None:
        """Export how much of the scored stream this aggregator counts; warn (at an assignment,
        not while partitions are taken away) when it is not all of it."""
        self.metrics.owned_partitions.set(owned)
        self.metrics.stream_partitions.set(total)
        if warn and owned < total:
            logger.warning(
                "this aggregator owns %d of the %d partitions of %s: its topic windows are whole "
                "(records are keyed by topic), its ticker and overall windows count only these "
                "partitions' items; run one aggregator per deployment",
                owned,
                total,
                self.kafka.scored_topic,
            )

    def forget(self, partitions: Sequence[TopicPartition]) -> None:
        """Drop uncommitted offsets of partitions this worker no longer owns."""
        for tp in partitions:
            self._pending.pop(tp, None)

    def revoked(self, partitions: Sequence[TopicPartition]) -> None:
        """On the network thread (``poll`` waits): checkpoint everything counted, without a
        commit, and carry the revoked partitions' offsets over the rebalance."""
        self.tick(None)
        for tp in partitions:
            if tp in self._pending:
                self._carried[tp] = self._pending.pop(tp)

    def reassigned(self, consumer: KafkaConsumer, partitions: Sequence[TopicPartition]) -> None:
        """Partitions assigned back resume after what was counted (their records are in the
        checkpoint) and are committed at the next tick; the rest of the carry is dropped."""
        for tp in partitions:
            if tp in self._carried:
                offset = self._pending[tp] = self._carried[tp]
                consumer.seek(tp, offset)
        self._carried.clear()

    def tick(self, consumer: KafkaConsumer | None = None) -> list[AlertEvent]:
        """Close due windows, deliver alerts durably, checkpoint, then commit."""
        events = self.aggregator.advance(self.clock_ms())
        for event in events:
            logger.info(
                "alert %s %s %s=%s: %s",
                event.status,
                event.rule,
                event.key_kind,
                event.key,
                event.summary,
            )
            self.deliver(event)
        self.aggregator.checkpoint()
        if not self._flush_dead_letters():
            return events  # not durable yet: commit on a later tick
        if (
            consumer is not None
            and self._pending
            and self.broker.commit(consumer, self._pending, COMMIT_TIMEOUT_MS)
        ):
            self._pending.clear()
        return events


class _CheckpointOnRevoke(ConsumerRebalanceListener):
    """Before partitions move, checkpoint what was counted; offsets of partitions assigned back
    are committed on the poll thread (the listener runs on kafka-python's network thread)."""

    def __init__(self, worker: AggregateWorker) -> None:
        self.worker = worker
        self.consumer: KafkaConsumer | None = None

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        if revoked:
            self.worker.revoked(revoked)
            self._note_ownership(lost=revoked)

    def on_partitions_lost(self, lost: list[TopicPartition]) -> None:
        """Evicted from the group: another member may read these already; resume from the last
        commit (the id set, checkpointed here, skips what was counted)."""
        if lost:
            self.worker.tick(None)
            self.worker.forget(lost)
            self._note_ownership(lost=lost)

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        logger.info("aggregating partitions %s", sorted(str(tp) for tp in assigned))
        if self.consumer is not None:
            self.worker.reassigned(self.consumer, assigned)
        if self.worker.health is not None:
            self.worker.health.note_assignment(assigned)
        self._note_ownership(gained=assigned)

    def _note_ownership(
        self, gained: Sequence[TopicPartition] = (), lost: Sequence[TopicPartition] = ()
    ) -> None:
        """Owned = the consumer's assignment (plus what the callback names: under the eager
        protocol it is the whole new assignment, under the cooperative one the partitions added),
        less what is being revoked."""
        if self.consumer is None:
            return
        topic = self.worker.kafka.scored_topic
        owned = (set(self.consumer.assignment()) | set(gained)) - set(lost)
        total = len(self.consumer.partitions_for_topic(topic) or ())
        count = sum(1 for tp in owned if tp.topic == topic)
        self.worker.note_ownership(count, total, warn=not lost)
