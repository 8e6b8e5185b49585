"""Kafka clients built from settings: consumers (manual commits only), producers, topic admin.

Every client gets ``KafkaSettings.client_config()``, so SASL/SSL options and secrets configured for
production reach kafka-python unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

from monitor.settings import KafkaSettings

logger = logging.getLogger(__name__)


def make_consumer(
    settings: KafkaSettings, group_id: str, topics: Iterable[str], listener: Any = None
) -> KafkaConsumer:
    """A group consumer with auto-commit off: offsets are committed by the worker, after output."""
    consumer = KafkaConsumer(
        **settings.client_config(),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset=settings.auto_offset_reset,
        max_poll_interval_ms=settings.max_poll_interval_ms,
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
        max_poll_records=settings.max_poll_records,
    )
    consumer.subscribe(list(topics), listener=listener)
    return consumer


def make_producer(settings: KafkaSettings) -> KafkaProducer:
    """A producer with acks=all by default, bounded retries, ordered per partition."""
    return KafkaProducer(
        **settings.client_config(),
        acks="all" if settings.producer_acks == "all" else 1,
        retries=5,
        max_in_flight_requests_per_connection=1,
        linger_ms=5,
        request_timeout_ms=int(settings.produce_timeout_sec * 1000),
    )


def ensure_topics(settings: KafkaSettings, topics: Iterable[str]) -> None:
    """Create missing topics (when ``kafka.create_topics`` is on); existing ones are kept."""
    if not settings.create_topics:
        return
    admin = KafkaAdminClient(**settings.client_config())
    try:
        existing = set(admin.list_topics())
        wanted = [t for t in dict.fromkeys(topics) if t not in existing]
        if wanted:
            new = [NewTopic(t, settings.topic_partitions, 1) for t in wanted]
            try:
                admin.create_topics(new)
                logger.info("created topics %s", wanted)
            except TopicAlreadyExistsError:
                logger.debug("topics appeared concurrently: %s", wanted)
    finally:
        admin.close()


def commit(consumer: KafkaConsumer, offsets: Mapping[TopicPartition, int]) -> None:
    """Synchronously commit ``offsets``; raises KafkaError when the group rejects it."""
    if offsets:
        consumer.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in offsets.items()})


def lag(consumer: KafkaConsumer) -> int | None:
    """Messages between the consumer's position and the log end, summed over its partitions."""
    assigned = list(consumer.assignment())
    if not assigned:
        return None
    try:
        ends = consumer.end_offsets(assigned)
        return int(sum(max(0, ends[tp] - consumer.position(tp)) for tp in assigned))
    except KafkaError as exc:
        logger.debug("lag unavailable: %s", exc)
        return None
