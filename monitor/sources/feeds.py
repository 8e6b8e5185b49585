"""Parsing fetched feed bytes (RSS 2.0, RSS 1.0 / RDF, Atom) into plain-text entries.

Pure: bytes and the fetch time in, entries out. feedparser reads the bytes (it detects the encoding
from the BOM, the XML declaration or the HTTP charset passed in); HTML in titles and summaries is
reduced to text; times become UTC datetimes, and an entry without one gets the fetch time with
``time_estimated`` set.
"""

from __future__ import annotations

import calendar
import html
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import feedparser

from monitor.sources.errors import FeedParseError

_SPACE = re.compile(r"\s+")
# Block-level tags that separate words when stripped.
_BREAKS = frozenset({"br", "p", "div", "li", "tr", "td", "h1", "h2", "h3", "h4", "blockquote"})


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One feed item as text. ``guid`` and ``link`` are as the feed gave them ('' when absent)."""

    guid: str
    link: str
    title: str
    summary: str
    published_at: datetime
    time_estimated: bool
    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """A fetch's entries; ``warning`` names a recoverable problem feedparser worked around."""

    entries: tuple[FeedEntry, ...]
    warning: str | None = None


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in _BREAKS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1
        elif tag in _BREAKS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def strip_html(text: str) -> str:
    """Visible text of an HTML fragment, entities decoded, whitespace collapsed."""
    if "<" not in text and "&" not in text:
        return _SPACE.sub(" ", text).strip()
    extractor = _TextExtractor()
    extractor.feed(text)
    extractor.close()
    return _SPACE.sub(" ", html.unescape("".join(extractor.parts))).strip()


def _entry_time(entry: Mapping[str, Any]) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        parsed = entry.get(key)
        if isinstance(parsed, time.struct_time):
            return datetime.fromtimestamp(calendar.timegm(parsed), UTC)
    return None


def _entry(raw: Mapping[str, Any], fetched_at: datetime) -> FeedEntry:
    moment = _entry_time(raw)
    tags = tuple(str(t.get("term") or "").strip() for t in raw.get("tags") or [])
    return FeedEntry(
        guid=str(raw.get("id") or "").strip(),
        link=str(raw.get("link") or "").strip(),
        title=strip_html(str(raw.get("title") or "")),
        summary=strip_html(str(raw.get("summary") or "")),
        published_at=moment or fetched_at,
        time_estimated=moment is None,
        tags=tuple(t for t in tags if t),
    )


def parse_feed(body: bytes, fetched_at: datetime, content_type: str | None = None) -> ParsedFeed:
    """Entries of a feed document. Raises FeedParseError when ``body`` is not a feed.

    A document feedparser had to repair (bozo) but that still yields entries is accepted with a
    ``warning``; one that yields no entries and is not a well-formed empty feed is an error.
    """
    headers = {"content-type": content_type} if content_type else None
    parsed = feedparser.parse(body, response_headers=headers, sanitize_html=False)
    entries = tuple(
        e for e in (_entry(raw, fetched_at) for raw in parsed.entries) if e.title or e.summary
    )
    problem = parsed.get("bozo_exception")
    if parsed.get("bozo") and not entries:
        raise FeedParseError(f"not a feed: {type(problem).__name__}: {str(problem)[:200]}")
    if not parsed.get("version") and not entries:
        raise FeedParseError("not an RSS or Atom document")
    warning = f"{type(problem).__name__}: {str(problem)[:200]}" if parsed.get("bozo") else None
    return ParsedFeed(entries, warning)
