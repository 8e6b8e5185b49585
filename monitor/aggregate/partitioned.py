"""The aggregate role with ``aggregate.mode: partitioned``: any number of aggregators in one group.

Every member subscribes to ``news.scored`` (stage one) and ``kafka.partials_topic`` (stage two);
each assigned partition gets its own state (:mod:`monitor.aggregate.stages`), created when it is
assigned and dropped when it is revoked. A newly assigned partition stays paused, and ``/readyz``
fails (``aggregate.restore``), until its state has been restored from the local cache and its
changelog topic (``<group>.first-changelog`` / ``<group>.second-changelog``, compacted).

Commit policy, every ``aggregate.commit_interval_ms`` (and before partitions are revoked):

1. stage one cuts its partials into bundles and checkpoints them with its state to the changelog;
2. once acknowledged, the bundles are produced to the partials topic;
3. stage two closes due windows, hands the alerts to the sinks (the durable outbox), and
   checkpoints its windows, baselines, rule states and not yet settled alerts to the changelog;
4. dead letters are produced; then the offsets of both topics are committed.

After a crash (kill -9), whoever takes a partition over restores that state: stage one re-sends
the bundles it had not seen acknowledged (stage two skips those it has applied) and resumes at
the offset after its last cut; stage two re-submits the alerts its sinks had not finished, and
replays the bundles since its last commit. An alert is never lost; one may arrive twice, with the
same idempotency key.

Broker loss is loud as in the single mode (:class:`~monitor.ingest.health.BrokerWatch`): polls,
changelog and dead-letter produces, commits and a log-end probe of ``news.scored`` feed
``finmon_broker_up{role="aggregate"}`` and readiness ``broker.aggregate``; after
``kafka.broker_exit_after_sec`` of failures ``run`` raises BrokerLost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from prometheus_client.registry import Collector

from alerts.events import AlertEvent
from monitor.aggregate.changelog import Restored, Restorer, StateCache
from monitor.aggregate.collector import AggregateCollector
from monitor.aggregate.dead_letters import DeadLetters, deliver
from monitor.aggregate.stages import Bundle, FirstStage, SecondStage
from monitor.aggregate.track import KeyTrack
from monitor.aggregate.windows import KeyId
from monitor.aggregate.worker import COMMIT_TIMEOUT_MS, wall_ms
from monitor.health import Condition, RoleHealth
from monitor.ingest import kafka_io
from monitor.ingest.classify_step import RawRecord
from monitor.ingest.health import BrokerWatch
from monitor.metrics import Metrics
from monitor.settings import AggregateSettings, KafkaSettings

logger = logging.getLogger(__name__)

AlertSink = Callable[[AlertEvent], None]
RESTORE_STEP_MS = 50
# A checkpoint's acks are awaited at most this long (or kafka.produce_timeout_sec if shorter):
# a dead broker then fails a cycle in seconds, so BrokerWatch can judge it, and the state stays
# dirty for the next cycle.
CHECKPOINT_ACK_TIMEOUT_SEC = 5.0
COMPACTED = {"cleanup.policy": "compact"}


def changelog_topics(kafka: KafkaSettings) -> tuple[str, str]:
    """The changelog topics of stage one and stage two."""
    group = kafka.aggregate_group
    return f"{group}.first-changelog", f"{group}.second-changelog"


class CommitFailed(KafkaError):
    """A checkpoint was not acknowledged; nothing is committed this cycle (retried next)."""


@dataclass
class PartitionedWorker:
    """One member of ``kafka.aggregate_group`` in partitioned mode. ``run`` blocks until stopped."""

    kafka: KafkaSettings
    settings: AggregateSettings
    metrics: Metrics
    cache: StateCache
    sinks: Sequence[AlertSink] = ()
    # True once the sinks have finished with an event (delivered or given up): it is no longer
    # re-submitted after a takeover. None: kept up to aggregate.max_unsettled_alerts.
    settled: Callable[[AlertEvent], bool] | None = None
    topics: Collection[str] = ()
    top_headlines: int = 5
    clock_ms: Callable[[], int] = wall_ms
    health: RoleHealth | None = None
    restored: Condition | None = None
    first: dict[TopicPartition, FirstStage] = field(default_factory=dict, init=False)
    second: dict[TopicPartition, SecondStage] = field(default_factory=dict, init=False)
    _next: dict[TopicPartition, int] = field(default_factory=dict, init=False)
    _waiting: dict[TopicPartition, TopicPartition] = field(default_factory=dict, init=False)
    _dead: DeadLetters | None = field(default=None, init=False)
    _producer: KafkaProducer | None = field(default=None, init=False)
    _consumer: KafkaConsumer | None = field(default=None, init=False)
    _restorer: Restorer | None = field(default=None, init=False)
    _partials_count: int = field(default=0, init=False)
    broker: BrokerWatch = field(init=False)

    def __post_init__(self) -> None:
        self.broker = BrokerWatch("aggregate", self.kafka, self.metrics.broker_up)

    @property
    def broker_reachable(self) -> bool:
        """False once broker calls have failed for ``kafka.broker_down_after_sec``. Thread-safe."""
        return self.broker.reachable

    # -- lifecycle --------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Consume both stages, checkpoint, commit until ``stop`` is set."""
        kafka = self.kafka
        self._producer = kafka_io.make_producer(kafka)
        self._ensure_topics(self._producer)
        self._dead = DeadLetters(kafka, self.metrics, self.broker)
        self._partials_count = len(self._producer.partitions_for(kafka.partials_topic))
        restore_consumer = KafkaConsumer(**kafka.client_config(), enable_auto_commit=False)
        self._restorer = Restorer(
            restore_consumer,
            self._producer,
            self.cache,
            produce_timeout_sec=kafka.produce_timeout_sec,
        )
        listener = _Rebalance(self)
        self._consumer = kafka_io.make_consumer(
            kafka, kafka.aggregate_group, [kafka.scored_topic, kafka.partials_topic], listener
        )
        self.metrics.up.labels("aggregate").set(1)
        self.broker.started()
        logger.info(
            "partitioned aggregate worker started on %s and %s",
            kafka.scored_topic,
            kafka.partials_topic,
        )
        interval_sec = self.settings.commit_interval_ms / 1000
        next_cycle = time.monotonic() + interval_sec
        try:
            while not stop.is_set():
                self._beat()
                self._poll_once()
                if time.monotonic() >= next_cycle:
                    next_cycle = time.monotonic() + interval_sec
                    self.cycle()
                self._hold_while_dead_letters_wait()
                self.broker.probe(self._consumer, kafka.scored_topic)
                self.broker.judge()
            self.cycle()
        finally:
            self.metrics.up.labels("aggregate").set(0)
            self._consumer.close(autocommit=False)
            restore_consumer.close()
            self._producer.close(timeout=5)
            logger.info("partitioned aggregate worker stopped")

    def _beat(self) -> None:
        if self.health is not None:
            self.health.loop.beat()

    def _poll_once(self) -> None:
        assert self._consumer is not None and self._restorer is not None
        restoring = bool(self._restorer.restoring)
        timeout_ms = RESTORE_STEP_MS if restoring else self.kafka.poll_timeout_ms
        polled = self._consumer.poll(timeout_ms=timeout_ms, max_records=self.kafka.max_poll_records)
        if polled:
            self.broker.ok()
        self._handle(polled)
        if restoring:
            for done in self._restorer.step(RESTORE_STEP_MS):
                self._restored(done)

    def _ensure_topics(self, producer: KafkaProducer) -> None:
        kafka = self.kafka
        kafka_io.ensure_topics(kafka, [kafka.scored_topic, kafka.partials_topic, kafka.dlq_topic])
        if not kafka.create_topics:
            return
        admin = kafka_io.make_admin(kafka)
        try:
            existing = set(admin.list_topics())
            counts = {
                t: len(producer.partitions_for(t))
                for t in (kafka.scored_topic, kafka.partials_topic)
            }
            wanted = [
                NewTopic(name, counts[source], 1, topic_configs=COMPACTED)
                for name, source in zip(
                    changelog_topics(kafka), (kafka.scored_topic, kafka.partials_topic), strict=True
                )
                if name not in existing
            ]
            if wanted:
                try:
                    admin.create_topics(wanted)
                    logger.info("created changelog topics %s", [t.name for t in wanted])
                except TopicAlreadyExistsError:
                    logger.debug("changelog topics appeared concurrently")
        finally:
            admin.close()

    # -- assignment -------------------------------------------------------------------------

    def _changelog(self, tp: TopicPartition) -> TopicPartition:
        first, second = changelog_topics(self.kafka)
        name = first if tp.topic == self.kafka.scored_topic else second
        return TopicPartition(name, tp.partition)

    def assigned(self, tps: Sequence[TopicPartition]) -> None:
        """Pause the new partitions and start restoring their state."""
        assert self._consumer is not None and self._restorer is not None
        new = [tp for tp in tps if tp not in self.first and tp not in self.second]
        if not new:
            return
        self._consumer.pause(*new)
        for tp in new:
            log_tp = self._changelog(tp)
            self._waiting[log_tp] = tp
            self._restorer.begin(log_tp)
        self._note_restoring()

    def revoked(self, tps: Sequence[TopicPartition]) -> None:
        """Checkpoint and commit everything, then drop the revoked partitions' state."""
        assert self._restorer is not None
        # kafka-python runs this listener on its network thread, where a commit cannot block:
        # the state is checkpointed here; the next owner resumes from it.
        self.cycle(commit=False)
        for tp in tps:
            self.first.pop(tp, None)
            self.second.pop(tp, None)
            self._next.pop(tp, None)
            log_tp = self._changelog(tp)
            if self._waiting.pop(log_tp, None) is not None:
                self._restorer.cancel([log_tp])
        self._note_restoring()

    def _restored(self, done: Restored) -> None:
        assert self._consumer is not None
        tp = self._waiting.pop(done.state.tp, None)
        if tp is None:
            return
        stage_name = "first" if tp.topic == self.kafka.scored_topic else "second"
        self.metrics.restore_seconds.labels(stage_name).observe(done.seconds)
        self.metrics.changelog_records.labels(stage_name, "restore").inc(done.records)
        if stage_name == "first":
            first = self.first[tp] = FirstStage(done.state, self.settings, **self._stage_options())
            if first.through is not None:
                self._consumer.seek(tp, first.through)
        else:
            second = SecondStage(done.state, self.settings, **self._stage_options())
            self.second[tp] = second
            for event in list(second.unsettled):
                self.deliver(event)
        self._consumer.resume(tp)
        self._note_restoring()

    def _hold_while_dead_letters_wait(self) -> None:
        """Flow control: news.scored pauses while too many dead letters wait for the broker."""
        assert self._consumer is not None and self._dead is not None
        scored = list(self.first)
        if self._dead.full and scored:
            self._consumer.pause(*scored)
        elif scored and set(scored) & set(self._consumer.paused()):
            self._consumer.resume(*scored)

    def _stage_options(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "topics": self.topics, "top_headlines": self.top_headlines}

    def _note_restoring(self) -> None:
        count = len(self._waiting)
        self.metrics.restoring_partitions.set(count)
        if self.restored is not None:
            reason = f"{count} partitions restoring their state from the changelog"
            self.restored.set(count == 0, None if count == 0 else reason)

    # -- records ----------------------------------------------------------------------------

    def _handle(self, polled: Mapping[TopicPartition, list[RawRecord]]) -> None:
        now_ms = self.clock_ms()
        assert self._dead is not None
        for tp, records in polled.items():
            first, second = self.first.get(tp), self.second.get(tp)
            if first is None and second is None and records:
                assert self._consumer is not None
                self._consumer.seek(tp, records[0].offset)  # read again once restored
                continue
            for record in records:
                if first is not None:
                    self._dead.count_scored(record, first.add, now_ms)
                elif second is not None:
                    self._merge(second, record, now_ms)
            if records and (first is not None or second is not None):
                self._next[tp] = records[-1].offset + 1

    def _merge(self, stage: SecondStage, record: RawRecord, now_ms: int) -> None:
        try:
            bundle = Bundle.decode(record.value or b"", self.top_headlines)
        except (ValueError, KeyError, TypeError) as exc:
            assert self._dead is not None
            self._dead.reject(record, "bad_partial", f"{type(exc).__name__}: {exc}"[:300], now_ms)
            return
        applied = stage.apply(bundle, now_ms)
        if not applied:
            self.metrics.partial_bundles.labels("duplicate").inc()

    # -- the commit cycle -------------------------------------------------------------------

    def deliver(self, event: AlertEvent) -> None:
        """Hand the event to every sink; one failing sink neither stops the others nor the role."""
        deliver(self.sinks, self.metrics, event)

    def cycle(self, *, commit: bool = True) -> list[AlertEvent]:
        """Cut, checkpoint and produce stage one; close, alert and checkpoint stage two; commit.
        Blocks on the broker's acks; a failed step leaves the commit to a later cycle."""
        events: list[AlertEvent] = []
        if self._producer is None or self._consumer is None:
            return events
        try:
            self._cycle_first()
            events = self._cycle_second()
        except KafkaError as exc:
            self.metrics.produce_errors.inc()
            self.broker.failed(exc)
            logger.warning("checkpoint not acknowledged (%r); committing on a later cycle", exc)
            return events
        assert self._dead is not None
        if not self._dead.flush(self._producer) or not commit:
            return events
        offsets = {tp: s.through for tp, s in self.first.items() if s.through is not None}
        offsets.update({tp: self._next[tp] for tp in self.second if tp in self._next})
        self.broker.commit(self._consumer, offsets, COMMIT_TIMEOUT_MS)
        return events

    def _cycle_first(self) -> None:
        assert self._producer is not None
        for tp, stage in self.first.items():
            next_offset = self._next.get(tp, stage.through)
            if next_offset is not None:
                stage.cut(next_offset, self._partials_count)
        self._write_changelog(self.first.values(), "first")
        futures = []
        for stage in self.first.values():
            for dest, body in stage.outgoing():
                futures.append(
                    self._producer.send(self.kafka.partials_topic, value=body, partition=dest)
                )
        self._acknowledged(futures)
        for stage in self.first.values():
            if stage.unsent:
                self.metrics.partial_bundles.labels("sent").inc(len(stage.unsent))
                stage.sent()

    def _cycle_second(self) -> list[AlertEvent]:
        now_ms = self.clock_ms()
        events: list[AlertEvent] = []
        for stage in self.second.values():
            for event in stage.advance(now_ms):
                logger.info(
                    "alert %s %s %s=%s", event.status, event.rule, event.key_kind, event.key
                )
                self.deliver(event)
                events.append(event)
            if self.settled is not None:
                stage.settle(self.settled)
            stage.checkpoint()
        self._write_changelog(self.second.values(), "second")
        return events

    def _write_changelog(self, stages: Collection[FirstStage | SecondStage], name: str) -> None:
        """Produce every dirty state key, wait for the acks, then update the local cache."""
        assert self._producer is not None
        pending = []
        for stage in stages:
            records = stage.state.take_dirty()
            if not records:
                continue
            log_tp = stage.state.tp
            futures = [
                self._producer.send(
                    log_tp.topic, key=key.encode(), value=value, partition=log_tp.partition
                )
                for key, value in records.items()
            ]
            pending.append((stage.state, records, futures))
        try:
            self._acknowledged([f for _, _, fs in pending for f in fs])
        except KafkaError:
            for state, records, _ in pending:
                state.keep_dirty(records)
            raise
        for state, records, futures in pending:
            next_offset = max(int(f.get().offset) for f in futures) + 1
            self.cache.write(state.tp, records, next_offset)
            self.metrics.changelog_records.labels(name, "write").inc(len(records))

    def _acknowledged(self, futures: list) -> None:
        assert self._producer is not None
        if not futures:
            return
        timeout = min(self.kafka.produce_timeout_sec, CHECKPOINT_ACK_TIMEOUT_SEC)
        self._producer.flush(timeout=timeout)
        for future in futures:
            future.get(timeout=timeout)

    # -- metrics ----------------------------------------------------------------------------

    def collector(self) -> Collector:
        """Window and detector state of every stage-two partition, at scrape time."""
        return AggregateCollector(_Tracks(self.second), _Active(self.second))


class _Tracks(Mapping[KeyId, KeyTrack]):
    """The tracks of every stage-two partition, as one read-only mapping."""

    def __init__(self, stages: Mapping[TopicPartition, SecondStage]) -> None:
        self._stages = stages

    def _maps(self) -> list[Mapping[KeyId, KeyTrack]]:
        return [s.aggregator.tracks for s in list(self._stages.values())]

    def __getitem__(self, key: KeyId) -> KeyTrack:
        for tracks in self._maps():
            if key in tracks:
                return tracks[key]
        raise KeyError(key)

    def __iter__(self) -> Iterator[KeyId]:
        return iter([k for tracks in self._maps() for k in list(tracks)])

    def __len__(self) -> int:
        return sum(len(t) for t in self._maps())


class _Active(Mapping[tuple[str, str, str, str], int]):
    def __init__(self, stages: Mapping[TopicPartition, SecondStage]) -> None:
        self._stages = stages

    def _merged(self) -> dict[tuple[str, str, str, str], int]:
        merged: dict[tuple[str, str, str, str], int] = {}
        for stage in list(self._stages.values()):
            merged.update(stage.aggregator.active)
        return merged

    def __getitem__(self, key: tuple[str, str, str, str]) -> int:
        return self._merged()[key]

    def __iter__(self) -> Iterator[tuple[str, str, str, str]]:
        return iter(self._merged())

    def __len__(self) -> int:
        return len(self._merged())


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, worker: PartitionedWorker) -> None:
        self.worker = worker

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        if revoked:
            self.worker.revoked(revoked)

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        logger.info("aggregating partitions %s", sorted(str(tp) for tp in assigned))
        if self.worker.health is not None:
            self.worker.health.note_assignment(assigned)
        self.worker.assigned(assigned)
