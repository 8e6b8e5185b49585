from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitor.classify.engine import TorchClassifier
from monitor.contract import DLQ_REASON_HEADER, Prediction
from monitor.ingest.classify_step import Topics, classify_records
from tests.kafka_helpers import news

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

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        if any("poison" in t for t in texts):
            raise RuntimeError("boom")
        return self.inner.predict(texts)


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
        (b'{"id": "a", "headline": "  ", "body": null}', "missing_text"),
        (b'{"id": "a", "headline": "x", "published_at": "yesterday"}', "bad_published_at"),
        (
            b'{"id": "a", "headline": "x", "published_at": "2026-01-01T00:00:00"}',
            "bad_published_at",
        ),
        (b'{"id": "a", "headline": "x", "tickers": "AAPL"}', "bad_field_type"),
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
    assert [dict(o.headers)[DLQ_REASON_HEADER] for o in dlq] == [b"model_error"]
    assert sorted(json.loads(o.value)["id"] for o in outs if o.topic == "out") == ["n-1", "n-3"]
