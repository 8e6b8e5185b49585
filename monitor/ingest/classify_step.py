"""The classify step, free of Kafka I/O: raw records in, scored and dead-letter records out.

Every input record yields exactly one output record, either on ``news.scored`` or on
``news.dlq``, so nothing is dropped without a trace. No exception of one record escapes: a
contract breach is dead-lettered with its reason, and anything else raised while decoding,
counting tokens, classifying or encoding that record is dead-lettered as ``processing_error``
with the exception class in the ``finmon-dlq-error`` header. A scored record too large for the
producer (``kafka.max_request_bytes``) is dead-lettered as ``too_large_output``; a dead letter
too large for it carries its first bytes and the ``finmon-dlq-truncated-from-bytes`` header.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from monitor.classify.entities import entity_queries
from monitor.classify.isolate import isolate, predict_isolating
from monitor.classify.owner import estimate_tokens
from monitor.classify.protocol import Classifier
from monitor.contract import (
    DEFAULT_LIMITS,
    DLQ_DETAIL_HEADER,
    DLQ_ERROR_HEADER,
    DLQ_REASON_HEADER,
    DLQ_SOURCE_HEADER,
    DLQ_TRUNCATED_HEADER,
    DecodeLimits,
    NewsItem,
    Prediction,
    decode_news,
    encode_scored,
    scored_record,
)
from monitor.errors import InvalidMessage
from monitor.tickers import EMPTY_DICTIONARY, TickerDictionary

logger = logging.getLogger(__name__)

Header = tuple[str, bytes]

# kafka-python's MessageSizeTooLargeError check counts the record batch framing too.
RECORD_OVERHEAD_BYTES = 512
DEFAULT_MAX_RECORD_BYTES = 1_048_576


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


@dataclasses.dataclass(frozen=True, slots=True)
class OutRecord:
    """One record to produce. ``reason`` is set for dead letters."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[Header, ...] = ()
    reason: str | None = None
    item_topic: str | None = None
    item_sentiment: str | None = None
    error_stage: str | None = None  # processing_error: decode, tokenize, model or encode

    @property
    def size_bytes(self) -> int:
        """An upper bound of the produced record's size, as the producer's limit counts it."""
        headers = sum(len(k.encode()) + len(v) for k, v in self.headers)
        return len(self.key or b"") + len(self.value) + headers + RECORD_OVERHEAD_BYTES


@dataclasses.dataclass(frozen=True)
class Topics:
    scored: str
    dlq: str


def dead_letter(
    record: RawRecord,
    dlq_topic: str,
    reason: str,
    detail: str,
    *,
    error: BaseException | None = None,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> OutRecord:
    """The original bytes, unchanged, with headers saying why and where they came from.

    Bytes past what the producer can send (``max_record_bytes``) are cut, and the
    ``finmon-dlq-truncated-from-bytes`` header gives the original length.
    """
    source = f"{record.topic}/{record.partition}/{record.offset}"
    headers: list[Header] = [
        (DLQ_REASON_HEADER, reason.encode()),
        (DLQ_DETAIL_HEADER, detail[:500].encode("utf-8", "replace")),
        (DLQ_SOURCE_HEADER, source.encode()),
    ]
    if error is not None:
        headers.append((DLQ_ERROR_HEADER, type(error).__name__.encode()))
    out = OutRecord(
        topic=dlq_topic, key=record.key, value=b"", headers=tuple(headers), reason=reason
    )
    value = record.value or b""
    room = max_record_bytes - out.size_bytes - len(DLQ_TRUNCATED_HEADER) - 20
    if len(value) > room:
        headers.append((DLQ_TRUNCATED_HEADER, str(len(value)).encode()))
        value = value[: max(0, room)]
    return dataclasses.replace(out, value=value, headers=tuple(headers))


def processing_error(
    record: RawRecord, dlq_topic: str, stage: str, exc: BaseException
) -> OutRecord:
    """The dead letter of a record whose ``stage`` raised an unexpected exception."""
    logger.warning(
        "%s failed on %s/%d/%d: %r", stage, record.topic, record.partition, record.offset, exc
    )
    detail = f"{stage}: {type(exc).__name__}: {exc}"
    out = dead_letter(record, dlq_topic, "processing_error", detail, error=exc)
    return dataclasses.replace(out, error_stage=stage)


def record_time(record: RawRecord) -> datetime:
    """The Kafka record time; the wall clock when it is not a representable date."""
    try:
        return datetime.fromtimestamp(max(record.timestamp, 0) / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError, TypeError):
        return datetime.now(UTC)


def decode_record(
    record: RawRecord,
    dlq_topic: str,
    limits: DecodeLimits = DEFAULT_LIMITS,
    now: datetime | None = None,
) -> NewsItem | OutRecord:
    """The validated item, or its dead letter. Never raises."""
    try:
        return decode_news(record.value or b"", record_time(record), limits, now)
    except InvalidMessage as exc:
        return dead_letter(record, dlq_topic, exc.reason, exc.detail)
    except Exception as exc:
        return processing_error(record, dlq_topic, "decode", exc)


def count_tokens(texts: Sequence[str]) -> list[int | Exception]:
    """Estimated token counts per text (no tokenizer); the exception for a text that raised."""
    return isolate(estimate_tokens, texts)


def encode_result(
    record: RawRecord,
    *,
    item: NewsItem,
    prediction: Prediction | Exception,
    model_version: str,
    topics: Topics,
    scored_at: datetime,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
) -> OutRecord:
    """The ``news.scored`` record for one prediction, or its dead letter. Never raises."""
    if isinstance(prediction, Exception):
        return processing_error(record, topics.dlq, "model", prediction)
    try:
        body = scored_record(item, prediction, model_version, scored_at, record_time(record))
        out = OutRecord(
            topic=topics.scored,
            key=body["topic"].encode(),
            value=encode_scored(body),
            item_topic=body["topic"],
            item_sentiment=body["sentiment"],
        )
    except Exception as exc:
        return processing_error(record, topics.dlq, "encode", exc)
    if out.size_bytes > max_record_bytes:
        detail = f"scored record of {out.size_bytes} bytes, at most {max_record_bytes}"
        return dead_letter(
            record, topics.dlq, "too_large_output", detail, max_record_bytes=max_record_bytes
        )
    return out


def classify_records(
    records: Sequence[RawRecord],
    classifier: Classifier,
    topics: Topics,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    limits: DecodeLimits = DEFAULT_LIMITS,
    *,
    names: TickerDictionary = EMPTY_DICTIONARY,
) -> list[OutRecord]:
    """Decode, classify and encode in one call. Output: dead letters first, then scored records.
    Each item's entities (:func:`monitor.classify.entities.entity_queries` over its text,
    tickers and ``names``) are scored with it.

    Raises only :class:`~monitor.classify.isolate.ModelUnavailable` (the model, not a record).
    """
    out: list[OutRecord] = []
    valid: list[tuple[RawRecord, NewsItem]] = []
    for record in records:
        decoded = decode_record(record, topics.dlq, limits, clock())
        if isinstance(decoded, OutRecord):
            out.append(decoded)
        else:
            valid.append((record, decoded))
    predictions = predict_isolating(
        classifier,
        [item.text for _, item in valid],
        [entity_queries(item.text, item.tickers, names) for _, item in valid],
    )
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
