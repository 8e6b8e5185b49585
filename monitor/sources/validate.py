"""Validating items that arrive whole (pushed or dropped) against the news.raw contract. Pure."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitor.contract import DEFAULT_LIMITS, DecodeLimits, decode_news
from monitor.errors import InvalidMessage
from monitor.tickers import EMPTY_DICTIONARY, TickerDictionary, extract_tickers, merge_tickers

MAX_TICKERS = 64


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why item ``index`` (0-based position in the request or file row) was refused."""

    index: int
    reason: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "reason": self.reason, "detail": self.detail}


def normalise(
    raw: object,
    *,
    now: datetime,
    default_source: str,
    dictionary: TickerDictionary = EMPTY_DICTIONARY,
    limits: DecodeLimits = DEFAULT_LIMITS,
) -> dict[str, Any]:
    """The news.raw message for one pushed or dropped item. Raises InvalidMessage.

    A missing ``source`` becomes ``default_source``; a missing ``published_at`` becomes ``now``
    with ``published_at_estimated``; tickers found in the text join the given ones. ``limits``
    are the classify role's, so what is accepted here is not dead-lettered there.
    """
    if not isinstance(raw, dict):
        raise InvalidMessage("not_object", f"expected a JSON object, got {type(raw).__name__}")
    item = decode_news(json.dumps(raw).encode(), now, limits, now)
    message = item.to_dict()
    message["source"] = item.source or default_source
    found = extract_tickers(item.text, dictionary)
    message["tickers"] = list(merge_tickers(item.tickers, found)[:MAX_TICKERS])
    if raw.get("published_at") is None:
        message["published_at_estimated"] = True
    return message


def split_valid(
    raws: list[object],
    *,
    now: datetime,
    default_source: str,
    dictionary: TickerDictionary = EMPTY_DICTIONARY,
    limits: DecodeLimits = DEFAULT_LIMITS,
    first_index: int = 0,
) -> tuple[list[dict[str, Any]], list[Rejected]]:
    """Valid messages and the rejected items (with their reasons), in input order."""
    valid: list[dict[str, Any]] = []
    rejected: list[Rejected] = []
    for index, raw in enumerate(raws, start=first_index):
        try:
            message = normalise(
                raw, now=now, default_source=default_source, dictionary=dictionary, limits=limits
            )
            valid.append(message)
        except InvalidMessage as exc:
            rejected.append(Rejected(index, exc.reason, exc.detail))
    return valid, rejected
