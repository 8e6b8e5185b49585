from __future__ import annotations

import pytest

from alerts.events import Headline
from monitor.aggregate.windows import (
    WindowAccumulator,
    confidence,
    is_closed,
    window_end,
    window_start,
)


@pytest.mark.parametrize(
    ("event_ms", "start", "end"),
    [(0, 0, 60_000), (59_999, 0, 60_000), (60_000, 60_000, 120_000), (-1, -60_000, 0)],
)
def test_window_bounds_are_half_open(event_ms: int, start: int, end: int) -> None:
    assert window_start(event_ms, 60_000) == start
    assert window_end(event_ms, 60_000) == end


def test_window_closes_when_watermark_reaches_its_end() -> None:
    assert not is_closed(0, 1_000, 999)
    assert is_closed(0, 1_000, 1_000)


def test_confidence_is_the_top_probability() -> None:
    assert confidence(-0.8, 0.9) == pytest.approx(0.9)  # p_pos 0.1, neutral 0
    assert confidence(0.0, 0.1) == pytest.approx(0.8)  # p_pos 0.1, neutral 0.8
    assert confidence(0.7, 0.1) == pytest.approx(0.8)  # p_pos 0.8


def test_accumulator_counts_and_keeps_most_negative_headlines() -> None:
    acc = WindowAccumulator(top_n=2)
    for i, (sentiment, score, prob) in enumerate(
        [
            ("negative", -0.9, 0.95),
            ("neutral", 0.0, 0.1),
            ("negative", -0.5, 0.6),
            ("positive", 0.9, 0.0),
        ]
    ):
        acc.add(sentiment, score, prob, Headline(f"id{i}", f"text {i}", prob, i))
    stats = acc.result(("topic", "Macro"), 0, 1_000)
    assert (stats.volume, stats.negative, stats.neutral, stats.positive) == (4, 2, 1, 1)
    assert stats.negative_share == 0.5
    assert [h.id for h in stats.headlines] == ["id0", "id2"]
    # confidence-weighted: the confident -0.9 and +0.9 cancel, the 0.6-confident -0.5 pulls down
    assert -0.3 < stats.mean_score < 0


def test_accumulator_state_round_trip() -> None:
    acc = WindowAccumulator(top_n=3)
    acc.add("negative", -0.7, 0.8, Headline("a", "A", 0.8, 5))
    again = WindowAccumulator.from_state(acc.to_state(), top_n=3)
    assert again.result(("overall", "all"), 0, 10) == acc.result(("overall", "all"), 0, 10)


def test_top_headlines_drop_syndicated_repeats() -> None:
    from monitor.aggregate.windows import top_headlines

    entries = [
        (0.99, "a", "Oil prices crash 30% https://t.co/x", 1),
        (0.98, "b", "oil prices  crash 30%", 2),
        (0.97, "c", "Refinery outage hits supply", 3),
        (0.96, "a", "Oil prices crash 30% https://t.co/x", 1),
    ]
    heads = top_headlines([entries], limit=5)
    assert [h.id for h in heads] == ["a", "c"]
