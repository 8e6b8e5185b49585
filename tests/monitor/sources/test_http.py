"""Fetching against a real HTTP server on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from monitor.sources.errors import FetchError
from monitor.sources.http import FeedFetcher, Validators, parse_retry_after
from tests.monitor.sources.conftest import fixture_bytes
from tests.monitor.sources.feed_server import FeedServer, Reply, Request

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
RSS = fixture_bytes("rss2.xml")


@pytest.fixture
def fetcher() -> Iterator[FeedFetcher]:
    made = FeedFetcher.create(user_agent="FinMon/test", timeout_sec=2.0, max_bytes=1_000_000)
    yield made
    made.close()


def test_etag_round_trip_gives_304(feed_server: FeedServer, fetcher: FeedFetcher) -> None:
    def route(request: Request) -> Reply:
        if request.headers.get("if-none-match") == '"v1"':
            return Reply(304)
        return Reply(200, RSS, {"ETag": '"v1"'})

    url = feed_server.serve("/feed", route)
    first = fetcher.fetch(url, Validators(), NOW)
    assert first.body == RSS and first.validators.etag == '"v1"'
    second = fetcher.fetch(url, first.validators, NOW)
    assert second.not_modified
    assert second.validators == first.validators  # a 304 without validators keeps the old ones
    assert feed_server.requests[1].headers["if-none-match"] == '"v1"'


def test_last_modified_round_trip(feed_server: FeedServer, fetcher: FeedFetcher) -> None:
    stamp = "Mon, 30 Nov 2026 11:00:00 GMT"

    def route(request: Request) -> Reply:
        if request.headers.get("if-modified-since") == stamp:
            return Reply(304)
        return Reply(200, RSS, {"Last-Modified": stamp})

    url = feed_server.serve("/feed", route)
    first = fetcher.fetch(url, Validators(), NOW)
    assert first.validators == Validators(None, stamp)
    assert fetcher.fetch(url, first.validators, NOW).not_modified


def test_301_moves_the_feed_302_does_not(feed_server: FeedServer, fetcher: FeedFetcher) -> None:
    feed_server.serve("/old", lambda r: Reply(301, headers={"Location": "/new"}))
    feed_server.serve("/tmp", lambda r: Reply(302, headers={"Location": "/new"}))
    new = feed_server.serve("/new", lambda r: Reply(200, RSS))
    moved = fetcher.fetch(feed_server.url("/old"), Validators(), NOW)
    assert moved.url == new and moved.body == RSS
    temporary = fetcher.fetch(feed_server.url("/tmp"), Validators(), NOW)
    assert temporary.url == feed_server.url("/tmp") and temporary.body == RSS


def test_redirect_loop_is_an_error(feed_server: FeedServer, fetcher: FeedFetcher) -> None:
    url = feed_server.serve("/loop", lambda r: Reply(302, headers={"Location": "/loop"}))
    with pytest.raises(FetchError) as info:
        fetcher.fetch(url, Validators(), NOW)
    assert info.value.kind == "redirect"


def test_429_retry_after_seconds(feed_server: FeedServer, fetcher: FeedFetcher) -> None:
    url = feed_server.serve("/f", lambda r: Reply(429, headers={"Retry-After": "120"}))
    with pytest.raises(FetchError) as info:
        fetcher.fetch(url, Validators(), NOW)
    assert info.value.kind == "rate_limited"
    assert info.value.retry_after_sec == 120.0


def test_429_retry_after_http_date(feed_server: FeedServer, fetcher: FeedFetcher) -> None:
    later = format_datetime(NOW + timedelta(minutes=5), usegmt=True)
    url = feed_server.serve("/f", lambda r: Reply(429, headers={"Retry-After": later}))
    with pytest.raises(FetchError) as info:
        fetcher.fetch(url, Validators(), NOW)
    assert info.value.retry_after_sec == 300.0


def test_503_is_a_server_error_with_retry_after(
    feed_server: FeedServer, fetcher: FeedFetcher
) -> None:
    url = feed_server.serve("/f", lambda r: Reply(503, headers={"Retry-After": "7"}))
    with pytest.raises(FetchError) as info:
        fetcher.fetch(url, Validators(), NOW)
    assert (info.value.kind, info.value.retry_after_sec) == ("http_5xx", 7.0)


def test_404_is_a_client_error(feed_server: FeedServer, fetcher: FeedFetcher) -> None:
    with pytest.raises(FetchError) as info:
        fetcher.fetch(feed_server.url("/missing"), Validators(), NOW)
    assert info.value.kind == "http_4xx" and info.value.retry_after_sec is None


def test_gzip_is_asked_for_and_decoded(feed_server: FeedServer, fetcher: FeedFetcher) -> None:
    url = feed_server.serve("/gz", lambda r: Reply(200, RSS, gzip=True))
    result = fetcher.fetch(url, Validators(), NOW)
    assert result.body == RSS
    assert "gzip" in feed_server.requests[0].headers["accept-encoding"]


def test_user_agent_names_finmon(feed_server: FeedServer, fetcher: FeedFetcher) -> None:
    url = feed_server.serve("/f", lambda r: Reply(200, RSS))
    fetcher.fetch(url, Validators(), NOW)
    assert feed_server.requests[0].headers["user-agent"].startswith("FinMon")


def test_ten_megabyte_feed_is_refused(feed_server: FeedServer, fetcher: FeedFetcher) -> None:
    huge = RSS.replace(b"</channel>", b"<!--" + b"x" * 10_000_000 + b"--></channel>")
    url = feed_server.serve("/big", lambda r: Reply(200, huge))
    gz = feed_server.serve("/big.gz", lambda r: Reply(200, huge, gzip=True))
    for target in (url, gz):  # declared length, and a small gzip body that inflates past the cap
        with pytest.raises(FetchError) as info:
            fetcher.fetch(target, Validators(), NOW)
        assert info.value.kind == "too_large"


def test_timeout_is_a_timeout(feed_server: FeedServer) -> None:
    def slow(request: Request) -> Reply:
        time.sleep(1.0)
        return Reply(200, RSS)

    url = feed_server.serve("/slow", slow)
    quick = FeedFetcher.create(user_agent="FinMon/test", timeout_sec=0.2, max_bytes=1_000_000)
    with pytest.raises(FetchError) as info:
        quick.fetch(url, Validators(), NOW)
    quick.close()
    assert info.value.kind == "timeout"


def test_connection_refused_is_connect(fetcher: FeedFetcher) -> None:
    from monitor.broker import free_port

    with pytest.raises(FetchError) as info:
        fetcher.fetch(f"http://127.0.0.1:{free_port()}/feed", Validators(), NOW)
    assert info.value.kind == "connect"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30", 30.0),
        ("Mon, 30 Nov 2026 12:01:00 GMT", 60.0),
        ("Mon, 30 Nov 2026 11:00:00 GMT", 0.0),  # in the past: retry now
        ("soon", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected
