"""Per-ticker windows count the entity's own sentiment for that ticker, else the headline's."""

from __future__ import annotations

import json
from dataclasses import replace

from monitor.aggregate.engine import Aggregator
from monitor.contract import decode_scored
from tests.monitor.aggregate.conftest import T0_MS, ItemFactory, fast_settings


def window_counts(agg: Aggregator, kind: str, key: str) -> dict[str, int]:
    """Sentiment counts of the key's one open window."""
    (window,) = agg.tracks[(kind, key)].open.values()
    return {name: window.counts.get(name, 0) for name in ("negative", "neutral", "positive")}


def test_ticker_windows_count_the_entity_not_the_headline(make_item: ItemFactory) -> None:
    agg = Aggregator(fast_settings())
    item = replace(
        make_item(T0_MS, tickers=("AAPL", "TSLA", "MSFT")),
        entity_views={"AAPL": ("positive", 0.8, 0.05), "TSLA": ("negative", -0.85, 0.9)},
    )
    agg.add(item, T0_MS)
    assert window_counts(agg, "ticker", "AAPL") == {"negative": 0, "neutral": 0, "positive": 1}
    assert window_counts(agg, "ticker", "TSLA") == {"negative": 1, "neutral": 0, "positive": 0}
    # No entity sentiment for MSFT: its window counts the headline's (neutral), as do the topic
    # and overall windows.
    assert window_counts(agg, "ticker", "MSFT") == {"negative": 0, "neutral": 1, "positive": 0}
    assert window_counts(agg, "topic", "Earnings")["neutral"] == 1


def test_scored_record_entities_become_views_and_window_keys() -> None:
    record = {
        "id": "x",
        "headline": "Apple beats as Tesla slumps",
        "topic": "Earnings",
        "sentiment": "neutral",
        "sentiment_probs": {"negative": 0.3, "neutral": 0.4, "positive": 0.3},
        "sentiment_score": 0.0,
        "published_at": "2026-11-28T10:00:00Z",
        "scored_at": "2026-11-28T10:00:01Z",
        "tickers": ["AAPL"],
        "entities": [
            {
                "name": "Apple",
                "ticker": "AAPL",
                "sentiment": "positive",
                "sentiment_probs": {"negative": 0.1, "neutral": 0.1, "positive": 0.8},
                "found": True,
            },
            {
                "name": "Tesla",
                "ticker": "TSLA",
                "sentiment": "negative",
                "sentiment_probs": {"negative": 0.7, "neutral": 0.2, "positive": 0.1},
                "found": True,
            },
            {
                "name": "Nvidia",
                "ticker": "NVDA",
                "sentiment": None,
                "sentiment_probs": {},
                "found": False,
            },
        ],
    }
    item = decode_scored(json.dumps(record).encode())
    assert item.tickers == ("AAPL", "TSLA")
    sentiment, score, negative = item.view("TSLA")
    assert (sentiment, round(score, 6), negative) == ("negative", -0.6, 0.7)
    assert item.view(None) == ("neutral", 0.0, 0.3)
