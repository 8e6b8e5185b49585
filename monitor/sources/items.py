"""Feed entries as ``news.raw`` messages, with the identity keys dedup uses.

Pure. An item's id is derived from its first identity key (GUID, else link, else normalised
title + date) and the feed name, so a re-fetch after a crash yields the same id and downstream
dedup by id drops the repeat.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from monitor.contract import format_time
from monitor.sources.feeds import FeedEntry
from monitor.tickers import EMPTY_DICTIONARY, TickerDictionary, extract_tickers, merge_tickers

_WORDS = re.compile(r"[^\w]+")
MAX_TICKERS_PER_ITEM = 64


@dataclass(frozen=True, slots=True)
class SourceItem:
    """One item ready to produce: its id, the keys that identify it, and the message."""

    id: str
    keys: tuple[str, ...]
    message: dict[str, Any]

    @property
    def match_keys(self) -> tuple[str, ...]:
        """The keys that make an item a repeat: its GUID or its link when it has either (a new
        GUID on a known link is a repeat), else its title + date. All keys are stored."""
        strong = tuple(k for k in self.keys if not k.startswith("title:"))
        return strong or self.keys


def normalise_link(link: str) -> str:
    """Scheme and host lower-cased, fragment and trailing slash dropped."""
    if not link.strip().lower().startswith(("http://", "https://")):
        return ""
    parts = urlsplit(link.strip())
    path = parts.path.rstrip("/") or "/"
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, ""))


def normalise_title(title: str) -> str:
    return _WORDS.sub(" ", title.lower()).strip()


def identity_keys(feed: str, entry: FeedEntry) -> tuple[str, ...]:
    """Dedup keys, strongest first: GUID (per feed), link, normalised title + date (global).

    Every key is remembered; :attr:`SourceItem.match_keys` says which ones identify a repeat.

    The title key uses the calendar day of an entry's own time, and is left out when the time
    was estimated (the fetch time changes on every poll).
    """
    keys = []
    if entry.guid:
        keys.append(f"guid:{feed}:{entry.guid}")
    link = normalise_link(entry.link)
    if link:
        keys.append(f"link:{link}")
    title = normalise_title(entry.title or entry.summary[:200])
    if title and not entry.time_estimated:
        keys.append(f"title:{title}|{entry.published_at.date().isoformat()}")
    if not keys:
        keys.append(f"title:{feed}:{title}")
    return tuple(keys)


def item_id(feed: str, key: str) -> str:
    return f"{feed}-{hashlib.sha1(key.encode()).hexdigest()[:20]}"


def _cut(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    return head[: head.rfind(" ")] if " " in head[max_chars // 2 :] else head


def to_item(
    feed: str,
    entry: FeedEntry,
    *,
    max_body_chars: int,
    dictionary: TickerDictionary = EMPTY_DICTIONARY,
) -> SourceItem:
    """The news.raw message for ``entry`` (``source`` = the feed name)."""
    keys = identity_keys(feed, entry)
    text = " ".join((entry.title, entry.summary, *entry.tags))
    tickers = merge_tickers((), extract_tickers(text, dictionary))[:MAX_TICKERS_PER_ITEM]
    message: dict[str, Any] = {
        "id": item_id(feed, keys[0]),
        "headline": _cut(entry.title, max_body_chars),
        "body": _cut(entry.summary, max_body_chars) or None,
        "source": feed,
        "published_at": format_time(entry.published_at),
        "tickers": list(tickers),
    }
    if normalise_link(entry.link):
        message["link"] = entry.link
    if entry.time_estimated:
        message["published_at_estimated"] = True
    return SourceItem(message["id"], keys, message)
