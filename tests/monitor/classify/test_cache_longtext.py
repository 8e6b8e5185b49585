"""The bounded prediction cache and the long-text window plan."""

from __future__ import annotations

import itertools
import tracemalloc

import pytest

from monitor.classify.cache import PredictionCache
from monitor.classify.longtext import LongTextPolicy, combine, plan_spans, span_weights
from monitor.contract import Prediction


def pred(p: float) -> Prediction:
    return Prediction({"Macro": 1.0}, {"negative": p, "neutral": 0.0, "positive": 1 - p})


def test_cache_evicts_least_recently_used() -> None:
    cache = PredictionCache(max_items=2)
    cache.put("a", pred(0.1))
    cache.put("b", pred(0.2))
    assert cache.get("a") is not None  # "a" is now most recent
    cache.put("c", pred(0.3))
    assert cache.get("b") is None
    assert cache.get("a") == pred(0.1) and cache.get("c") == pred(0.3)
    assert len(cache) == 2


def test_zero_sized_cache_stores_nothing() -> None:
    cache = PredictionCache(max_items=0)
    cache.put("a", pred(0.1))
    assert cache.get("a") is None


def test_cache_holds_a_digest_not_the_text() -> None:
    """Memory is bounded by the entry count, whatever the texts' length (up to 1 MB each)."""
    cache = PredictionCache(max_items=100)
    shared = pred(0.1)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(50):
            cache.put(f"{i} " + "x" * 100_000, shared)
        held_bytes = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held_bytes < 100_000  # the 50 texts alone are 5 MB
    assert cache.get("7 " + "x" * 100_000) is shared and cache.get("7 x") is None


def test_short_text_is_one_window() -> None:
    assert plan_spans(10, 30, LongTextPolicy()) == [(0, 10)]


def test_long_text_windows_overlap_start_at_head_and_cover_the_end() -> None:
    spans = plan_spans(100, 30, LongTextPolicy(overlap_tokens=5, max_chunks=10))
    assert spans[0] == (0, 30)
    assert spans[-1][1] == 100
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end - start == 5
    assert all(end - start <= 30 for start, end in spans)


def test_window_count_is_capped_and_truncate_keeps_the_head() -> None:
    assert len(plan_spans(10_000, 30, LongTextPolicy(max_chunks=4))) == 4
    assert plan_spans(100, 30, LongTextPolicy(strategy="truncate")) == [(0, 30)]


def test_combine_weights_the_head_window() -> None:
    policy = LongTextPolicy(head_weight=3.0)
    weights = span_weights(2, policy)
    mixed = combine([{"neg": 1.0, "pos": 0.0}, {"neg": 0.0, "pos": 1.0}], weights)
    assert mixed == pytest.approx({"neg": 0.75, "pos": 0.25})
    assert sum(mixed.values()) == pytest.approx(1.0)
