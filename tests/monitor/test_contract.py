"""The id limit of decode (``ingest.max_id_chars``): ids are kept per item downstream (the
aggregate role remembers the ids it counted), so an unbounded id is a memory lever."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from alerts.stories import story_key
from monitor.contract import (
    DLQ_REASONS,
    MAX_ID_CHARS,
    DecodeLimits,
    Prediction,
    decode_news,
    decode_scored,
    scored_record,
)
from monitor.daemon import decode_limits
from monitor.errors import InvalidMessage
from monitor.settings import load_settings

NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)


def _raw(item_id: str) -> bytes:
    return json.dumps({"id": item_id, "headline": "Shares fall"}).encode()


def _scored(item_id: str) -> bytes:
    at = "2026-12-02T11:00:00Z"
    body = {"id": item_id, "headline": "x", "topic": "Earnings", "sentiment": "neutral"}
    return json.dumps({**body, "published_at": at, "scored_at": at}).encode()


def test_an_id_of_the_limit_passes_and_one_more_character_is_too_long_id() -> None:
    assert MAX_ID_CHARS == 256 and "too_long_id" in DLQ_REASONS
    assert decode_news(_raw("i" * 256), NOW, now=NOW).id == "i" * 256
    with pytest.raises(InvalidMessage) as caught:
        decode_news(_raw("i" * 257), NOW, now=NOW)
    assert caught.value.reason == "too_long_id"
    assert caught.value.detail == "'id' of 257 characters, at most 256"


def test_the_limit_counts_characters_and_follows_the_ingest_setting() -> None:
    limits = decode_limits(load_settings(environ={}, overrides={"ingest": {"max_id_chars": 32}}))
    assert limits == DecodeLimits(max_id_chars=32)
    assert decode_news(_raw("é" * 32), NOW, limits, now=NOW).id == "é" * 32  # 64 UTF-8 bytes
    with pytest.raises(InvalidMessage, match="too_long_id"):
        decode_news(_raw("x" * 33), NOW, limits, now=NOW)


def test_a_forged_scored_record_with_a_long_id_is_refused_too() -> None:
    assert decode_scored(_scored("s" * 256)).id == "s" * 256
    with pytest.raises(InvalidMessage) as caught:
        decode_scored(_scored("s" * 10_000))
    assert caught.value.reason == "too_long_id"


def test_scored_records_carry_a_story_id_shared_by_syndicated_copies() -> None:
    """``story_id`` (additive): the same for copies that differ in outlet tag and case, on
    every worker, and read back unchanged by anyone who decodes the record."""
    prediction = Prediction({"Earnings": 1.0}, {"negative": 0.9, "neutral": 0.1})

    def record(item_id: str, headline: str) -> dict[str, object]:
        item = decode_news(json.dumps({"id": item_id, "headline": headline}).encode(), NOW, now=NOW)
        return scored_record(item, prediction, "v1", NOW, NOW)

    wire = record("a", "Acme Bank halts withdrawals - Reuters")
    copy = record("b", "ACME BANK HALTS WITHDRAWALS (Bloomberg)")
    other = record("c", "Fed holds rates steady")
    assert wire["story_id"] == story_key("Acme Bank halts withdrawals")
    assert copy["story_id"] == wire["story_id"]
    assert other["story_id"] != wire["story_id"]
    assert decode_scored(json.dumps(wire).encode()).id == "a"
