"""Feed scheduling on a real APScheduler: interval + jitter after success, backoff after errors."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from monitor.metrics import Metrics
from monitor.settings import FeedSettings, SourcesSettings
from monitor.sources.backoff import BackoffPolicy
from monitor.sources.dedup import FeedStore
from monitor.sources.http import FeedFetcher
from monitor.sources.poller import FeedPoller
from monitor.sources.produce import MemorySink
from monitor.sources.status import SourceBoard
from monitor.sources.worker import FeedSchedule
from tests.monitor.sources.conftest import fixture_bytes
from tests.monitor.sources.feed_server import FeedServer, Reply
from tests.polling import wait_until


def schedule_for(feeds: tuple[FeedSettings, ...], tmp_path: Path, metrics: Metrics) -> FeedSchedule:
    board = SourceBoard()
    for feed in feeds:
        board.register(feed.name, "feed", feed.interval_sec)
    poller = FeedPoller(
        SourcesSettings(),
        fetcher=FeedFetcher.create(user_agent="FinMon/t", timeout_sec=2, max_bytes=1_000_000),
        store=FeedStore(tmp_path / "s.sqlite", retention_ms=10**12),
        producer=MemorySink(),
        metrics=metrics,
        board=board,
    )
    return FeedSchedule(poller, feeds, BackoffPolicy(initial_sec=10, max_sec=100))


def seconds_until_next(schedule: FeedSchedule, name: str) -> float:
    job = schedule.scheduler.get_job(name)
    return float((job.next_run_time - datetime.now(UTC)).total_seconds())


def test_next_polls_follow_interval_jitter_and_retry_after(
    feed_server: FeedServer, tmp_path: Path, metrics: Metrics
) -> None:
    ok = FeedSettings(
        name="ok",
        url=feed_server.serve("/ok", lambda r: Reply(200, fixture_bytes("rss2.xml"))),
        interval_sec=600,
        jitter_sec=60,
    )
    limited = FeedSettings(
        name="limited",
        url=feed_server.serve("/rl", lambda r: Reply(429, headers={"Retry-After": "1800"})),
        interval_sec=600,
        jitter_sec=0,
    )
    schedule = schedule_for((ok, limited), tmp_path, metrics)
    schedule.start()
    try:
        assert wait_until(lambda: len(feed_server.requests) >= 2, 20)
        assert wait_until(lambda: seconds_until_next(schedule, "limited") > 1000, 10)
        assert 1790 < seconds_until_next(schedule, "limited") <= 1800
        assert wait_until(lambda: seconds_until_next(schedule, "ok") < 1000, 10)
        assert 590 < seconds_until_next(schedule, "ok") <= 660
    finally:
        schedule.stop()


def test_backoff_grows_then_resets(tmp_path: Path, metrics: Metrics) -> None:
    feed = FeedSettings(name="f", url="http://127.0.0.1:9/", interval_sec=300, jitter_sec=0)
    schedule = schedule_for((feed,), tmp_path, metrics)
    delays = [schedule.next_delay_sec(feed, ok=False, retry_after_sec=None) for _ in range(4)]
    assert delays == [10, 20, 40, 80]
    assert schedule.next_delay_sec(feed, ok=True, retry_after_sec=None) == 300
    assert schedule.next_delay_sec(feed, ok=False, retry_after_sec=None) == 10
