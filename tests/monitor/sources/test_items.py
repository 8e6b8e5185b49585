"""Feed entries as news.raw messages: ids, identity keys, tickers, the contract."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

from monitor.contract import decode_news
from monitor.sources.feeds import FeedEntry, parse_feed
from monitor.sources.items import identity_keys, normalise_link, to_item
from monitor.tickers import TickerDictionary
from tests.monitor.sources.conftest import fixture_bytes

NOW = datetime(2026, 12, 1, tzinfo=UTC)
ENTRY = FeedEntry(
    guid="g-1",
    link="HTTPS://News.Example.com/a/b/#top",
    title="Shares of Apple rise",
    summary="",
    published_at=datetime(2026, 11, 30, 10, tzinfo=UTC),
    time_estimated=False,
    tags=(),
)


def test_keys_are_guid_then_link_then_title_and_date() -> None:
    assert identity_keys("wire", ENTRY) == (
        "guid:wire:g-1",
        "link:https://news.example.com/a/b",
        "title:shares of apple rise|2026-11-30",
    )


def test_estimated_time_leaves_the_title_key_out() -> None:
    keys = identity_keys("wire", replace(ENTRY, guid="", link="", time_estimated=True))
    assert keys == ("title:wire:shares of apple rise",)


def test_link_normalisation() -> None:
    assert normalise_link("https://X.com/p/?q=1#frag") == "https://x.com/p?q=1"
    assert normalise_link("not-a-url") == ""


def test_every_fixture_item_meets_the_contract() -> None:
    for name in ("rss2.xml", "rss1.rdf", "atom.xml", "nodates.xml", "latin1.xml"):
        for entry in parse_feed(fixture_bytes(name), NOW).entries:
            message = to_item("wire", entry, max_body_chars=500).message
            item = decode_news(json.dumps(message).encode(), NOW)
            assert item.source == "wire" and item.id.startswith("wire-")


def test_tickers_from_cashtags_exchange_tags_and_the_dictionary() -> None:
    entries = parse_feed(fixture_bytes("rss2.xml"), NOW).entries
    dictionary = TickerDictionary.from_mapping({"AAPL": ["Apple"], "TLRY": ["Tilray"]})
    tickers = [
        to_item("w", e, max_body_chars=500, dictionary=dictionary).message["tickers"]
        for e in entries
    ]
    assert tickers == [["TLRY"], ["XOM", "CVX"], ["AAPL"]]


def test_time_flag_and_cut_body() -> None:
    entry = replace(ENTRY, summary="word " * 100, time_estimated=True)
    message = to_item("w", entry, max_body_chars=100).message
    assert message["published_at_estimated"] is True
    assert len(message["body"]) <= 100 and not message["body"].endswith(" wor")
