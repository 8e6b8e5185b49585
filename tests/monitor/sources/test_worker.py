"""The source role on the real broker: feeds, push and drop folder into news.raw; kill -9."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from kafka import KafkaConsumer, TopicPartition
from pydantic import SecretStr

from monitor.broker import EmbeddedBroker
from monitor.metrics import Metrics
from monitor.settings import load_settings
from monitor.sources import SourceRole
from tests.kafka_helpers import drain, unique_kafka_settings
from tests.monitor.sources.conftest import fixture_bytes
from tests.monitor.sources.feed_server import FeedServer, Reply
from tests.polling import wait_until

pytestmark = pytest.mark.integration


def big_feed(count: int) -> bytes:
    items = "".join(
        f"<item><title>Headline number {i} on $ACME</title>"
        f"<link>https://big.example.com/{i}</link><guid>big-{i}</guid>"
        f"<pubDate>Tue, 01 Dec 2026 08:{i % 60:02d}:00 GMT</pubDate></item>"
        for i in range(count)
    )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Big</title>'
        f"<link>https://big.example.com/</link><description>d</description>{items}</channel></rss>"
    ).encode()


def test_feed_push_and_drop_folder_reach_news_raw(
    broker: EmbeddedBroker, feed_server: FeedServer, tmp_path: Path, metrics: Metrics
) -> None:
    kafka = unique_kafka_settings(broker.bootstrap_servers)
    url = feed_server.serve("/rss", lambda r: Reply(200, fixture_bytes("rss2.xml")))
    settings = load_settings(
        None,
        environ={},
        overrides={
            "role": "source",
            "kafka": kafka.model_dump(),
            "state": {"dir": str(tmp_path / "state")},
            "sources": {
                "feeds": [{"name": "wire", "url": url, "interval_sec": 3600, "jitter_sec": 0}],
                "push": {"enabled": True, "port": 0, "token": "tok"},
                "drop_folder": {
                    "dir": str(tmp_path / "drop"),
                    "scan_interval_sec": 0.2,
                    "settle_sec": 0,
                },
            },
        },
    )
    assert isinstance(settings.sources.push.token, SecretStr)
    role = SourceRole.from_settings(settings, metrics)
    stop = threading.Event()
    thread = threading.Thread(target=role.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: role.push is not None and role.board.alive, 60)
        assert role.push is not None
        answer = httpx.post(
            role.push.url,
            json={"id": "pushed-1", "headline": "x"},
            headers={"Authorization": "Bearer tok"},
        )
        assert answer.status_code == 202
        (tmp_path / "drop" / "f.jsonl").write_text(json.dumps({"id": "dropped-1", "headline": "y"}))
        records = drain(broker.bootstrap_servers, kafka.raw_topic, lambda r: len(r) >= 5, 60)
        sources = sorted(json.loads(r.value)["source"] for r in records)
        assert sources == ["dropfolder", "push", "wire", "wire", "wire"]
        assert wait_until((tmp_path / "drop" / "done" / "f.jsonl").exists, 30)
        assert role.board.snapshot()["wire"].last_success_sec is not None
        assert metrics.registry.get_sample_value("finmon_up", {"role": "source"}) == 1
    finally:
        stop.set()
        thread.join(30)
    assert not role.board.alive


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "--config", str(config), "--role", "source"],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _committed_position(path: Path) -> tuple[str, ...] | None:
    if not path.exists():
        return None
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT url, etag FROM feeds").fetchone()
    return tuple(row) if row else None


class TopicReader:
    """Reads a topic from the start, incrementally, once it exists."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self.topic = topic
        self.ids: set[str] = set()
        self.records = 0

    def read(self, timeout_ms: int = 200) -> set[str]:
        if not self.consumer.assignment():
            parts = self.consumer.partitions_for_topic(self.topic)
            if not parts:
                return self.ids
            tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
            self.consumer.assign(tps)
            self.consumer.seek_to_beginning(*tps)
        for batch in self.consumer.poll(timeout_ms=timeout_ms).values():
            self.records += len(batch)
            self.ids.update(json.loads(r.value)["id"] for r in batch)
        return self.ids


@dataclass
class Attempt:
    """One run of the source role against a fresh topic and state, frozen at its first acks."""

    reader: TopicReader
    config: Path
    state: Path
    on_topic: int = 0
    committed: tuple[str, ...] | None = None


def _freeze_at_first_acks(broker: EmbeddedBroker, url: str, root: Path, log: Path) -> Attempt:
    """Start the role; SIGSTOP it as soon as items are on the topic, then SIGKILL it."""
    kafka = unique_kafka_settings(broker.bootstrap_servers)
    root.mkdir()
    config = root / "finmon.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "kafka": kafka.model_dump(),
                "metrics": {"enabled": False},
                "state": {"dir": str(root / "state")},
                "sources": {
                    "feeds": [{"name": "big", "url": url, "interval_sec": 1, "jitter_sec": 0}]
                },
            }
        )
    )
    attempt = Attempt(
        TopicReader(broker.bootstrap_servers, kafka.raw_topic), config, root / "state"
    )
    process = _start(config, log)
    try:
        wait_until(lambda: bool(attempt.reader.read(20)), 90, 0.0)
        process.send_signal(signal.SIGSTOP)  # frozen: it can commit nothing from here on
        settled = -1
        while settled != len(attempt.reader.read(1_000)):  # everything it had acknowledged
            settled = len(attempt.reader.ids)
        attempt.on_topic = settled
        attempt.committed = _committed_position(attempt.state / "sources.sqlite")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    return attempt


@pytest.mark.slow
def test_kill_9_mid_poll_loses_nothing(
    broker: EmbeddedBroker, feed_server: FeedServer, tmp_path: Path
) -> None:
    total = 6000
    body = big_feed(total)
    url = feed_server.serve("/rss", lambda r: Reply(200, body, {"ETag": '"one"'}))
    log = tmp_path / "source.log"
    for number in range(4):  # until the freeze lands between the first ack and the commit
        attempt = _freeze_at_first_acks(broker, url, tmp_path / f"attempt-{number}", log)
        assert attempt.committed is None or attempt.on_topic == total, (
            f"position committed with {attempt.on_topic} of {total} items acknowledged"
        )
        if attempt.committed is None:
            break
        attempt.reader.consumer.close()
    else:
        pytest.fail(f"four polls committed before their first items were read; see {log}")
    assert attempt.on_topic > 0  # killed after some acks and before the commit
    requests_before = len(feed_server.requests)
    second = _start(attempt.config, log)
    try:
        wait_until(lambda: len(attempt.reader.read()) >= total, 120, 0.0)
        wait_until(lambda: _committed_position(attempt.state / "sources.sqlite") is not None, 30)
    finally:
        second.terminate()
        second.wait(30)
    attempt.reader.consumer.close()
    assert len(attempt.reader.ids) == total, f"lost {total - len(attempt.reader.ids)}; see {log}"
    # The restart redid the poll from the old position (no ETag had been committed) and then
    # committed the new one.
    assert feed_server.requests[requests_before].headers.get("if-none-match") is None
    assert _committed_position(attempt.state / "sources.sqlite") == (url, '"one"')
