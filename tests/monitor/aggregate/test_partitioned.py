"""The partitioned aggregate role on the real broker: three aggregators in one group raise the
alerts that one raises, topic, ticker and overall alike, through the rebalances of their joins."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from alerts.events import AlertEvent
from monitor.aggregate.changelog import StateCache
from monitor.aggregate.partitioned import PartitionedWorker
from monitor.broker import EmbeddedBroker
from monitor.metrics import build_metrics
from monitor.settings import AggregateSettings, KafkaSettings
from tests.kafka_helpers import unique_kafka_settings
from tests.polling import wait_until
from tests.reliability.scored_stream import AGGREGATE, expected, feed, stream

pytestmark = pytest.mark.integration


def group(kafka: KafkaSettings, name: str) -> KafkaSettings:
    return kafka.model_copy(
        update={
            "aggregate_group": f"{kafka.aggregate_group}-{name}",
            "partials_topic": f"{kafka.scored_topic}.partials-{name}",
        }
    )


def start(
    kafka: KafkaSettings, state: Path, stop: threading.Event, got: list[AlertEvent]
) -> threading.Thread:
    settings = AggregateSettings.model_validate({**AGGREGATE, "commit_interval_ms": 500})
    worker = PartitionedWorker(
        kafka,
        settings,
        build_metrics(),
        StateCache(state / "cache.sqlite"),
        [got.append],
        topics=settings.topic_labels,
    )
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    return thread


def test_three_aggregators_raise_the_alerts_of_one(broker: EmbeddedBroker, tmp_path: Path) -> None:
    records = stream()
    want = expected(records)
    kinds = {key.split(":")[1].split("=")[0] for key, _ in want}
    assert kinds == {"topic", "ticker", "overall"}
    kafka = unique_kafka_settings(broker.bootstrap_servers, topic_partitions=3)
    one, three = group(kafka, "one"), group(kafka, "three")
    stop = threading.Event()
    got_one: list[AlertEvent] = []
    got_three: list[AlertEvent] = []
    threads = [start(one, tmp_path / "one", stop, got_one)]
    threads += [start(three, tmp_path / f"three{n}", stop, got_three) for n in range(3)]
    done = threading.Event()
    producer = threading.Thread(
        target=feed, args=(broker.bootstrap_servers, kafka.scored_topic, records, done)
    )
    producer.start()
    try:

        def arrived() -> bool:
            assert all(t.is_alive() for t in threads), "an aggregator stopped"
            return all(
                {(e.idempotency_key, e.status) for e in got} >= want for got in (got_one, got_three)
            )

        assert wait_until(arrived, 240, 0.5)
    finally:
        stop.set()
        producer.join(60)
    assert {(e.idempotency_key, e.status) for e in got_one} == want
    assert {(e.idempotency_key, e.status) for e in got_three} == want
