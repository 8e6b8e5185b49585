"""The demo newswire is a real RSS feed: the source role's fetcher and parser read it."""

from __future__ import annotations

from datetime import UTC, datetime

from monitor.demo.generator import NewsGenerator
from monitor.demo.replay import DemoFeed
from monitor.sources.feeds import parse_feed
from monitor.sources.http import FeedFetcher, Validators
from monitor.sources.items import to_item


def test_demo_feed_serves_rss_with_etag() -> None:
    feed = DemoFeed(window_items=3)
    feed.start()
    fetcher = FeedFetcher.create(user_agent="FinMon/t", timeout_sec=5, max_bytes=1_000_000)
    try:
        generator = NewsGenerator(seed=1)
        items = [generator.item() for _ in range(5)]
        now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
        for item in items:
            feed.add(item, now)
        now_fetch = datetime.now(UTC)
        first = fetcher.fetch(feed.url, Validators(), now_fetch)
        entries = parse_feed(first.body or b"", now_fetch).entries
        assert [e.guid for e in entries] == [i.id for i in reversed(items[2:])]  # newest 3
        assert entries[0].published_at == now and entries[0].title == items[-1].headline
        message = to_item("demo", entries[0], max_body_chars=500).message
        assert set(items[-1].tickers) <= set(message["tickers"])
        assert fetcher.fetch(feed.url, first.validators, now_fetch).not_modified
        feed.add(generator.item(), now)
        assert not fetcher.fetch(feed.url, first.validators, now_fetch).not_modified
    finally:
        fetcher.close()
        feed.stop()
