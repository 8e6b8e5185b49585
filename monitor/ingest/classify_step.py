"""The classify step, free of Kafka I/O: raw records in, scored and dead-letter records out.

Every input record yields exactly one output record, either on ``news.scored`` or on
``news.dlq``, so nothing is dropped without a trace.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from monitor.classify.engine import Classifier
from monitor.classify.owner import predict_safely
from monitor.contract import (
    DLQ_DETAIL_HEADER,
    DLQ_REASON_HEADER,
    DLQ_SOURCE_HEADER,
    NewsItem,
    Prediction,
    decode_news,
    scored_record,
)
from monitor.errors import InvalidMessage

logger = logging.getLogger(__name__)

Header = tuple[str, bytes]


class RawRecord(Protocol):
    """The fields of a kafka-python ``ConsumerRecord`` the step reads."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class OutRecord:
    """One record to produce. ``reason`` is set for dead letters."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[Header, ...] = ()
    reason: str | None = None
    item_topic: str | None = None
    item_sentiment: str | None = None


@dataclass(frozen=True)
class Topics:
    scored: str
    dlq: str


def dead_letter(record: RawRecord, dlq_topic: str, reason: str, detail: str) -> OutRecord:
    """The original bytes, unchanged, with headers saying why and where they came from."""
    source = f"{record.topic}/{record.partition}/{record.offset}"
    return OutRecord(
        topic=dlq_topic,
        key=record.key,
        value=record.value or b"",
        headers=(
            (DLQ_REASON_HEADER, reason.encode()),
            (DLQ_DETAIL_HEADER, detail[:500].encode("utf-8", "replace")),
            (DLQ_SOURCE_HEADER, source.encode()),
        ),
        reason=reason,
    )


def _record_time(record: RawRecord) -> datetime:
    return datetime.fromtimestamp(max(record.timestamp, 0) / 1000, tz=UTC)


def decode_record(record: RawRecord, dlq_topic: str) -> NewsItem | OutRecord:
    """The validated item, or its dead letter."""
    try:
        return decode_news(record.value or b"", _record_time(record))
    except InvalidMessage as exc:
        return dead_letter(record, dlq_topic, exc.reason, exc.detail)


def encode_result(
    record: RawRecord,
    *,
    item: NewsItem,
    prediction: Prediction | Exception,
    model_version: str,
    topics: Topics,
    scored_at: datetime,
) -> OutRecord:
    """The ``news.scored`` record for one prediction, or a ``model_error`` dead letter."""
    if isinstance(prediction, Exception):
        return dead_letter(record, topics.dlq, "model_error", repr(prediction))
    body = scored_record(item, prediction, model_version, scored_at, _record_time(record))
    return OutRecord(
        topic=topics.scored,
        key=prediction.topic.encode(),
        value=json.dumps(body, ensure_ascii=False).encode(),
        item_topic=prediction.topic,
        item_sentiment=prediction.sentiment,
    )


def classify_records(
    records: Sequence[RawRecord],
    classifier: Classifier,
    topics: Topics,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[OutRecord]:
    """Decode, classify and encode in one call. Output: dead letters first, then scored records."""
    out: list[OutRecord] = []
    valid: list[tuple[RawRecord, NewsItem]] = []
    for record in records:
        decoded = decode_record(record, topics.dlq)
        if isinstance(decoded, OutRecord):
            out.append(decoded)
        else:
            valid.append((record, decoded))
    predictions = predict_safely(classifier, [item.text for _, item in valid])
    scored_at = clock()
    for (record, item), prediction in zip(valid, predictions, strict=True):
        out.append(
            encode_result(
                record,
                item=item,
                prediction=prediction,
                model_version=classifier.version,
                topics=topics,
                scored_at=scored_at,
            )
        )
    return out
