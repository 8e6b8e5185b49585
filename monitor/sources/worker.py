"""The source role: feed polls on an APScheduler, the push endpoint and the drop folder.

:meth:`SourceRole.run` blocks until its stop event is set, then stops the scheduler (a poll in
progress finishes and commits), the push server and the drop folder, and closes the producer.
``board`` tells health checks what each source did last; ``board.alive`` is True while it runs.
Broker loss (``broker``, :class:`~monitor.ingest.health.BrokerWatch`): produces and a log-end
probe of ``news.raw`` every few seconds feed ``finmon_broker_up{role="source"}``; after
``kafka.broker_exit_after_sec`` of failures ``run`` raises BrokerLost.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from kafka import KafkaConsumer

from monitor.contract import DEFAULT_LIMITS, DecodeLimits
from monitor.ingest.health import PROBE_INTERVAL_SEC, BrokerWatch
from monitor.ingest.kafka_io import ensure_topics, make_producer, require_broker
from monitor.metrics import Metrics
from monitor.settings import FeedSettings, Settings
from monitor.sources.backoff import BackoffPolicy
from monitor.sources.dedup import FeedStore
from monitor.sources.dropfolder import DropFolder
from monitor.sources.http import FeedFetcher
from monitor.sources.poller import FeedPoller
from monitor.sources.produce import AckProducer
from monitor.sources.push import PushServer
from monitor.sources.status import SourceBoard
from monitor.tickers import EMPTY_DICTIONARY, TickerDictionary

logger = logging.getLogger(__name__)

MAX_POLL_THREADS = 8
POLL_RUNNING_SEC = 86_400.0


class FeedSchedule:
    """One job per feed. The next poll is due ``interval_sec`` plus a random ``[0, jitter_sec]``
    after the end of the last one, or after the backoff delay when it failed (at least the
    server's Retry-After)."""

    def __init__(
        self, poller: FeedPoller, feeds: tuple[FeedSettings, ...], backoff: BackoffPolicy
    ) -> None:
        self.poller = poller
        self.feeds = feeds
        self.backoff = backoff
        self.failures = {f.name: 0 for f in feeds}
        self.rng = random.Random()
        workers = max(1, min(MAX_POLL_THREADS, len(feeds)))
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(workers)}, timezone=UTC, daemon=True
        )

    def start(self) -> None:
        now = datetime.now(UTC)
        for feed in self.feeds:
            first = now + timedelta(seconds=self.rng.uniform(0, min(feed.jitter_sec, 5.0)))
            self.scheduler.add_job(
                self.poll,
                "interval",
                seconds=POLL_RUNNING_SEC,  # each run sets its successor's time itself
                args=[feed],
                id=feed.name,
                next_run_time=first,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )
        self.scheduler.start()

    def poll(self, feed: FeedSettings) -> None:
        self._due_in(feed.name, POLL_RUNNING_SEC)  # no second run while this one lasts
        result = self.poller.poll(feed)
        self._due_in(
            feed.name, self.next_delay_sec(feed, result.error is None, result.retry_after_sec)
        )

    def next_delay_sec(self, feed: FeedSettings, ok: bool, retry_after_sec: float | None) -> float:
        """Seconds until the next poll of ``feed`` after one that succeeded or failed."""
        if ok:
            self.failures[feed.name] = 0
            return feed.interval_sec + self.rng.uniform(0, feed.jitter_sec)
        self.failures[feed.name] += 1
        delay = self.backoff.delay_sec(self.failures[feed.name], retry_after_sec)
        logger.info("feed %s: next poll in %.0f s (backoff)", feed.name, delay)
        return delay

    def _due_in(self, name: str, delay_sec: float) -> None:
        if self.scheduler.running:
            due = datetime.now(UTC) + timedelta(seconds=delay_sec)
            self.scheduler.modify_job(name, next_run_time=due)

    def stop(self) -> None:
        """Wait for polls in progress (they commit), then stop."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        self.poller.fetcher.close()


class SourceRole:
    """Everything that brings news into ``kafka.raw_topic``. Build with :meth:`from_settings`."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        *,
        dictionary: TickerDictionary = EMPTY_DICTIONARY,
        limits: DecodeLimits = DEFAULT_LIMITS,
        board: SourceBoard | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.dictionary = dictionary
        self.limits = limits
        self.board = board or SourceBoard()
        self.push: PushServer | None = None
        self.producer: AckProducer | None = None
        self.broker = BrokerWatch("source", settings.kafka, metrics.broker_up)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        metrics: Metrics,
        limits: DecodeLimits = DEFAULT_LIMITS,
        dictionary: TickerDictionary = EMPTY_DICTIONARY,
    ) -> SourceRole:
        """``limits``: the classify role's decode limits (pushed and dropped items are checked
        against them); ``dictionary``: ``model.ticker_names``, the names the model's entity
        handling uses too."""
        return cls(settings, metrics, dictionary=dictionary, limits=limits)

    def _producer(self) -> AckProducer:
        kafka = self.settings.kafka
        require_broker(kafka)
        ensure_topics(kafka, [kafka.raw_topic])
        return AckProducer(
            make_producer(kafka),
            kafka.raw_topic,
            timeout_sec=kafka.produce_timeout_sec,
            max_in_flight_items=self.settings.sources.push.max_in_flight_items,
            broker=self.broker,
        )

    def _schedule(self, store: FeedStore, producer: AckProducer) -> FeedSchedule | None:
        cfg = self.settings.sources
        if not cfg.feeds:
            return None
        fetcher = FeedFetcher.create(
            user_agent=cfg.user_agent, timeout_sec=cfg.timeout_sec, max_bytes=cfg.max_feed_bytes
        )
        for feed in cfg.feeds:
            silent_sec = cfg.silent_after_intervals * (feed.interval_sec + feed.jitter_sec)
            self.board.register(feed.name, "feed", feed.interval_sec, silent_sec)
        poller = FeedPoller(
            cfg,
            fetcher=fetcher,
            store=store,
            producer=producer,
            metrics=self.metrics,
            board=self.board,
            dictionary=self.dictionary,
        )
        backoff = BackoffPolicy(initial_sec=cfg.backoff_initial_sec, max_sec=cfg.backoff_max_sec)
        return FeedSchedule(poller, cfg.feeds, backoff)

    def _push(self, producer: AckProducer) -> PushServer | None:
        push = self.settings.sources.push
        if not push.enabled:
            return None
        return PushServer(
            push, producer, self.metrics, self.board, dictionary=self.dictionary, limits=self.limits
        )

    def _drop_folder(self, producer: AckProducer) -> DropFolder | None:
        drop = self.settings.sources.drop_folder
        if not drop.dir:
            return None
        return DropFolder(
            drop, producer, self.metrics, self.board, dictionary=self.dictionary, limits=self.limits
        )

    def _probe_consumer(self) -> KafkaConsumer:
        """A consumer outside any group, for the log-end probe of ``news.raw``."""
        kafka = self.settings.kafka
        probe = KafkaConsumer(**kafka.client_config())
        probe.partitions_for_topic(kafka.raw_topic)  # metadata now, while the broker answers
        return probe

    def _watch_broker(self, stop: threading.Event, probe: KafkaConsumer) -> None:
        """Until ``stop``: probe the broker and judge it. Raises BrokerLost."""
        while not stop.wait(PROBE_INTERVAL_SEC):
            self.broker.probe(probe, self.settings.kafka.raw_topic)
            self.broker.judge()

    def run(self, stop: threading.Event) -> None:
        """Run every configured source until ``stop`` is set. Raises BrokerLost once every
        broker call has failed for ``kafka.broker_exit_after_sec``."""
        state_dir = Path(self.settings.state.dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        store = FeedStore(
            state_dir / self.settings.sources.state_file,
            retention_ms=int(self.settings.sources.dedup_retention_sec * 1000),
        )
        self.producer = producer = self._producer()
        probe = self._probe_consumer()
        schedule: FeedSchedule | None = None
        threads: list[threading.Thread] = []
        halt = threading.Event()  # ends the drop folder whether the role stops or fails
        try:
            schedule, self.push = self._schedule(store, producer), self._push(producer)
            drop = self._drop_folder(producer)
            if schedule is not None:
                schedule.start()
            if self.push is not None:
                self.push.start()
            if drop is not None:
                threads.append(_thread("finmon-dropfolder", drop.run, halt))
            self.board.alive = True
            self.metrics.up.labels("source").set(1)
            self.broker.started()
            logger.info(
                "source role: %d feed(s), push %s, drop folder %s",
                len(self.settings.sources.feeds),
                "on" if self.push else "off",
                "on" if drop else "off",
            )
            self._watch_broker(stop, probe)
        finally:
            halt.set()
            self.board.alive = False
            self.metrics.up.labels("source").set(0)
            if self.push is not None:
                self.push.stop()
            if schedule is not None:
                schedule.stop()
            for thread in threads:
                thread.join(30)
            producer.close()
            probe.close()
            store.close()


def _thread(
    name: str, target: Callable[[threading.Event], None], stop: threading.Event
) -> threading.Thread:
    thread = threading.Thread(target=target, args=(stop,), name=name, daemon=True)
    thread.start()
    return thread
