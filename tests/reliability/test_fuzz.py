"""Property-based fuzz of decode -> classify -> encode (issue 28, item 8).

Generated payloads mix valid items, wrong types, lone surrogates (as ``\\u`` escapes and as raw
bytes), huge and non-finite numbers, deep nesting, odd timestamps and random bytes. For every one:
decode never raises and never needs the ``processing_error`` safety net; a valid item's text goes
through the real tokenizer and model; and the output is a dead letter with a known reason or a
strict, UTF-8, JSON ``news.scored`` record carrying the item's id. The quick tier runs a few
hundred cases through the real tiny model; the slow tier 10,000 through the real tokenizer, with
a keyword classifier standing in for the forward pass (which only ever sees token ids).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.classify.engine import TorchClassifier
from monitor.classify.model import load_model
from monitor.contract import (
    DLQ_REASONS,
    MAX_FUTURE_PUBLISHED_MS,
    MIN_PUBLISHED_AT,
    NewsItem,
    decode_news,
)
from monitor.ingest.classify_step import (
    OutRecord,
    Topics,
    count_tokens,
    decode_record,
    encode_result,
)
from tests.keyword_classifier import KeywordClassifier

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
TOPICS = Topics(scored="out", dlq="dlq")
SLOW_EXAMPLES = 10_000
# The engine, and the tokenizer its predict uses on the model thread.
Classify = tuple[TorchClassifier, Any]
QUICK_EXAMPLES = 200

_chars = st.characters(codec=None, categories=["L", "M", "N", "P", "S", "Z", "Cc", "Cs", "Co"])
texts = st.text(alphabet=_chars, max_size=80)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=10**90, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
times = st.one_of(
    st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.timezones()
    ).map(lambda d: d.isoformat()),
    st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "yesterday"]),
    texts,
)


@st.composite
def items(draw: st.DrawFn) -> dict[str, Any]:
    item: dict[str, Any] = {}
    fields = {
        "id": st.one_of(texts, values),
        "headline": st.one_of(texts, values),
        "body": st.one_of(st.none(), texts, values),
        "source": st.one_of(texts, values),
        "published_at": st.one_of(times, values),
        "tickers": st.one_of(st.lists(texts, max_size=70), values),
    }
    for key, strategy in fields.items():
        if draw(st.booleans()):
            item[key] = draw(strategy)
    if draw(st.booleans()):
        item["id"], item["headline"] = draw(texts.filter(str.strip)), draw(texts)
    item.update(draw(st.dictionaries(texts, values, max_size=3)))
    return item


def _serialise(item: dict[str, Any], ascii_only: bool, depth: int) -> bytes:
    text = json.dumps(item, ensure_ascii=ascii_only, allow_nan=True)
    if depth:
        text = text[:-1] + ', "nest": ' + "[" * depth + "]" * depth + "}"
    return text.encode("utf-8", "surrogatepass")


payloads = st.one_of(
    st.builds(_serialise, items(), st.booleans(), st.sampled_from([0, 0, 0, 10, 64, 65, 3000])),
    st.binary(max_size=200),
)


class Rec:
    topic, partition, key = "raw", 0, None

    def __init__(self, value: bytes, offset: int, timestamp: int) -> None:
        self.value, self.offset, self.timestamp = value, offset, timestamp


def _strict(literal: str) -> float:
    raise AssertionError(f"non-strict JSON number {literal}")


def _check(clf: Classify, payload: bytes, timestamp: int, forward: bool) -> None:
    model, tokenizer = clf
    record = Rec(payload, 0, timestamp)
    decoded = decode_record(record, TOPICS.dlq, now=NOW)
    if isinstance(decoded, OutRecord):
        assert decoded.reason in DLQ_REASONS and decoded.reason != "processing_error", decoded
        assert decoded.value == payload  # small inputs are copied whole
        return
    assert isinstance(decoded, NewsItem)
    # The contract's window: its floor (1990-01-01) up to its allowed skew past now.
    latest = NOW + timedelta(milliseconds=MAX_FUTURE_PUBLISHED_MS)
    assert MIN_PUBLISHED_AT <= decoded.published_at <= latest
    [n_tokens] = count_tokens([decoded.text])
    assert isinstance(n_tokens, int), n_tokens
    # The model thread's tokenizer (inside predict) accepts every decoded text.
    assert tokenizer([decoded.text], add_special_tokens=False)["input_ids"]
    # The forward pass sees only token ids; the slow tier skips it to afford 10,000 cases.
    [prediction] = (model if forward else KeywordClassifier()).predict([decoded.text])
    out = encode_result(
        record, item=decoded, prediction=prediction, model_version="v", topics=TOPICS, scored_at=NOW
    )
    assert out.topic == TOPICS.scored, out
    body = json.loads(out.value.decode("utf-8"), parse_constant=_strict)
    assert body["id"] == decoded.id
    assert all(math.isfinite(p) for p in body["sentiment_probs"].values())
    # What the aggregate side reads back parses too.
    assert decode_news(out.value, NOW, now=NOW).id == decoded.id


@pytest.fixture(scope="module")
def model(tiny_model_dir: Path) -> Classify:
    clf = TorchClassifier.from_dir(tiny_model_dir, device="cpu", cache_items=0)
    return clf, load_model(tiny_model_dir)[1]


def _fuzz(model: Classify, examples: int, forward: bool) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(payload=payloads, timestamp=st.integers(min_value=-(2**63), max_value=2**63 - 1))
    def run(payload: bytes, timestamp: int) -> None:
        _check(model, payload, timestamp, forward)

    run()


def test_fuzz_quick(model: Classify) -> None:
    _fuzz(model, QUICK_EXAMPLES, forward=True)


@pytest.mark.slow
def test_fuzz_10000_cases(model: Classify) -> None:
    _fuzz(model, SLOW_EXAMPLES, forward=False)
