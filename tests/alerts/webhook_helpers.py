"""Shared builders for the webhook tests: alert events, settings, a fake clock, a dead port."""

from __future__ import annotations

import socket
import time
from typing import Any

from alerts.events import AlertEvent, Headline, Status
from monitor.settings import AlertSettings
from tests.headlines import own_story

SECRET = "test-secret-not-real"
WINDOW_MS = 60_000


class FakeClock:
    """Wall-clock seconds that only move when a test advances them (starts at real time, so
    receivers checking signature age with the real clock accept the timestamps)."""

    def __init__(self) -> None:
        self.now_sec = float(int(time.time()))

    def __call__(self) -> float:
        return self.now_sec

    def advance(self, seconds: float) -> None:
        self.now_sec += seconds


def event(
    key: str = "Earnings",
    *,
    status: Status = "firing",
    window_start_ms: int = 1_700_000_040_000,
    rule: str = "negative_share_spike",
    headlines: int = 3,
) -> AlertEvent:
    return AlertEvent(
        rule=rule,
        key_kind="topic",
        key=key,
        status=status,
        severity="warning",
        window_start_ms=window_start_ms,
        window_end_ms=window_start_ms + WINDOW_MS,
        value=0.62,
        baseline=0.18,
        score=6.5,
        volume=40,
        summary=f"Negative share spike on {key}",
        at_ms=window_start_ms + WINDOW_MS + (WINDOW_MS if status == "resolved" else 0),
        headlines=tuple(
            Headline(f"id-{i}", f"{key} headline {i}", 0.5 + i / 10, window_start_ms + i)
            for i in range(headlines)
        ),
    )


def settings(*urls: str, secret: str | None = SECRET, **extra: Any) -> AlertSettings:
    values: dict[str, Any] = {
        "webhook_urls": urls,
        "webhook_secret": secret,
        "timeout_sec": 2.0,
        "max_attempts": 4,
        "backoff_initial_sec": 1.0,
        "backoff_max_sec": 8.0,
        **extra,
    }
    return AlertSettings.model_validate(values)


def dead_url() -> str:
    """A loopback URL on a port nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spike_aggregator(metrics: Any = None, topics: tuple[str, ...] = ("Earnings",)) -> Any:
    """A real Aggregator (2 s windows, topic alerts only) and the events of a crafted spike.

    Each topic gets one window of 60 items, 90% negative, then quiet: a cold-start burst the
    detector fires on. Returns ``(aggregator, events, next_ms)``; advancing from ``next_ms``
    lets the alerts resolve.
    """
    from datetime import UTC, datetime

    from monitor.aggregate.engine import Aggregator
    from monitor.contract import ScoredItem
    from monitor.settings import AggregateSettings

    window_ms, t0 = 2_000, 1_700_000_040_000
    settings = AggregateSettings.model_validate(
        {
            "window_ms": window_ms,
            "allowed_lateness_ms": 500,
            "idle_close_ms": 1_000,
            "cooldown_ms": 0,
            "alert_key_kinds": ("topic",),
        }
    )
    agg = Aggregator(settings, metrics=metrics)
    for n in range(60):
        t = t0 + n * 30
        for topic in topics:
            negative = n % 10 != 0
            agg.add(
                ScoredItem(
                    id=f"{topic}-{n}",
                    headline=own_story(f"{topic} headline", f"{topic}-{n}"),
                    topic=topic,
                    sentiment="negative" if negative else "neutral",
                    sentiment_score=-0.9 if negative else 0.0,
                    negative_prob=0.9 if negative else 0.05,
                    published_at=datetime.fromtimestamp(t / 1000, UTC),
                    ingested_at=datetime.fromtimestamp(t / 1000, UTC),
                    tickers=(),
                ),
                t,
            )
    events = []
    now = t0 + window_ms
    for _ in range(20):
        events += agg.advance(now)
        now += 250
    return agg, events, now


def quiet(agg: Any, from_ms: int, seconds: int) -> list[AlertEvent]:
    """Advance the aggregator's clock with no items, collecting transitions."""
    events: list[AlertEvent] = []
    for step in range(seconds * 4):
        events += agg.advance(from_ms + step * 250)
    return events
