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


def _predict_safely(
    classifier: Classifier, items: Sequence[NewsItem]
) -> list[Prediction | Exception]:
    """Predict the batch; if it fails, retry one by one so one bad item cannot sink the rest."""
    if not items:
        return []
    try:
        return list(classifier.predict([item.text for item in items]))
    except Exception as batch_exc:
        logger.warning("batch of %d failed (%r); retrying items one by one", len(items), batch_exc)
    results: list[Prediction | Exception] = []
    for item in items:
        try:
            results.append(classifier.predict([item.text])[0])
        except Exception as exc:
            results.append(exc)
    return results


def classify_records(
    records: Sequence[RawRecord],
    classifier: Classifier,
    topics: Topics,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[OutRecord]:
    """Decode, classify and encode. Output order: dead letters first, then scored records."""
    out: list[OutRecord] = []
    valid: list[tuple[RawRecord, NewsItem]] = []
    for record in records:
        try:
            valid.append((record, decode_news(record.value or b"", _record_time(record))))
        except InvalidMessage as exc:
            out.append(dead_letter(record, topics.dlq, exc.reason, exc.detail))
    predictions = _predict_safely(classifier, [item for _, item in valid])
    scored_at = clock()
    for (record, item), prediction in zip(valid, predictions, strict=True):
        if isinstance(prediction, Exception):
            out.append(dead_letter(record, topics.dlq, "model_error", repr(prediction)))
            continue
        body = scored_record(item, prediction, classifier.version, scored_at, _record_time(record))
        out.append(
            OutRecord(
                topic=topics.scored,
                key=prediction.topic.encode(),
                value=json.dumps(body, ensure_ascii=False).encode(),
                item_topic=prediction.topic,
                item_sentiment=prediction.sentiment,
            )
        )
    return out
