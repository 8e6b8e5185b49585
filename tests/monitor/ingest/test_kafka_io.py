"""The clients kafka_io builds take their settings from ``kafka.*``."""

from __future__ import annotations

import pytest

from monitor.broker import EmbeddedBroker
from monitor.ingest.kafka_io import make_consumer
from monitor.settings import KafkaSettings
from tests.kafka_helpers import unique_kafka_settings


def test_fetch_wait_defaults_to_50_ms() -> None:
    # kafka-python's 500 ms held an idle consumer's fetch past new records on the embedded broker.
    assert KafkaSettings().fetch_max_wait_ms == 50


@pytest.mark.integration
@pytest.mark.parametrize("wait_ms", [50, 500])
def test_the_consumer_fetch_wait_is_the_setting(broker: EmbeddedBroker, wait_ms: int) -> None:
    kafka = unique_kafka_settings(broker.bootstrap_servers, fetch_max_wait_ms=wait_ms)
    consumer = make_consumer(kafka, kafka.classify_group, [kafka.raw_topic])
    try:
        assert consumer.config["fetch_max_wait_ms"] == wait_ms
    finally:
        consumer.close()
