"""Restart safety: SIGKILL the classify worker mid-stream, start it again, lose nothing."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from monitor.broker import EmbeddedBroker
from monitor.settings import KafkaSettings
from tests.kafka_helpers import (
    drain,
    news,
    produce,
    start_worker,
    unique_kafka_settings,
    worker_config,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOTAL = 3000


def _wait_scored(bootstrap: str, topic: str, at_least: int, timeout_sec: float) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    deadline = time.monotonic() + timeout_sec
    while not consumer.partitions_for_topic(topic) and time.monotonic() < deadline:
        time.sleep(0.1)
    parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
    consumer.assign(parts)
    seen = 0
    while seen < at_least and time.monotonic() < deadline:
        seen += sum(len(b) for b in consumer.poll(timeout_ms=100).values())
    consumer.close()
    return seen


def _produced_and_committed(bootstrap: str, kafka: KafkaSettings) -> tuple[int, int]:
    """Records on the scored topic (read for a few seconds, so that the killed worker's last
    acknowledged batch is in), and the input offsets the classify group committed."""
    produced = len(drain(bootstrap, kafka.scored_topic, lambda rs: False, 5))
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=kafka.classify_group, enable_auto_commit=False
    )
    try:
        parts = consumer.partitions_for_topic(kafka.raw_topic) or set()
        committed = sum(consumer.committed(TopicPartition(kafka.raw_topic, p)) or 0 for p in parts)
    finally:
        consumer.close()
    return produced, committed


def test_kill_and_restart_loses_no_valid_id(
    broker: EmbeddedBroker, tiny_model_dir: Path, tmp_path: Path
) -> None:
    kafka = unique_kafka_settings(broker.bootstrap_servers, max_poll_records=8)
    config = worker_config(tmp_path, kafka, tiny_model_dir)
    produce(broker.bootstrap_servers, kafka.raw_topic, (news(i) for i in range(TOTAL)))
    log = tmp_path / "worker.log"
    first = start_worker(config, log)
    seen_before_kill = _wait_scored(broker.bootstrap_servers, kafka.scored_topic, 200, 120)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert 200 <= seen_before_kill < TOTAL, f"kill came too late: {seen_before_kill} scored"
    produced, committed = _produced_and_committed(broker.bootstrap_servers, kafka)
    second = start_worker(config, log)
    try:
        scored = drain(
            broker.bootstrap_servers,
            kafka.scored_topic,
            lambda rs: len({json.loads(r.value)["id"] for r in rs}) >= TOTAL,
            240,
        )
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(30)
    ids = [json.loads(r.value)["id"] for r in scored]
    assert set(ids) == {f"n-{i}" for i in range(TOTAL)}, log.read_text()[-2000:]
    # At least once: the restarted worker redoes exactly what the killed one produced but had
    # not committed (commits follow the broker's acks), so no more duplicates than that.
    duplicates = len(ids) - len(set(ids))
    assert duplicates <= produced - committed, (duplicates, produced, committed)
    assert second.returncode == 0, log.read_text()[-2000:]
