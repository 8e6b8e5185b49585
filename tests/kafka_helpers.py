"""Small helpers for tests that talk to the real broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml
from kafka import KafkaConsumer, KafkaProducer

from monitor.settings import KafkaSettings


def unique_kafka_settings(bootstrap: str, **extra: Any) -> KafkaSettings:
    """Fresh topic and group names per test, short group timeouts for the embedded broker."""
    tag = uuid.uuid4().hex[:8]
    fields: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "raw_topic": f"news.raw.{tag}",
        "scored_topic": f"news.scored.{tag}",
        "dlq_topic": f"news.dlq.{tag}",
        "classify_group": f"classify-{tag}",
        "aggregate_group": f"aggregate-{tag}",
        "max_poll_interval_ms": 6_000,
        "session_timeout_ms": 6_000,
        "heartbeat_interval_ms": 1_000,
        "max_poll_records": 64,
    }
    return KafkaSettings(**{**fields, **extra})


def produce(bootstrap: str, topic: str, values: Iterable[bytes]) -> int:
    """Produce and wait for every ack; records up to 8 MiB (the broker decides what it takes)."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", max_request_size=8 * 1024 * 1024
    )
    futures = [producer.send(topic, value=v) for v in values]
    producer.flush(30)
    for f in futures:
        f.get(30)
    producer.close()
    return len(futures)


def drain(
    bootstrap: str, topic: str, until: Callable[[list[Any]], bool], timeout_sec: float = 60.0
) -> list[Any]:
    """Read ``topic`` from the start (no group) until ``until(records)`` or the timeout."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    deadline = time.monotonic() + timeout_sec
    while not consumer.partitions_for_topic(topic) and time.monotonic() < deadline:
        time.sleep(0.2)
    from kafka import TopicPartition

    parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    records: list[Any] = []
    while time.monotonic() < deadline and not until(records):
        for batch in consumer.poll(timeout_ms=300).values():
            records.extend(batch)
    consumer.close()
    return records


def committed_through(bootstrap: str, group: str, topic: str) -> bool:
    """Whether ``group`` has committed every partition of ``topic`` up to its end."""
    from kafka import TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = consumer.end_offsets(tps)
        return bool(tps) and all((consumer.committed(tp) or 0) >= ends[tp] for tp in tps)
    finally:
        consumer.close(autocommit=False)


def news(i: int, **fields: Any) -> bytes:
    body = {
        "id": f"n-{i}",
        "headline": f"Company {i} shares fall after weak guidance",
        "body": None,
        "source": "test",
        "published_at": "2026-11-28T10:00:00Z",
        "tickers": ["ACME"],
    }
    body.update(fields)
    return json.dumps(body).encode()


def worker_config(tmp_path: Path, kafka: KafkaSettings, model_dir: Path, **sections: Any) -> Path:
    """A ``finmon run`` config file for a classify worker on ``kafka`` with ``model_dir``."""
    config = tmp_path / "finmon.yaml"
    body: dict[str, Any] = {
        "kafka": kafka.model_dump(),
        "model": {"path": str(model_dir), "device": "cpu"},
        "metrics": {"enabled": False},
        "state": {"dir": str(tmp_path / "state")},
    }
    config.write_text(yaml.safe_dump({**body, **sections}))
    return config


def start_worker(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """``finmon run --role classify`` in a subprocess, its output appended to ``log``."""
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "--config", str(config), "--role", "classify"],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
