from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.classify.engine import TorchClassifier
from monitor.classify.entities import EntityQuery
from monitor.contract import (
    DLQ_ERROR_HEADER,
    DLQ_REASON_HEADER,
    DLQ_TRUNCATED_HEADER,
    Prediction,
    decode_news,
)
from monitor.ingest.classify_step import (
    Topics,
    classify_records,
    count_tokens,
    dead_letter,
    encode_result,
)
from tests.kafka_helpers import news

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)

TOPICS = Topics(scored="out", dlq="dlq")


@dataclass(frozen=True)
class Rec:
    value: bytes | None
    offset: int = 0
    topic: str = "raw"
    partition: int = 0
    timestamp: int = 1_764_000_000_000
    key: bytes | None = None


class FailingOn:
    """A classifier that fails on any batch holding the word 'poison'."""

    version = "failing"

    def __init__(self, inner: TorchClassifier) -> None:
        self.inner = inner

    def predict(
        self, texts: Sequence[str], entities: Sequence[Sequence[EntityQuery]] | None = None
    ) -> list[Prediction]:
        if any("poison" in t for t in texts):
            raise RuntimeError("boom")
        return self.inner.predict(texts, entities)


@pytest.fixture(scope="module")
def clf(tiny_model_dir: Path) -> TorchClassifier:
    return TorchClassifier.from_dir(tiny_model_dir, device="cpu")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty"),
        (b"\xff\xfe", "not_utf8"),
        (b"{nope", "not_json"),
        (b"[1, 2]", "not_object"),
        (b'{"headline": "x"}', "missing_id"),
        (b'{"id": 5, "headline": "x"}', "bad_field_type"),
        (b'{"id": "' + b"i" * 257 + b'", "headline": "x"}', "too_long_id"),
        (b'{"id": "a", "headline": "  ", "body": null}', "missing_text"),
        (b'{"id": "a", "headline": "x", "published_at": "yesterday"}', "bad_published_at"),
        (
            b'{"id": "a", "headline": "x", "published_at": "2026-01-01T00:00:00"}',
            "bad_published_at",
        ),
        (b'{"id": "a", "headline": "x", "tickers": "AAPL"}', "bad_field_type"),
        (b'{"id": "a", "headline": "x", "z": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", "too_deep"),
        (b'{"id": "a", "headline": "x", "n": ' + b"7" * 4_301 + b"}", "bad_number"),
        (b'{"id": "a", "headline": "x", "n": NaN}', "bad_number"),
        (b'{"id": "a", "headline": "x", "n": -Infinity}', "bad_number"),
        (b'{"id": "a", "headline": "x", "n": 1e400}', "bad_number"),
        (
            b'{"id": "a", "headline": "x", "published_at": "0001-01-01T00:00:00+14:00"}',
            "bad_published_at",
        ),
        (
            b'{"id": "a", "headline": "x", "published_at": "9999-12-31T00:00:00Z"}',
            "bad_published_at",
        ),
        (
            b'{"id": "a", "headline": "x", "published_at": "1989-12-31T23:59:59Z"}',
            "bad_published_at",
        ),
    ],
)
def test_malformed_goes_to_dlq_with_reason_and_original_bytes(
    clf: TorchClassifier, payload: bytes, reason: str
) -> None:
    [out] = classify_records([Rec(payload)], clf, TOPICS)
    assert out.topic == "dlq"
    assert out.value == payload
    assert dict(out.headers)[DLQ_REASON_HEADER] == reason.encode()


def test_valid_record_has_contract_fields(clf: TorchClassifier) -> None:
    [out] = classify_records([Rec(news(1, extra_field="kept"))], clf, TOPICS)
    body = json.loads(out.value)
    assert out.topic == "out"
    assert out.key == body["topic"].encode()
    for key in (
        "id",
        "headline",
        "body",
        "source",
        "published_at",
        "tickers",
        "topic",
        "topic_probs",
        "sentiment",
        "sentiment_probs",
        "sentiment_score",
        "model_version",
        "scored_at",
    ):
        assert key in body
    assert body["sentiment"] in ("negative", "neutral", "positive")
    probs = body["sentiment_probs"]
    assert body["sentiment_score"] == pytest.approx(probs["positive"] - probs["negative"], abs=1e-5)
    assert body["extra_field"] == "kept"
    assert body["published_at"] == "2026-11-28T10:00:00.000Z"


def test_missing_published_at_falls_back_to_record_time(clf: TorchClassifier) -> None:
    [out] = classify_records([Rec(b'{"id": "a", "body": "text only"}')], clf, TOPICS)
    assert json.loads(out.value)["published_at"].startswith("2025-11-24")


def test_model_failure_isolates_the_bad_item(clf: TorchClassifier) -> None:
    records = [Rec(news(1)), Rec(news(2, headline="poison pill"), offset=1), Rec(news(3), offset=2)]
    outs = classify_records(records, FailingOn(clf), TOPICS)
    assert len(outs) == 3
    dlq = [o for o in outs if o.topic == "dlq"]
    assert [dict(o.headers)[DLQ_REASON_HEADER] for o in dlq] == [b"processing_error"]
    assert dict(dlq[0].headers)[DLQ_ERROR_HEADER] == b"RuntimeError"
    assert dlq[0].error_stage == "model"
    assert sorted(json.loads(o.value)["id"] for o in outs if o.topic == "out") == ["n-1", "n-3"]


def test_lone_surrogate_is_replaced_and_scored(clf: TorchClassifier) -> None:
    payload = b'{"id": "s\\udfff", "headline": "Shares \\ud800 fall", "x\\ud801": ["\\udc00"]}'
    [out] = classify_records([Rec(payload)], clf, TOPICS)
    assert out.topic == "out"
    body = json.loads(out.value)
    assert body["headline"] == "Shares \ufffd fall"
    assert body["id"] == "s\ufffd"
    assert body["x\ufffd"] == ["\ufffd"]


def test_token_count_needs_no_tokenizer_and_failure_is_isolated_per_item() -> None:
    counts = count_tokens(["Shares fall 5%", None, "c"])  # type: ignore[list-item]
    assert counts[0] == 2 + 4 and counts[2] == 2 + 1  # words and marks, plus [CLS] and [SEP]
    assert isinstance(counts[1], TypeError)


def test_record_time_out_of_range_does_not_raise(clf: TorchClassifier) -> None:
    [out] = classify_records([Rec(news(1), timestamp=2**62)], clf, TOPICS)
    assert out.topic == "out"


def test_too_large_output_is_dead_lettered_with_original_bytes(clf: TorchClassifier) -> None:
    # "1E2" is written back as 100.0, so the scored record outgrows its input.
    payload = b'{"id":"a","headline":"x","padding":[' + b"1E2," * 40_000 + b"1E2]}"
    record = Rec(payload)
    out = encode_result(
        record,
        item=decode_news(payload, NOW),
        prediction=clf.predict(["x"])[0],
        model_version="v",
        topics=TOPICS,
        scored_at=NOW,
        max_record_bytes=len(payload) + 2_000,
    )
    assert out.topic == "dlq" and out.reason == "too_large_output"
    assert out.value == payload


def test_dead_letter_too_large_for_the_producer_is_cut_and_flagged() -> None:
    payload = b"x" * 100_000
    out = dead_letter(Rec(payload), "dlq", "too_large", "big", max_record_bytes=65_536)
    assert out.size_bytes <= 65_536
    assert dict(out.headers)[DLQ_TRUNCATED_HEADER] == b"100000"
    assert payload.startswith(out.value)
