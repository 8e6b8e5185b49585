"""Parsing real-format feeds: RSS 2.0, RSS 1.0 (RDF), Atom, encodings, missing dates, junk."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.sources.errors import FeedParseError
from monitor.sources.feeds import parse_feed, strip_html
from tests.monitor.sources.conftest import fixture_bytes

FETCHED = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_rss2_entries_are_text_with_utc_times() -> None:
    entries = parse_feed(fixture_bytes("rss2.xml"), FETCHED).entries
    assert [e.guid for e in entries] == [
        "ex-2026-11-30-0001",
        "ex-2026-11-30-0002",
        "https://news.example.com/markets/apple-supplier",
    ]
    first = entries[0]
    assert first.summary == "Tilray beat estimates & raised guidance."  # tags and script gone
    assert first.published_at == datetime(2026, 11, 30, 13, 3, 11, tzinfo=UTC)  # +0100 -> UTC
    assert entries[1].summary == "Crude extends losses for a third day."
    assert entries[2].published_at == datetime(2026, 11, 30, 12, 15, tzinfo=UTC)  # dc:date
    assert not any(e.time_estimated for e in entries)
    assert first.tags == ("Earnings",)


def test_rss1_rdf() -> None:
    entries = parse_feed(fixture_bytes("rss1.rdf"), FETCHED).entries
    assert [e.link for e in entries] == [
        "https://rdf.example.org/news/1",
        "https://rdf.example.org/news/2",
    ]
    assert entries[0].published_at == datetime(2026, 11, 30, 7, 0, tzinfo=UTC)


def test_atom_html_title_and_xhtml_summary() -> None:
    entries = parse_feed(fixture_bytes("atom.xml"), FETCHED).entries
    assert entries[0].title == "Acme Corp files for bankruptcy protection"
    assert entries[0].summary == "Chapter 11 filing in Delaware."
    assert entries[0].published_at == datetime(2026, 11, 30, 14, 30, 2, tzinfo=UTC)
    assert entries[1].published_at == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)  # published wins


def test_items_without_dates_get_the_fetch_time_and_a_flag() -> None:
    entries = parse_feed(fixture_bytes("nodates.xml"), FETCHED).entries
    assert len(entries) == 2
    assert all(e.time_estimated and e.published_at == FETCHED for e in entries)


@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("latin1.xml", "Société Générale: Gewinn über Erwartungen, Aktie steigt um 5 %"),
        ("cp1252.xml", "\u201cStrong quarter\u201d \u2014 CEO of Nestlé says margins hold"),
        ("utf16.xml", "Toyota (TSE) \u30c8\u30e8\u30bf raises forecast"),
    ],
)
def test_non_utf8_encodings(name: str, title: str) -> None:
    (entry,) = parse_feed(fixture_bytes(name), FETCHED).entries
    assert entry.title == title


def test_http_charset_is_used_when_the_document_does_not_say() -> None:
    body = fixture_bytes("latin1.xml").replace(b' encoding="ISO-8859-1"', b"")
    (entry,) = parse_feed(body, FETCHED, "application/rss+xml; charset=iso-8859-1").entries
    assert entry.title.startswith("Société Générale")


@pytest.mark.parametrize(
    "body",
    [fixture_bytes("malformed.xml"), b"<html><body>Sign in</body></html>", b"", b"\x00\xff" * 50],
)
def test_junk_is_a_clear_parse_error(body: bytes) -> None:
    with pytest.raises(FeedParseError) as info:
        parse_feed(body, FETCHED)
    assert info.value.kind == "malformed" and info.value.detail


def test_strip_html() -> None:
    assert strip_html("<p>a<br/>b</p><style>x{}</style> &amp; c") == "a b & c"
    assert strip_html("  plain   text ") == "plain text"
