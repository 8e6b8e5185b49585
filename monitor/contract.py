"""The message contract: what ``news.raw`` accepts and what ``news.scored`` carries.

Input (JSON object on ``news.raw``)::

    {"id": str, "headline": str, "body": str | null, "source": str,
     "published_at": RFC 3339, "tickers": [str]}

``id`` is required, and at least one of ``headline`` / ``body`` must be non-empty. Anything that
breaks the contract raises :class:`InvalidMessage` with a short reason code; the worker copies the
original bytes to ``news.dlq`` with that reason in the ``finmon-dlq-reason`` header.

Decode refuses, before or while parsing, what would crash a later step (:class:`DecodeLimits`):
payloads over the size limit, JSON nested deeper than ``max_json_depth`` (checked by a scan
before ``json.loads``), integer literals longer than ``max_integer_digits``, ids longer than
``max_id_chars``, ``NaN`` / ``Infinity``
and numbers that overflow to them, and ``published_at`` outside ``[min_published_at, now +
max_future_ms]``. Lone surrogates from ``\\u`` escapes are replaced by U+FFFD in every string
(counted in :attr:`NewsItem.repaired_chars`), so tokenizers and the UTF-8 encoder accept the item.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from alerts.stories import story_key
from monitor.classify.text import make_safe
from monitor.errors import InvalidMessage

MAX_MESSAGE_BYTES = 1_000_000
MAX_JSON_DEPTH = 64
MAX_INTEGER_DIGITS = 100
MAX_ID_CHARS = 256
MIN_PUBLISHED_AT = datetime(1990, 1, 1, tzinfo=UTC)
MAX_FUTURE_PUBLISHED_MS = 86_400_000
MAX_TICKERS = 64
SENTIMENT_LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
# The topics of the shipped model: the Twitter Financial News dataset's, in id order (id 0 is
# "Analyst Update"); the demo's synthetic generator and training use the same names.
TWITTER_TOPICS: tuple[str, ...] = (
    "Analyst Update",
    "Fed | Central Banks",
    "Company | Product News",
    "Treasuries | Corporate Debt",
    "Dividend",
    "Earnings",
    "Energy | Oil",
    "Financials",
    "Currencies",
    "General News | Opinion",
    "Gold | Metals | Materials",
    "IPO",
    "Legal | Regulation",
    "M&A | Investments",
    "Macro",
    "Markets",
    "Politics",
    "Personnel Change",
    "Stock Commentary",
    "Stock Movement",
)

DLQ_REASON_HEADER = "finmon-dlq-reason"
DLQ_DETAIL_HEADER = "finmon-dlq-detail"
DLQ_SOURCE_HEADER = "finmon-dlq-source"
DLQ_ERROR_HEADER = "finmon-dlq-error"
DLQ_TRUNCATED_HEADER = "finmon-dlq-truncated-from-bytes"

# Every reason code the worker can emit; a bounded set, so it is safe as a metric label.
DLQ_REASONS: tuple[str, ...] = (
    "empty",
    "too_large",
    "too_deep",
    "bad_number",
    "not_utf8",
    "not_json",
    "not_object",
    "missing_id",
    "too_long_id",
    "bad_field_type",
    "missing_text",
    "bad_published_at",
    "too_many_tickers",
    "processing_error",
    "too_large_output",
    # news.scored records the aggregate role refuses, with bad_number
    # (monitor/aggregate/labels.py, engine.py)
    "future_event_time",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class DecodeLimits:
    """What decode accepts. Set from the ``ingest`` settings; the defaults match them."""

    max_message_bytes: int = MAX_MESSAGE_BYTES
    max_json_depth: int = MAX_JSON_DEPTH
    max_integer_digits: int = MAX_INTEGER_DIGITS
    max_id_chars: int = MAX_ID_CHARS
    min_published_at: datetime = MIN_PUBLISHED_AT
    max_future_ms: int = MAX_FUTURE_PUBLISHED_MS


DEFAULT_LIMITS = DecodeLimits()


@dataclass(frozen=True, slots=True)
class NewsItem:
    """One validated input item."""

    id: str
    headline: str
    body: str | None
    source: str
    published_at: datetime
    tickers: tuple[str, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)
    # Unencodable code points replaced by U+FFFD at decode (finmon_ingest_text_repairs_total).
    repaired_chars: int = 0

    @property
    def text(self) -> str:
        """The text the classifier reads: the headline, then the body.

        Texts past the model's limit are split into windows whose predictions are averaged with the
        headline's window weighted up (see monitor/classify/longtext.py), never silently cut.
        """
        body = (self.body or "").strip()
        return f"{self.headline}\n{body}" if self.headline and body else self.headline or body

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.extra,
            "id": self.id,
            "headline": self.headline,
            "body": self.body,
            "source": self.source,
            "published_at": format_time(self.published_at),
            "tickers": list(self.tickers),
        }


@dataclass(frozen=True, slots=True)
class EntityPrediction:
    """The sentiment toward one entity. ``found`` is false when the text does not contain the
    name (the probabilities are then empty: nothing was scored)."""

    name: str
    ticker: str | None
    sentiment_probs: Mapping[str, float] = field(default_factory=dict)
    found: bool = True

    @property
    def sentiment(self) -> str | None:
        probs = self.sentiment_probs
        return max(probs, key=lambda k: probs[k]) if probs else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ticker": self.ticker,
            "sentiment": self.sentiment,
            "sentiment_probs": rounded_probs(self.sentiment_probs),
            "found": self.found,
        }


@dataclass(frozen=True, slots=True)
class Prediction:
    """Model output for one text: a probability per label for each task, and the sentiment
    toward each entity asked for (empty when none was asked or the model has no entity head)."""

    topic_probs: Mapping[str, float]
    sentiment_probs: Mapping[str, float]
    entities: tuple[EntityPrediction, ...] = ()

    @property
    def topic(self) -> str:
        return max(self.topic_probs, key=lambda k: self.topic_probs[k])

    @property
    def sentiment(self) -> str:
        return max(self.sentiment_probs, key=lambda k: self.sentiment_probs[k])

    @property
    def sentiment_score(self) -> float:
        """p_positive - p_negative, in [-1, 1]."""
        probs = self.sentiment_probs
        return float(probs.get("positive", 0.0) - probs.get("negative", 0.0))


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with millisecond precision and a ``Z`` suffix."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str) -> datetime:
    """Parse RFC 3339 (``Z`` or an offset). Naive times are rejected: they are ambiguous."""
    moment = datetime.fromisoformat(value.strip().replace("z", "Z").replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("timestamp has no UTC offset")
    return moment.astimezone(UTC)


def _require_str(obj: Mapping[str, Any], key: str, *, optional: bool) -> str | None:
    value = obj.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise InvalidMessage(
            "bad_field_type", f"{key!r} must be a string, got {type(value).__name__}"
        )
    return value


def _parse_id(obj: Mapping[str, Any], max_chars: int) -> str:
    raw = obj.get("id")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise InvalidMessage("missing_id", "'id' is required and must be a non-empty string")
    if not isinstance(raw, str):
        raise InvalidMessage("bad_field_type", f"'id' must be a string, got {type(raw).__name__}")
    _check_id_length(raw, max_chars)
    return raw


def _check_id_length(item_id: str, max_chars: int) -> None:
    """Raise ``too_long_id``: ids are kept per item downstream (dedup, the aggregate's memory)."""
    if len(item_id) > max_chars:
        raise InvalidMessage(
            "too_long_id", f"'id' of {len(item_id)} characters, at most {max_chars}"
        )


def _parse_tickers(obj: Mapping[str, Any]) -> tuple[str, ...]:
    raw = obj.get("tickers") or []
    if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
        raise InvalidMessage("bad_field_type", "'tickers' must be a list of strings")
    if len(raw) > MAX_TICKERS:
        raise InvalidMessage("too_many_tickers", f"{len(raw)} tickers, at most {MAX_TICKERS}")
    return tuple(dict.fromkeys(t.strip().upper().lstrip("$") for t in raw if t.strip()))


def _parse_published(
    obj: Mapping[str, Any], fallback: datetime, limits: DecodeLimits, now: datetime
) -> datetime:
    raw = obj.get("published_at")
    latest = now + timedelta(milliseconds=limits.max_future_ms)
    if raw is None:
        # The Kafka record time; a producer that sets none (0, -1) gets the wall clock.
        return fallback if limits.min_published_at <= fallback <= latest else now
    if not isinstance(raw, str):
        raise InvalidMessage("bad_published_at", "'published_at' must be an RFC 3339 string")
    try:
        moment = parse_time(raw)
    except (ValueError, OverflowError) as exc:
        raise InvalidMessage("bad_published_at", f"{raw[:64]!r} is not RFC 3339 ({exc})") from exc
    if not limits.min_published_at <= moment <= latest:
        raise InvalidMessage(
            "bad_published_at",
            f"{raw[:64]!r} is outside [{format_time(limits.min_published_at)}, "
            f"{format_time(latest)}] (ingest.min_published_at, ingest.max_future_ms)",
        )
    return moment


# JSON strings (escapes skipped) hold no structure; the bytes left are checked for nesting.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))
_OPENERS = frozenset(b"[{")


def _check_depth(payload: bytes, max_depth: int) -> None:
    """Raise ``too_deep`` when brackets nest past ``max_depth`` (json.loads would recurse)."""
    if payload.count(b"[") + payload.count(b"{") <= max_depth:
        return
    brackets = _JSON_STRING.sub(b"", payload).translate(None, _NOT_BRACKETS)
    depth = 0
    for byte in brackets:
        depth += 1 if byte in _OPENERS else -1
        if depth > max_depth:
            raise InvalidMessage("too_deep", f"JSON nested deeper than {max_depth} levels")


def _parse_json(text: str, limits: DecodeLimits) -> Any:
    """``json.loads`` refusing huge integers, NaN, Infinity and numbers that overflow to them."""

    def parse_int(literal: str) -> int:
        if len(literal.lstrip("-")) > limits.max_integer_digits:
            raise InvalidMessage(
                "bad_number",
                f"integer of {len(literal)} digits, at most {limits.max_integer_digits}",
            )
        return int(literal)

    def parse_float(literal: str) -> float:
        value = float(literal)
        if not math.isfinite(value):
            raise InvalidMessage("bad_number", f"{literal[:32]!r}... overflows a double")
        return value

    def parse_constant(literal: str) -> float:
        raise InvalidMessage("bad_number", f"{literal} is not JSON (strict consumers reject it)")

    try:
        return json.loads(
            text, parse_int=parse_int, parse_float=parse_float, parse_constant=parse_constant
        )
    except json.JSONDecodeError as exc:
        raise InvalidMessage("not_json", str(exc)) from exc


def _repair(value: Any) -> tuple[Any, int]:
    """``value`` with :func:`make_safe` applied to every string and key; replacements counted."""
    if isinstance(value, str):
        return make_safe(value)
    if isinstance(value, list):
        pairs = [_repair(v) for v in value]
        return [v for v, _ in pairs], sum(n for _, n in pairs)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        total = 0
        for key, item in value.items():
            safe_key, n_key = make_safe(key)
            out[safe_key], n_item = _repair(item)
            total += n_key + n_item
        return out, total
    return value, 0


def decode_news(
    payload: bytes,
    fallback_time: datetime,
    limits: DecodeLimits = DEFAULT_LIMITS,
    now: datetime | None = None,
) -> NewsItem:
    """Validate one ``news.raw`` payload. Raises InvalidMessage with a DLQ reason.

    ``fallback_time`` (the Kafka record time) stands in for a missing ``published_at``; ``now``
    (the wall clock when omitted) bounds ``published_at`` from above.
    """
    if not payload:
        raise InvalidMessage("empty", "message has no value (tombstone or empty payload)")
    if len(payload) > limits.max_message_bytes:
        raise InvalidMessage(
            "too_large", f"{len(payload)} bytes, at most {limits.max_message_bytes}"
        )
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidMessage("not_utf8", str(exc)) from exc
    _check_depth(payload, limits.max_json_depth)
    obj = _parse_json(text, limits)
    if not isinstance(obj, dict):
        raise InvalidMessage("not_object", f"expected a JSON object, got {type(obj).__name__}")
    repaired = 0
    if b"\\u" in payload:  # only a \u escape can spell a lone surrogate
        obj, repaired = _repair(obj)
    item_id = _parse_id(obj, limits.max_id_chars)
    headline = (_require_str(obj, "headline", optional=True) or "").strip()
    body = _require_str(obj, "body", optional=True)
    if not headline and not (body or "").strip():
        raise InvalidMessage("missing_text", "'headline' or 'body' must be a non-empty string")
    known = {"id", "headline", "body", "source", "published_at", "tickers"}
    return NewsItem(
        id=item_id,
        headline=headline,
        body=body,
        source=_require_str(obj, "source", optional=True) or "",
        published_at=_parse_published(obj, fallback_time, limits, now or datetime.now(UTC)),
        tickers=_parse_tickers(obj),
        extra={k: v for k, v in obj.items() if k not in known},
        repaired_chars=repaired,
    )


def rounded_probs(probs: Mapping[str, float]) -> dict[str, float]:
    """Probabilities rounded to 6 decimals. Raises ValueError on NaN or infinity, which strict
    JSON consumers reject (:func:`encode_scored` would write them as ``null``)."""
    out = {k: round(v, 6) for k, v in probs.items()}
    if not math.isfinite(sum(out.values())):
        raise ValueError(f"non-finite probability in {out}")
    return out


def scored_record(
    item: NewsItem,
    prediction: Prediction,
    model_version: str,
    scored_at: datetime,
    ingested_at: datetime,
) -> dict[str, Any]:
    """The ``news.scored`` JSON object for one item (keyed by ``topic`` on the topic).

    Raises ValueError when a probability is NaN or infinite."""
    return {
        **item.to_dict(),
        "topic": prediction.topic,
        "topic_probs": rounded_probs(prediction.topic_probs),
        "sentiment": prediction.sentiment,
        "sentiment_probs": rounded_probs(prediction.sentiment_probs),
        "sentiment_score": round(prediction.sentiment_score, 6),
        "entities": [entity.to_dict() for entity in prediction.entities],
        "model_version": model_version,
        "scored_at": format_time(scored_at),
        "ingested_at": format_time(ingested_at),
        "story_id": story_key(item.headline or item.body or ""),
    }


def encode_scored(record: Mapping[str, Any]) -> bytes:
    """A ``news.scored`` object as compact UTF-8 JSON (no spaces, non-ASCII as is).

    orjson writes it (about 6 times faster than ``json.dumps``); what orjson refuses, an integer
    past 64 bits in a pass-through field, goes through ``json.dumps``, which gives the same JSON.
    Floats must be finite (orjson writes NaN as ``null``): :func:`scored_record` checks the
    probabilities and decode refuses NaN and infinity in the input. Raises TypeError or
    UnicodeEncodeError (a lone surrogate) for what cannot be JSON.
    """
    try:
        return orjson.dumps(record)
    except orjson.JSONEncodeError:
        text = json.dumps(record, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return text.encode()


@dataclass(frozen=True, slots=True)
class ScoredItem:
    """A ``news.scored`` record as the aggregator reads it."""

    id: str
    headline: str
    topic: str
    sentiment: str
    sentiment_score: float
    negative_prob: float
    published_at: datetime
    ingested_at: datetime
    tickers: tuple[str, ...]
    # ticker -> (sentiment, sentiment_score, negative_prob) of that entity, where it was scored.
    entity_views: Mapping[str, tuple[str, float, float]] = field(default_factory=dict)

    def view(self, ticker: str | None = None) -> tuple[str, float, float]:
        """(sentiment, sentiment_score, negative_prob) as a window of ``ticker`` counts it: the
        entity's own sentiment when the model scored one for that ticker, else the headline's."""
        if ticker is not None and ticker in self.entity_views:
            return self.entity_views[ticker]
        return self.sentiment, self.sentiment_score, self.negative_prob


def _entity_views(value: object) -> dict[str, tuple[str, float, float]]:
    """The first scored entity of each ticker in a ``news.scored`` ``entities`` list."""
    views: dict[str, tuple[str, float, float]] = {}
    for entity in value if isinstance(value, list) else []:
        ticker = entity.get("ticker") if isinstance(entity, dict) else None
        probs = entity.get("sentiment_probs") if isinstance(entity, dict) else None
        if not ticker or not isinstance(probs, dict) or not probs or str(ticker) in views:
            continue
        negative = float(probs.get("negative", 0.0))
        score = float(probs.get("positive", 0.0)) - negative
        views[str(ticker)] = (max(probs, key=lambda k: float(probs[k])), score, negative)
    return views


def decode_scored(payload: bytes) -> ScoredItem:
    """Parse a ``news.scored`` record. Raises InvalidMessage (reason ``not_json``, ``too_deep``,
    ``bad_number`` etc.): the same parser limits as ``news.raw``, as anyone can write the topic."""
    _check_depth(payload, DEFAULT_LIMITS.max_json_depth)
    try:
        obj = _parse_json(payload.decode("utf-8"), DEFAULT_LIMITS)
        probs = obj.get("sentiment_probs") or {}
        views = _entity_views(obj.get("entities"))
        tickers = tuple(dict.fromkeys([*_as_str_list(obj.get("tickers")), *views]))
        item_id = str(obj["id"])
        _check_id_length(item_id, DEFAULT_LIMITS.max_id_chars)
        return ScoredItem(
            id=item_id,
            headline=str(obj.get("headline") or obj.get("body") or "")[:500],
            topic=str(obj["topic"]),
            sentiment=str(obj["sentiment"]),
            sentiment_score=float(obj.get("sentiment_score", 0.0)),
            negative_prob=float(
                probs.get("negative", 1.0 if obj["sentiment"] == "negative" else 0)
            ),
            published_at=parse_time(obj["published_at"]),
            ingested_at=parse_time(obj.get("ingested_at") or obj["scored_at"]),
            tickers=tickers,
            entity_views=views,
        )
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InvalidMessage("not_json", f"bad scored record: {exc!r}") from exc


def _as_str_list(value: object) -> Sequence[str]:
    return [str(v) for v in value] if isinstance(value, list) else []
