"""Where an entity mention sits in a text, in characters and in tokens.

Training (:mod:`pipelines.entities`) and serving (:mod:`monitor.classify.engine`) both locate a
mention with :func:`locate` in the normalised text and map it to tokens with :func:`token_span`,
so the entity head reads the same tokens in both.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from monitor.classify.text import normalise
from monitor.tickers import EMPTY_DICTIONARY, TickerDictionary, extract_mentions, normalise_ticker

# Entities scored per item at most (inputs may carry up to 64 tickers).
MAX_ENTITIES = 32
# Offsets a fast tokenizer gives special tokens: they cover no character.
_NO_CHARS = (0, 0)


@dataclass(frozen=True, slots=True)
class EntityQuery:
    """An entity whose sentiment is asked for: its name as written, the ticker when known."""

    name: str
    ticker: str | None = None


def locate(text: str, name: str) -> tuple[int, int] | None:
    """The character span ``[start, end)`` of the first case-insensitive occurrence of ``name``
    in ``text``, preferring one on word boundaries; None when absent or ``name`` is blank."""
    needle = name.strip()
    if not needle:
        return None
    bounded = re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", text, re.IGNORECASE)
    if bounded is not None:
        return bounded.start(), bounded.end()
    at = text.lower().find(needle.lower())
    return (at, at + len(needle)) if at >= 0 else None


def token_span(offsets: Sequence[tuple[int, int]], start: int, end: int) -> tuple[int, int] | None:
    """Token indices ``[first, end)`` whose characters overlap ``[start, end)`` (special tokens
    excluded); None when no token does (the mention was cut off by truncation)."""
    inside = [
        i for i, (a, b) in enumerate(offsets) if (a, b) != _NO_CHARS and a < end and start < b
    ]
    return (inside[0], inside[-1] + 1) if inside else None


def entity_queries(
    text: str, tickers: Sequence[str], names: TickerDictionary = EMPTY_DICTIONARY
) -> tuple[EntityQuery, ...]:
    """The entities to score for one item: every cashtag, exchange tag and dictionary name in
    the (normalised) text, one per ticker, then each input ticker not mentioned that way (by its
    dictionary name, else its symbol; the engine reports it ``found`` false when the text does
    not contain it). At most ``MAX_ENTITIES``."""
    queries: dict[str, EntityQuery] = {}
    for mention in extract_mentions(normalise(text), names):
        key = mention.ticker or mention.name.lower()
        queries.setdefault(key, EntityQuery(mention.name, mention.ticker))
    for ticker in tickers:
        symbol = normalise_ticker(ticker)
        if symbol and symbol not in queries:
            queries[symbol] = EntityQuery(names.display.get(symbol, symbol), symbol)
    return tuple(queries.values())[:MAX_ENTITIES]
