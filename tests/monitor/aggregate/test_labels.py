"""Bounded label values: forged topics, tickers, sentiments and numbers on news.scored."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import replace
from pathlib import Path

import pytest

from monitor.aggregate.engine import Aggregator
from monitor.aggregate.labels import (
    OTHER_TOPIC,
    TopicLabels,
    check_scored,
    known_topics,
    tracked_tickers,
)
from monitor.aggregate.store import MemoryStateStore
from monitor.errors import InvalidMessage
from monitor.metrics import Metrics
from monitor.settings import load_settings
from tests.monitor.aggregate.conftest import T0_MS, ItemFactory, fast_settings

MODEL_TOPICS = ("Earnings", "Macro")


def label_sets(metrics: Metrics) -> int:
    """Distinct label sets over every finmon_* family."""
    return sum(
        len(family.samples)
        for family in metrics.registry.collect()
        if family.name.startswith("finmon_")
    )


def test_topics_outside_the_label_map_count_as_other(
    make_item: ItemFactory, metrics: Metrics
) -> None:
    agg = Aggregator(fast_settings(), metrics=metrics, topics=MODEL_TOPICS)
    metrics.register_collector(agg.collector())
    for n in range(3):
        agg.add(make_item(T0_MS + n, topic="Earnings"), T0_MS + n)
    before = label_sets(metrics)
    for n in range(2_000):
        agg.add(make_item(T0_MS + n, topic=f"forged-{n}"), T0_MS + n)
    agg.advance(T0_MS + 10_000)
    topics = sorted(key for kind, key in agg.tracks if kind == "topic")
    assert topics == ["Earnings", OTHER_TOPIC]
    labels = {"topic": OTHER_TOPIC, "sentiment": "neutral"}
    assert metrics.registry.get_sample_value("finmon_aggregate_items_total", labels) == 2_000
    assert label_sets(metrics) - before < 20  # the `other` series, not one per forged topic


def test_without_a_label_map_the_first_topics_are_kept(make_item: ItemFactory) -> None:
    agg = Aggregator(fast_settings(max_topic_series=3))
    for n in range(10):
        agg.add(make_item(T0_MS + n, topic=f"t{n}"), T0_MS + n)
    topics = sorted(key for kind, key in agg.tracks if kind == "topic")
    assert topics == ["other", "t0", "t1", "t2"]


def test_other_topics_are_logged_at_a_rate_limit(caplog: pytest.LogCaptureFixture) -> None:
    labels = TopicLabels(MODEL_TOPICS, max_series=64)
    with caplog.at_level(logging.WARNING, logger="monitor.aggregate.labels"):
        for n in range(1_000):
            assert labels.label(f"x{n}", T0_MS + n) == OTHER_TOPIC
        labels.label("late", T0_MS + 61_000)
    assert len(caplog.records) == 2
    assert "1000 record(s)" in caplog.records[1].getMessage()


def test_ticker_strings_that_cannot_be_tickers_open_no_series(make_item: ItemFactory) -> None:
    assert tracked_tickers(("AAPL", "BRK.B")) == ("AAPL", "BRK.B")
    assert tracked_tickers(("AAPL", "x" * 10_000, "A B", "")) == ("AAPL",)
    agg = Aggregator(fast_settings())
    agg.add(make_item(T0_MS, tickers=("MSFT", "Z" * 500)), T0_MS)
    assert sorted(key for kind, key in agg.tracks if kind == "ticker") == ["MSFT"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"sentiment": "furious"}, "bad_field_type"),
        ({"id": "x" * 257}, "bad_field_type"),
        ({"negative_prob": math.nan}, "bad_number"),
        ({"negative_prob": 1.5}, "bad_number"),
        ({"sentiment_score": math.inf}, "bad_number"),
        ({"tickers": tuple(f"T{n}" for n in range(65))}, "too_many_tickers"),
        ({"entity_views": {"AAPL": ("rage", 0.0, 0.1)}}, "bad_field_type"),
        ({"entity_views": {"AAPL": ("negative", -0.5, math.nan)}}, "bad_number"),
    ],
)
def test_values_the_classify_role_never_writes_are_refused(
    make_item: ItemFactory, change: dict[str, object], reason: str
) -> None:
    with pytest.raises(InvalidMessage) as err:
        check_scored(replace(make_item(T0_MS), **change))  # type: ignore[arg-type]
    assert err.value.reason == reason


def test_a_valid_item_passes_unchanged(make_item: ItemFactory) -> None:
    item = make_item(T0_MS, negative=True, tickers=("AAPL",))
    assert check_scored(item) is item


def test_known_topics_come_from_the_setting_then_the_model(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    meta = {"labels": {"topic": list(MODEL_TOPICS), "sentiment": ["negative"]}}
    (model / "finmon_model.json").write_text(json.dumps(meta))
    from_model = load_settings(environ={}, overrides={"model": {"path": str(model)}})
    assert known_topics(from_model) == MODEL_TOPICS
    both = {"model": {"path": str(model)}, "aggregate": {"topic_labels": ["IPO"]}}
    assert known_topics(load_settings(environ={}, overrides=both)) == ("IPO",)
    assert known_topics(load_settings(environ={})) == ()


def test_a_checkpoint_full_of_forged_topics_restores_only_known_ones(
    make_item: ItemFactory,
) -> None:
    store = MemoryStateStore()
    unbounded = Aggregator(fast_settings(max_topic_series=10_000), store=store)
    for n in range(500):
        unbounded.add(make_item(T0_MS + n, topic=f"forged-{n}"), T0_MS + n)
    unbounded.add(make_item(T0_MS, topic="Earnings"), T0_MS)
    unbounded.checkpoint()
    restored = Aggregator(fast_settings(), store=store, topics=MODEL_TOPICS)
    assert sorted(key for kind, key in restored.tracks if kind == "topic") == ["Earnings"]
