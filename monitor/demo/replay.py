"""The demo's newswire: synthetic headlines served as a local RSS feed, plus a push client.

The steady stream is appended to an RSS 2.0 document on loopback that the source role polls like
any feed (with ETag / 304); the negative burst and a few malformed items are POSTed to the
source role's push endpoint, as another system would. The schedule is :class:`ReplayPlan`; the
loop takes a stop event.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.sax.saxutils import escape

import httpx

from monitor.demo.generator import NewsGenerator, SyntheticItem

logger = logging.getLogger(__name__)

FEED_PATH = "/newswire.rss"
MALFORMED: tuple[dict[str, Any], ...] = (
    {"headline": "no id here"},
    {"id": "x", "headline": ""},
    {"id": "y", "headline": "bad time", "published_at": "yesterday"},
)


@dataclass(frozen=True, kw_only=True)
class ReplayPlan:
    """Steady background feed, then one negative burst on ``burst_topic`` (pushed)."""

    rate_per_sec: float = 40.0
    burst_topic: str = "Energy | Oil"
    burst_after_sec: float = 25.0
    burst_items: int = 80
    burst_negative_share: float = 0.9
    malformed_every: int = 50  # one malformed item pushed per this many (0: none)
    feed_window_items: int = 400  # newest items the RSS document lists


def rss_item(item: SyntheticItem, published_at: datetime) -> str:
    """One ``<item>``; tickers ride along as ``$TICKER`` categories."""
    categories = "".join(f"<category>${escape(t)}</category>" for t in item.tickers)
    return (
        f"<item><title>{escape(item.headline)}</title>"
        f"<link>https://newswire.demo.invalid/{escape(item.id)}</link>"
        f'<guid isPermaLink="false">{escape(item.id)}</guid>'
        f"<pubDate>{format_datetime(published_at, usegmt=True)}</pubDate>{categories}</item>"
    )


class DemoFeed:
    """An RSS 2.0 document of the newest items, served on loopback with an ETag."""

    def __init__(self, window_items: int, host: str = "127.0.0.1") -> None:
        self._items: deque[str] = deque(maxlen=window_items)
        self._lock = threading.Lock()
        self.version = 0
        self._server = ThreadingHTTPServer((host, 0), self._handler())
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{FEED_PATH}"

    def add(self, item: SyntheticItem, published_at: datetime) -> None:
        entry = rss_item(item, published_at)
        with self._lock:
            self._items.appendleft(entry)
            self.version += 1

    def document(self) -> tuple[str, bytes]:
        with self._lock:
            items, version = "".join(self._items), self.version
        body = (
            '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
            "<title>FinMon demo newswire</title><link>https://newswire.demo.invalid/</link>"
            f"<description>Synthetic headlines</description>{items}</channel></rss>"
        )
        return f'"v{version}"', body.encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        feed = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                etag, body = feed.document()
                if self.path != FEED_PATH:
                    self.send_error(404)
                    return
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def start(self) -> None:
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        ).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class ReplayProducer:
    """Feeds the plan's items into ``feed`` and the push endpoint until stopped; counts them."""

    feed: DemoFeed
    push_url: str
    push_token: str
    plan: ReplayPlan
    generator: NewsGenerator = field(default_factory=NewsGenerator)
    sent: int = 0
    pushed: int = 0
    malformed: int = 0
    burst_sent: bool = False

    def _push(self, items: list[dict[str, Any]]) -> None:
        try:
            answer = httpx.post(
                self.push_url,
                json=items,
                headers={"Authorization": f"Bearer {self.push_token}"},
                timeout=30,
            )
        except httpx.HTTPError as exc:
            logger.warning("demo push failed: %s", exc)
            return
        if answer.status_code not in (202, 400):
            logger.warning("demo push answered %d: %s", answer.status_code, answer.text[:200])
            return
        self.pushed += int(answer.json().get("accepted", 0))

    def _burst(self) -> None:
        items = self.generator.burst(
            self.plan.burst_topic, self.plan.burst_items, self.plan.burst_negative_share
        )
        now = datetime.now(UTC)
        self._push([item.message(now) for item in items])
        self.burst_sent = True
        logger.info("pushed a negative burst of %d items on %r", len(items), self.plan.burst_topic)

    def run(self, stop: threading.Event) -> None:
        started = time.monotonic()
        interval = 1.0 / self.plan.rate_per_sec
        while not stop.is_set():
            self.feed.add(self.generator.item(), datetime.now(UTC))
            self.sent += 1
            if self.plan.malformed_every and self.sent % self.plan.malformed_every == 0:
                self._push([MALFORMED[self.malformed % len(MALFORMED)]])
                self.malformed += 1
            if not self.burst_sent and time.monotonic() - started >= self.plan.burst_after_sec:
                self._burst()
            stop.wait(interval)
