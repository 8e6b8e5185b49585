"""POST /v1/news on the real broker: auth, limits, partial batches, 202 only after the ack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from monitor.broker import EmbeddedBroker
from monitor.ingest.kafka_io import ensure_topics, make_producer
from monitor.metrics import Metrics
from monitor.settings import KafkaSettings, PushSettings
from monitor.sources.produce import AckProducer
from monitor.sources.push import PushServer
from monitor.sources.status import SourceBoard
from tests.kafka_helpers import drain, unique_kafka_settings

pytestmark = pytest.mark.integration

TOKEN = "s3cret-token-value"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def item(i: int, **fields: Any) -> dict[str, Any]:
    return {"id": f"p-{i}", "headline": f"Item {i}: $ACME shares rise", **fields}


def start(kafka: KafkaSettings, metrics: Metrics, **push: Any) -> tuple[PushServer, AckProducer]:
    ensure_topics(kafka, [kafka.raw_topic])
    producer = AckProducer(
        make_producer(kafka), kafka.raw_topic, timeout_sec=5.0, max_in_flight_items=50
    )
    settings = PushSettings(enabled=True, port=0, token=SecretStr(TOKEN), **push)
    server = PushServer(settings, producer, metrics, SourceBoard())
    server.start()
    return server, producer


@pytest.fixture
def kafka(broker: EmbeddedBroker) -> KafkaSettings:
    return unique_kafka_settings(broker.bootstrap_servers, produce_timeout_sec=5.0)


@pytest.fixture
def push(kafka: KafkaSettings, metrics: Metrics) -> Iterator[PushServer]:
    server, producer = start(kafka, metrics, max_items=10, max_body_bytes=2_000)
    yield server
    server.stop()
    producer.close()


def test_one_item_is_on_the_topic_when_202_comes(
    push: PushServer, kafka: KafkaSettings, broker: EmbeddedBroker
) -> None:
    answer = httpx.post(push.url, json=item(1), headers=AUTH)
    assert answer.status_code == 202 and answer.json() == {"accepted": 1}
    # Read at once, with no wait for the 202's items to arrive: they were acknowledged already.
    records = drain(broker.bootstrap_servers, kafka.raw_topic, lambda r: len(r) >= 1, 10)
    message = json.loads(records[0].value)
    assert message["id"] == "p-1" and message["source"] == "push"
    assert message["tickers"] == ["ACME"] and message["published_at_estimated"] is True


def test_auth_is_required(push: PushServer, metrics: Metrics) -> None:
    with httpx.Client() as client:  # one kept-alive connection: a refused body is not reread
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            assert client.post(push.url, json=item(1), headers=headers).status_code == 401
        assert client.post(push.url, json=item(1), headers=AUTH).status_code == 202
    assert metrics.registry.get_sample_value("finmon_source_push_requests_total", {"code": "401"})
    assert httpx.post(push.url.replace("/v1/news", "/v2"), headers=AUTH).status_code == 404


def test_partial_batch_sends_the_valid_items(
    push: PushServer, kafka: KafkaSettings, broker: EmbeddedBroker
) -> None:
    batch = [item(1), {"headline": "no id"}, item(2, published_at="yesterday"), item(3), "x"]
    answer = httpx.post(push.url, json=batch, headers=AUTH)
    assert answer.status_code == 400
    body = answer.json()
    assert body["accepted"] == 2
    assert [(r["index"], r["reason"]) for r in body["rejected"]] == [
        (1, "missing_id"),
        (2, "bad_published_at"),
        (4, "not_object"),
    ]
    records = drain(broker.bootstrap_servers, kafka.raw_topic, lambda r: len(r) >= 2, 10)
    assert sorted(json.loads(r.value)["id"] for r in records) == ["p-1", "p-3"]


def test_limits_give_413(push: PushServer) -> None:
    many = [item(i) for i in range(11)]
    assert httpx.post(push.url, json=many, headers=AUTH).status_code == 413
    big = item(1, body="x" * 3_000)
    assert httpx.post(push.url, json=big, headers=AUTH).status_code == 413


def test_not_json_is_400(push: PushServer) -> None:
    for junk in (b"{nope", b"[" * 1_500, b"\xff\xfe"):
        answer = httpx.post(push.url, content=junk, headers=AUTH)
        assert answer.status_code == 400 and answer.json()["error"] == "not_json"
    nan = httpx.post(push.url, content=b'{"id": "n", "headline": "x", "score": NaN}', headers=AUTH)
    assert nan.status_code == 400 and nan.json()["rejected"][0]["reason"] == "bad_number"


def test_backpressure_gives_429_with_retry_after(kafka: KafkaSettings, metrics: Metrics) -> None:
    server, producer = start(kafka, metrics, retry_after_sec=3)
    try:
        assert producer.try_reserve(50)  # items of other requests awaiting their acks
        answer = httpx.post(server.url, json=item(1), headers=AUTH)
        assert answer.status_code == 429 and answer.headers["retry-after"] == "3"
        producer.release(50)
        assert httpx.post(server.url, json=item(1), headers=AUTH).status_code == 202
    finally:
        server.stop()
        producer.close()


def test_no_202_without_the_ack(tmp_path: Any, metrics: Metrics) -> None:
    """A broker that goes away: the request gets 503 (retry), never a 202."""
    with EmbeddedBroker(log_path=tmp_path / "b.log") as own:
        kafka = unique_kafka_settings(own.bootstrap_servers, produce_timeout_sec=2.0)
        server, producer = start(kafka, metrics)
        try:
            assert httpx.post(server.url, json=item(1), headers=AUTH).status_code == 202
            own.stop()
            answer = httpx.post(server.url, json=item(2), headers=AUTH, timeout=30)
            assert answer.status_code == 503 and "retry-after" in answer.headers
        finally:
            server.stop()
            producer.close(timeout_sec=0.5)


def test_the_token_is_not_in_the_settings_repr() -> None:
    settings = PushSettings(enabled=True, token=SecretStr(TOKEN))
    assert TOKEN not in repr(settings) and TOKEN not in str(settings.model_dump())
