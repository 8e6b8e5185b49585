"""Factories for scored items and aggregators driven by a fake clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from monitor.contract import ScoredItem
from monitor.settings import AggregateSettings

T0_MS = 1_700_000_040_000  # a window boundary for 1 s, 2 s, 5 s, 10 s and 60 s windows

ItemFactory = Callable[..., ScoredItem]


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


@pytest.fixture
def make_item() -> ItemFactory:
    """``make_item(event_ms, negative=False, topic="Earnings", tickers=())`` with unique ids."""
    counter = iter(range(1, 10**9))

    def make(
        event_ms: int,
        negative: bool = False,
        *,
        topic: str = "Earnings",
        tickers: tuple[str, ...] = (),
        item_id: str | None = None,
        neg_prob: float | None = None,
    ) -> ScoredItem:
        n = next(counter)
        prob = neg_prob if neg_prob is not None else (0.9 if negative else 0.05)
        return ScoredItem(
            id=item_id or f"item-{n}",
            headline=f"headline {n}",
            topic=topic,
            sentiment="negative" if negative else "neutral",
            sentiment_score=-prob if negative else 0.0,
            negative_prob=prob,
            published_at=at(event_ms),
            ingested_at=at(event_ms),
            tickers=tickers,
        )

    return make


def fast_settings(**overrides: object) -> AggregateSettings:
    """2 s windows as in the end-to-end test: short lateness and idle close."""
    base: dict[str, object] = {
        "window_ms": 2_000,
        "allowed_lateness_ms": 500,
        "idle_close_ms": 1_000,
        "cooldown_ms": 0,
    }
    base.update(overrides)
    return AggregateSettings.model_validate(base)
