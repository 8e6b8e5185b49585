"""The aggregate role on the real broker: unreadable records are dead-lettered, sinks isolated,
a second aggregator in the group is reported as a split of the stream."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from alerts.events import AlertEvent
from monitor.aggregate.engine import Aggregator
from monitor.aggregate.worker import AggregateWorker
from monitor.broker import EmbeddedBroker
from monitor.contract import DLQ_REASON_HEADER
from monitor.metrics import Metrics, build_metrics
from monitor.settings import AggregateSettings
from tests.kafka_helpers import committed_through, drain, produce, unique_kafka_settings
from tests.polling import wait_until


def _scored(i: int) -> bytes:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return json.dumps({
        "id": f"s-{i}", "headline": "h", "topic": "Earnings", "sentiment": "neutral",
        "sentiment_probs": {"negative": 0.1, "neutral": 0.8, "positive": 0.1},
        "sentiment_score": 0.0, "published_at": now, "scored_at": now, "tickers": [],
    }).encode()  # fmt: skip


@pytest.mark.integration
def test_unreadable_scored_records_go_to_the_dlq(broker: EmbeddedBroker, metrics: Metrics) -> None:
    kafka = unique_kafka_settings(broker.bootstrap_servers)
    aggregator = Aggregator(AggregateSettings(window_ms=1_000), metrics=metrics)
    worker = AggregateWorker(kafka, aggregator, metrics)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        produce(broker.bootstrap_servers, kafka.scored_topic, [_scored(1), b"garbage", _scored(2)])
        dlq = drain(broker.bootstrap_servers, kafka.dlq_topic, lambda rs: len(rs) >= 1, 60)
    finally:
        stop.set()
        thread.join(30)
    assert [r.value for r in dlq] == [b"garbage"]
    assert dict(dlq[0].headers)[DLQ_REASON_HEADER] == b"not_json"
    counted = metrics.registry.get_sample_value(
        "finmon_aggregate_items_total", {"topic": "Earnings", "sentiment": "neutral"}
    )
    assert counted == 2


def test_a_failing_sink_does_not_stop_the_others(metrics: Metrics) -> None:
    got: list[AlertEvent] = []

    def broken(event: AlertEvent) -> None:
        raise OSError("disk full")

    worker = AggregateWorker(
        unique_kafka_settings("127.0.0.1:1"),
        Aggregator(AggregateSettings(), metrics=metrics),
        metrics,
        sinks=(broken, got.append),
    )
    event = AlertEvent(
        rule="negative_share_spike", key_kind="topic", key="Earnings", status="firing",
        severity="warning", window_start_ms=0, window_end_ms=60_000, value=0.9, baseline=0.2,
        score=9.0, volume=50, summary="test", at_ms=60_000,
    )  # fmt: skip
    worker.deliver(event)
    assert got == [event]
    assert metrics.registry.get_sample_value("finmon_alerts_sink_errors_total") == 1


def _owned(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("finmon_aggregate_owned_partitions") or 0.0


@pytest.mark.integration
def test_a_second_aggregator_in_the_group_is_reported_partial(
    broker: EmbeddedBroker, caplog: pytest.LogCaptureFixture
) -> None:
    kafka = unique_kafka_settings(broker.bootstrap_servers)  # news.scored with 3 partitions
    first, second = build_metrics(), build_metrics()
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=AggregateWorker(kafka, Aggregator(AggregateSettings(), metrics=m), m).run,
            args=(stop,),
        )
        for m in (first, second)
    ]
    caplog.set_level(logging.WARNING, logger="monitor.aggregate.worker")
    try:
        threads[0].start()
        alone = wait_until(lambda: _owned(first) == 3, 60.0, 0.2)
        stream = first.registry.get_sample_value("finmon_aggregate_stream_partitions")
        threads[1].start()
        split = wait_until(
            lambda: _owned(first) + _owned(second) == 3 and 0 < _owned(second) < 3, 60.0, 0.2
        )
        shares = (_owned(first), _owned(second))
    finally:
        stop.set()
        for thread in threads:
            if thread.is_alive():
                thread.join(30)
    assert alone and stream == 3, "the only aggregator owns all 3 partitions"
    assert split and 0 < shares[0] < 3, shares
    assert f"of the 3 partitions of {kafka.scored_topic}" in caplog.text


@dataclass(frozen=True)
class _Record:
    value: bytes
    offset: int
    topic: str = "s"
    partition: int = 0
    timestamp: int = 0
    key: bytes | None = None


def test_records_that_would_crash_decode_or_blind_windows_are_dead_lettered(
    metrics: Metrics,
) -> None:
    worker = AggregateWorker(
        unique_kafka_settings("127.0.0.1:1"),
        Aggregator(AggregateSettings(window_ms=1_000), metrics=metrics),
        metrics,
    )
    fields = json.loads(_scored(1))
    values = [
        b'{"id": "deep", "x": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",  # refused before parsing
        json.dumps({**fields, "published_at": "0001-01-01T00:00:00+14:00"}).encode(),  # Overflow
        json.dumps({**fields, "id": "far", "published_at": "2999-01-01T00:00:00Z"}).encode(),
        _scored(3),
    ]
    records = [_Record(v, n) for n, v in enumerate(values)]
    worker._count({TopicPartition("s", 0): records})
    assert [d.reason for d in worker._dead.waiting] == [
        "too_deep",
        "processing_error",
        "future_event_time",
    ]
    counted = metrics.registry.get_sample_value(
        "finmon_aggregate_items_total", {"topic": "Earnings", "sentiment": "neutral"}
    )
    assert counted == 1


class _PausingConsumer:
    """The consumer calls the flow control makes, in memory."""

    def __init__(self) -> None:
        self.owned = {TopicPartition("s", 0), TopicPartition("s", 1)}
        self.held: set[TopicPartition] = set()

    def assignment(self) -> set[TopicPartition]:
        return self.owned

    def paused(self) -> set[TopicPartition]:
        return set(self.held)

    def pause(self, *partitions: TopicPartition) -> None:
        self.held |= set(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.held -= set(partitions)


def test_consumption_pauses_while_too_many_dead_letters_wait(metrics: Metrics) -> None:
    from monitor.aggregate.dead_letters import MAX_WAITING_DEAD_LETTERS

    worker = AggregateWorker(
        unique_kafka_settings("127.0.0.1:1"), Aggregator(AggregateSettings()), metrics
    )
    consumer = _PausingConsumer()
    garbage = [_Record(b"garbage", n) for n in range(MAX_WAITING_DEAD_LETTERS)]
    worker._count({TopicPartition("s", 0): garbage[:-1]})
    worker.hold_while_dead_letters_wait(consumer)
    assert consumer.held == set()
    worker._count({TopicPartition("s", 0): garbage[-1:]})
    worker.hold_while_dead_letters_wait(consumer)
    assert consumer.held == consumer.owned
    worker._dead.waiting.clear()  # the broker acknowledged them
    worker.hold_while_dead_letters_wait(consumer)
    assert consumer.held == set()


def _feed(bootstrap: str, topic: str, count: int, done: threading.Event) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for start in range(0, count, 20):
        for i in range(start, min(count, start + 20)):
            producer.send(topic, value=_scored(i))
        producer.flush(30)
        time.sleep(0.1)
    producer.close()
    done.set()


@pytest.mark.integration
def test_a_rebalance_mid_stream_counts_every_record_once_and_commits_them(
    broker: EmbeddedBroker, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    """kafka-python 3 runs the rebalance listener on its network thread, where a commit raises
    ("Cannot block on net.run()"): the worker checkpoints there and commits on the poll thread."""
    kafka = unique_kafka_settings(broker.bootstrap_servers)  # news.scored with 3 partitions
    worker = AggregateWorker(kafka, Aggregator(AggregateSettings(), metrics=metrics), metrics)
    stop, fed = threading.Event(), threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    count = 600
    caplog.set_level(logging.INFO)
    thread.start()
    try:
        assert wait_until(lambda: _owned(metrics) == 3, 60.0, 0.2)
        feeder = threading.Thread(
            target=_feed, args=(broker.bootstrap_servers, kafka.scored_topic, count, fed)
        )
        feeder.start()
        # A member joins mid-stream and leaves: two rebalances while records are counted.
        other = KafkaConsumer(
            bootstrap_servers=broker.bootstrap_servers,
            group_id=kafka.aggregate_group,
            enable_auto_commit=False,
            session_timeout_ms=kafka.session_timeout_ms,
            heartbeat_interval_ms=kafka.heartbeat_interval_ms,
        )
        other.subscribe([kafka.scored_topic])
        deadline = time.monotonic() + 60
        while not other.assignment() and time.monotonic() < deadline:
            other.poll(200)
        joined = bool(other.assignment())
        other.close(autocommit=False)
        feeder.join(120)

        def all_counted() -> bool:
            return _counted(metrics) >= count and committed_through(
                broker.bootstrap_servers, kafka.aggregate_group, kafka.scored_topic
            )

        settled = wait_until(all_counted, 120.0, 0.5)
    finally:
        stop.set()
        thread.join(30)
    assert joined and fed.is_set()
    assert settled, (_counted(metrics), count)
    assert _counted(metrics) == count  # each record once: replays are skipped by the id set
    assert "Cannot block" not in caplog.text


def _counted(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value(
        "finmon_aggregate_items_total", {"topic": "Earnings", "sentiment": "neutral"}
    )
    return value or 0.0
