"""One poll of a feed against a real HTTP server, into an in-memory sink."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.metrics import Metrics
from monitor.settings import FeedSettings, SourcesSettings
from monitor.sources.dedup import FeedStore
from monitor.sources.http import FeedFetcher
from monitor.sources.poller import FeedPoller
from monitor.sources.produce import MemorySink
from monitor.sources.status import SourceBoard
from tests.monitor.sources.conftest import fixture_bytes
from tests.monitor.sources.feed_server import FeedServer, Reply, Request

NOW_SEC = 1_796_040_000.0  # 2026-12-01T09:20Z, after every fixture item
RSS = fixture_bytes("rss2.xml")
SETTINGS = SourcesSettings(max_feed_bytes=1_000_000)

MakePoller = Callable[..., tuple[FeedPoller, MemorySink]]


@pytest.fixture
def make_poller(tmp_path: Path, metrics: Metrics) -> MakePoller:
    def make(sink: MemorySink | None = None) -> tuple[FeedPoller, MemorySink]:
        sink = sink or MemorySink()
        fetcher = FeedFetcher.create(user_agent="FinMon/t", timeout_sec=2, max_bytes=1_000_000)
        board = SourceBoard(clock=lambda: NOW_SEC)
        board.register("wire", "feed", 60.0)
        poller = FeedPoller(
            SETTINGS,
            fetcher=fetcher,
            store=FeedStore(tmp_path / "sources.sqlite", retention_ms=14 * 86_400_000),
            producer=sink,
            metrics=metrics,
            board=board,
            clock=lambda: NOW_SEC,
        )
        return poller, sink

    return make


def feed(url: str) -> FeedSettings:
    return FeedSettings(name="wire", url=url, interval_sec=60)


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_new_items_then_304(
    feed_server: FeedServer, make_poller: MakePoller, metrics: Metrics
) -> None:
    def route(request: Request) -> Reply:
        if request.headers.get("if-none-match") == '"a"':
            return Reply(304)
        return Reply(200, RSS, {"ETag": '"a"'})

    poller, sink = make_poller()
    cfg = feed(feed_server.serve("/rss", route))
    assert poller.poll(cfg).new == 3
    assert poller.poll(cfg).not_modified
    assert len(sink.messages) == 3 and {m["source"] for m in sink.messages} == {"wire"}
    assert sample(metrics, "finmon_source_polls_total", source="wire", outcome="not_modified") == 1
    assert sample(metrics, "finmon_source_items_total", source="wire", outcome="new") == 3
    state = poller.board.snapshot()["wire"]
    assert state.last_success_sec == NOW_SEC and state.newest_item_sec is not None


def test_duplicate_guids_across_polls_and_a_restart(
    feed_server: FeedServer, make_poller: MakePoller, metrics: Metrics
) -> None:
    cfg = feed(feed_server.serve("/rss", lambda r: Reply(200, RSS)))  # no validators: full body
    poller, sink = make_poller()
    assert poller.poll(cfg).new == 3
    assert poller.poll(cfg).duplicates == 3
    restarted, sink2 = make_poller()
    result = restarted.poll(cfg)
    assert (result.new, result.duplicates) == (0, 3)
    assert len(sink.messages) == 3 and sink2.messages == []
    assert sample(metrics, "finmon_source_items_total", source="wire", outcome="duplicate") == 6


def test_changed_guid_with_the_same_link_is_not_new(
    feed_server: FeedServer, make_poller: MakePoller
) -> None:
    body = {"b": RSS}
    cfg = feed(feed_server.serve("/rss", lambda r: Reply(200, body["b"])))
    poller, sink = make_poller()
    poller.poll(cfg)
    body["b"] = RSS.replace(b"ex-2026-11-30-0001", b"ex-2026-11-30-0001-v2").replace(
        b"</channel>",
        b"<item><title>Fresh item</title><link>https://news.example.com/fresh</link>"
        b"<guid>fresh-1</guid><pubDate>Tue, 01 Dec 2026 08:00:00 GMT</pubDate></item></channel>",
    )
    result = poller.poll(cfg)
    assert (result.new, result.duplicates) == (1, 3)
    assert sink.messages[-1]["headline"] == "Fresh item"


def test_nothing_is_committed_when_the_sink_fails(
    feed_server: FeedServer, make_poller: MakePoller
) -> None:
    cfg = feed(feed_server.serve("/rss", lambda r: Reply(200, RSS, {"ETag": '"a"'})))
    sink = MemorySink()
    sink.fail_next = True
    poller, _ = make_poller(sink)
    failed = poller.poll(cfg)
    assert failed.error is not None and failed.error.kind == "produce"
    assert feed_server.requests[-1].headers.get("if-none-match") is None
    retried = poller.poll(cfg)
    assert retried.new == 3  # same items again, with the same ids
    assert feed_server.requests[-1].headers.get("if-none-match") is None  # the ETag was not kept
    assert len({m["id"] for m in sink.messages}) == 3


def test_301_is_stored_and_used_next_time(feed_server: FeedServer, make_poller: MakePoller) -> None:
    feed_server.serve("/old", lambda r: Reply(301, headers={"Location": "/new"}))
    feed_server.serve("/new", lambda r: Reply(200, RSS))
    poller, _ = make_poller()
    cfg = feed(feed_server.url("/old"))
    poller.poll(cfg)
    poller.poll(cfg)
    assert [r.path for r in feed_server.requests] == ["/old", "/new", "/new"]


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (fixture_bytes("malformed.xml"), "malformed"),
        (RSS.replace(b"</channel>", b"<!--" + b"x" * 10_000_000 + b"--></channel>"), "too_large"),
    ],
)
def test_bad_feeds_are_counted_errors_not_crashes(
    feed_server: FeedServer, make_poller: MakePoller, metrics: Metrics, body: bytes, kind: str
) -> None:
    cfg = feed(feed_server.serve("/rss", lambda r: Reply(200, body)))
    poller, sink = make_poller()
    result = poller.poll(cfg)
    assert result.error is not None and result.error.kind == kind
    assert sink.messages == []
    assert sample(metrics, "finmon_source_errors_total", source="wire", kind=kind) == 1
    assert poller.board.snapshot()["wire"].consecutive_failures == 1


def test_rate_limit_carries_retry_after(feed_server: FeedServer, make_poller: MakePoller) -> None:
    cfg = feed(feed_server.serve("/rss", lambda r: Reply(429, headers={"Retry-After": "90"})))
    poller, _ = make_poller()
    assert poller.poll(cfg).retry_after_sec == 90.0


def test_items_without_dates_are_flagged(feed_server: FeedServer, make_poller: MakePoller) -> None:
    cfg = feed(feed_server.serve("/rss", lambda r: Reply(200, fixture_bytes("nodates.xml"))))
    poller, sink = make_poller()
    assert poller.poll(cfg).new == 2
    assert all(m["published_at_estimated"] for m in sink.messages)
    assert poller.poll(cfg).duplicates == 2  # by link / GUID, though the time moved on


def test_items_older_than_retention_are_stale(
    feed_server: FeedServer, make_poller: MakePoller
) -> None:
    old = RSS.replace(b"2026", b"2025")
    cfg = feed(feed_server.serve("/rss", lambda r: Reply(200, old)))
    poller, sink = make_poller()
    assert poller.poll(cfg).stale == 3 and sink.messages == []
