"""One poll of one feed: fetch, parse, dedup, produce, then commit the feed's position.

:meth:`FeedPoller.poll` is blocking and never raises for a feed's own failures: it counts them,
records them on the board and returns a :class:`PollResult` the scheduler backs off from. The
commit (position + seen keys) happens only after the broker acknowledged every new item.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from monitor.metrics import Metrics
from monitor.settings import FeedSettings, SourcesSettings
from monitor.sources.dedup import FeedPosition, FeedStore
from monitor.sources.errors import FetchError, SourceError
from monitor.sources.feeds import FeedEntry, parse_feed
from monitor.sources.http import FeedFetcher, FetchResult
from monitor.sources.items import SourceItem, to_item
from monitor.sources.produce import MessageSink
from monitor.sources.status import SourceBoard
from monitor.tickers import EMPTY_DICTIONARY, TickerDictionary

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PollResult:
    """What a poll did. ``error`` is set when it failed (nothing was committed)."""

    new: int = 0
    duplicates: int = 0
    stale: int = 0
    not_modified: bool = False
    error: SourceError | None = None

    @property
    def retry_after_sec(self) -> float | None:
        return self.error.retry_after_sec if isinstance(self.error, FetchError) else None


class FeedPoller:
    """Polls feeds for one process; safe to call for different feeds from several threads."""

    def __init__(
        self,
        settings: SourcesSettings,
        *,
        fetcher: FeedFetcher,
        store: FeedStore,
        producer: MessageSink,
        metrics: Metrics,
        board: SourceBoard,
        dictionary: TickerDictionary = EMPTY_DICTIONARY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.fetcher = fetcher
        self.store = store
        self.producer = producer
        self.metrics = metrics
        self.board = board
        self.dictionary = dictionary
        self.clock = clock

    def poll(self, feed: FeedSettings) -> PollResult:
        started = time.perf_counter()
        try:
            result = self._poll(feed)
        except SourceError as exc:
            result = PollResult(error=exc)
            self._failed(feed.name, exc.kind, str(exc))
        except Exception as exc:  # a bug or a disk error must not stop the other feeds
            logger.exception("feed %s: unexpected error", feed.name)
            result = PollResult(error=SourceError("internal", repr(exc)))
            self._failed(feed.name, "internal", repr(exc))
        self.metrics.source_poll_seconds.labels(feed.name).observe(time.perf_counter() - started)
        return result

    def _failed(self, name: str, kind: str, detail: str) -> None:
        logger.warning("feed %s: poll failed: %s", name, detail)
        self.metrics.source_polls.labels(name, "error").inc()
        self.metrics.source_errors.labels(name, kind).inc()
        self.board.failure(name, kind)

    def _poll(self, feed: FeedSettings) -> PollResult:
        now_sec = self.clock()
        now = datetime.fromtimestamp(now_sec, UTC)
        position = self.store.position(feed.name, feed.url)
        fetched = self.fetcher.fetch(position.url, position.validators, now)
        if fetched.url != position.url:
            logger.info("feed %s moved permanently: %s -> %s", feed.name, position.url, fetched.url)
        new_position = FeedPosition(fetched.url, fetched.validators)
        if fetched.not_modified:
            self.store.commit(feed.name, feed.url, new_position, (), int(now_sec * 1000))
            self.metrics.source_polls.labels(feed.name, "not_modified").inc()
            self.board.success(feed.name)
            return PollResult(not_modified=True)
        return self._deliver(feed, fetched, new_position, now)

    def _deliver(
        self, feed: FeedSettings, fetched: FetchResult, position: FeedPosition, now: datetime
    ) -> PollResult:
        parsed = parse_feed(fetched.body or b"", now, fetched.content_type)
        if parsed.warning:
            logger.debug("feed %s: parsed with a warning: %s", feed.name, parsed.warning)
        fresh, stale = self._fresh(parsed.entries, now)
        items = [self._item(feed.name, e) for e in fresh]
        split = self.store.split(items)
        self.producer.produce([item.message for item in split.new])
        keys = [k for item in items for k in item.keys]
        self.store.commit(feed.name, feed.url, position, keys, int(now.timestamp() * 1000))
        self._count(feed.name, len(split.new), len(split.duplicates), stale)
        newest = max((e.published_at for e in fresh if not e.time_estimated), default=None)
        self.board.success(feed.name, newest.timestamp() if newest else None)
        logger.debug(
            "feed %s: %d new, %d duplicate", feed.name, len(split.new), len(split.duplicates)
        )
        return PollResult(len(split.new), len(split.duplicates), stale)

    def _fresh(self, entries: tuple[FeedEntry, ...], now: datetime) -> tuple[list[FeedEntry], int]:
        horizon = now.timestamp() - self.settings.dedup_retention_sec
        fresh = [e for e in entries if e.time_estimated or e.published_at.timestamp() >= horizon]
        return fresh, len(entries) - len(fresh)

    def _item(self, feed: str, entry: FeedEntry) -> SourceItem:
        return to_item(
            feed, entry, max_body_chars=self.settings.max_body_chars, dictionary=self.dictionary
        )

    def _count(self, name: str, new: int, duplicates: int, stale: int) -> None:
        self.metrics.source_polls.labels(name, "ok").inc()
        for outcome, count in (("new", new), ("duplicate", duplicates), ("stale", stale)):
            if count:
                self.metrics.source_items.labels(name, outcome).inc(count)
