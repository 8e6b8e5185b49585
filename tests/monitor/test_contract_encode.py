"""``encode_scored`` (orjson) writes the JSON ``json.dumps`` wrote: parsed back, the same values,
types and key order, for any pass-through field decode accepts; NaN is refused, not nulled."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.contract import (
    EntityPrediction,
    Prediction,
    decode_news,
    decode_scored,
    encode_scored,
    scored_record,
)

NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)

# What json.loads can hand decode as a pass-through value: integers of up to 100 digits (past
# orjson's 64 bits), finite floats, any text without lone surrogates (decode repairs those).
_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**100) + 1, max_value=10**100 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    _text,
)
_values = st.recursive(
    _leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)


def _pairs(text: bytes | str) -> Any:
    """Parsed with key order kept (objects as lists of pairs)."""
    return json.loads(text, object_pairs_hook=list)


def _same(a: Any, b: Any) -> bool:
    """Equal values of equal types (1 and 1.0 differ; so do 0.0 and -0.0)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@settings(max_examples=300, deadline=None, database=None)
@given(extra=st.dictionaries(_text, _values, max_size=5))
def test_encode_matches_json_dumps_parsed_back(extra: dict[str, Any]) -> None:
    body = {"id": "a", "headline": "Oil falls", **extra, "sentiment_score": -0.25}
    reference = json.dumps(body, ensure_ascii=False, allow_nan=False)
    assert _same(_pairs(encode_scored(body)), _pairs(reference))


def _record(prediction: Prediction) -> dict[str, Any]:
    payload = json.dumps(
        {"id": "é-1", "headline": "Infosys gains — Wipro slips", "n": 10**30, "f": 1e-07}
    ).encode()
    return scored_record(decode_news(payload, NOW, now=NOW), prediction, "v1", NOW, NOW)


def test_a_scored_record_reads_back_the_same_and_compact() -> None:
    entity = EntityPrediction("Wipro", "WIT", {"negative": 0.7, "neutral": 0.2, "positive": 0.1})
    prediction = Prediction(
        {"Earnings": 0.9, "Markets": 0.1},
        {"negative": 0.1, "neutral": 0.3, "positive": 0.6},
        (entity,),
    )
    record = _record(prediction)
    encoded = encode_scored(record)
    assert _same(_pairs(encoded), _pairs(json.dumps(record, ensure_ascii=False)))
    assert b'"topic":"Earnings"' in encoded and "—".encode() in encoded  # compact, UTF-8 as is
    assert decode_scored(encoded).entity_views["WIT"][0] == "negative"


def test_a_nan_probability_is_refused_not_written_as_null() -> None:
    prediction = Prediction({"Earnings": math.nan}, {"negative": 0.5, "positive": 0.5})
    with pytest.raises(ValueError, match="non-finite"):
        _record(prediction)
    entity = EntityPrediction("Wipro", "WIT", {"negative": math.inf})
    with pytest.raises(ValueError, match="non-finite"):
        entity.to_dict()
