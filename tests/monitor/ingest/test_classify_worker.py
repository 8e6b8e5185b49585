"""The classify role on the real broker: every valid id scored, every malformed dead-lettered."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from monitor.broker import EmbeddedBroker
from monitor.classify.batcher import BatchPolicy
from monitor.classify.engine import TorchClassifier
from monitor.contract import DLQ_REASON_HEADER
from monitor.ingest.classify_worker import ClassifyWorker
from monitor.metrics import Metrics
from tests.kafka_helpers import drain, news, produce, unique_kafka_settings
from tests.keyword_classifier import KeywordClassifier

pytestmark = pytest.mark.integration

MALFORMED = (b"{oops", b'{"headline": "no id"}', b'{"id": "x", "headline": ""}', b"\xff", b"[]")


def test_500_valid_and_50_malformed(
    broker: EmbeddedBroker, tiny_model_dir: Path, metrics: Metrics
) -> None:
    kafka = unique_kafka_settings(broker.bootstrap_servers)
    values = [news(i) for i in range(500)] + [MALFORMED[i % 5] for i in range(50)]
    values = values[::2] + values[1::2]  # interleave malformed with valid
    worker = ClassifyWorker(kafka, TorchClassifier.from_dir(tiny_model_dir, device="cpu"), metrics)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        produce(broker.bootstrap_servers, kafka.raw_topic, values)
        scored = drain(
            broker.bootstrap_servers,
            kafka.scored_topic,
            lambda rs: len({json.loads(r.value)["id"] for r in rs}) >= 500,
            120,
        )
        dlq = drain(broker.bootstrap_servers, kafka.dlq_topic, lambda rs: len(rs) >= 50, 60)
    finally:
        stop.set()
        thread.join(30)
    ids = {json.loads(r.value)["id"] for r in scored}
    assert ids == {f"n-{i}" for i in range(500)}
    for r in scored:
        body = json.loads(r.value)
        assert body["topic"] and body["sentiment"] in ("negative", "neutral", "positive")
        assert r.key == body["topic"].encode()
    assert len(dlq) == 50
    assert sorted(r.value for r in dlq) == sorted(MALFORMED[i % 5] for i in range(50))
    assert all(dict(r.headers).get(DLQ_REASON_HEADER) for r in dlq)
    reg = metrics.registry
    total_dlq = sum(
        s.value
        for m in reg.collect()
        for s in m.samples
        if s.name == "finmon_ingest_dlq_messages_total"
    )
    scored_count = sum(
        s.value for m in reg.collect() for s in m.samples if s.name == "finmon_classify_items_total"
    )
    assert total_dlq == 50
    assert scored_count == len(scored)
    assert reg.get_sample_value("finmon_ingest_messages_consumed_total") == 550


class SlowClassifier(KeywordClassifier):
    """Takes 50 ms per batch, so a small model queue fills up."""

    def predict(self, texts, entities=None):
        time.sleep(0.05)
        return super().predict(texts)


def test_backpressure_pauses_and_loses_nothing(broker: EmbeddedBroker, metrics: Metrics) -> None:
    kafka = unique_kafka_settings(broker.bootstrap_servers, max_poll_records=50)
    policy = BatchPolicy(max_batch_items=4, max_batch_tokens=4096, max_wait_ms=5, max_queue_items=8)
    worker = ClassifyWorker(kafka, SlowClassifier(), metrics, policy)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        produce(broker.bootstrap_servers, kafka.raw_topic, [news(i) for i in range(300)])
        scored = drain(
            broker.bootstrap_servers,
            kafka.scored_topic,
            lambda rs: len({json.loads(r.value)["id"] for r in rs}) >= 300,
            120,
        )
    finally:
        stop.set()
        thread.join(30)
    assert {json.loads(r.value)["id"] for r in scored} == {f"n-{i}" for i in range(300)}
    assert (metrics.registry.get_sample_value("finmon_ingest_backpressure_pauses_total") or 0) > 0
