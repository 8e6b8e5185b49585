"""Bisecting a failing batch, and telling a bad item from a dead model."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from monitor.classify.entities import EntityQuery
from monitor.classify.isolate import ModelUnavailable, isolate, predict_isolating
from monitor.classify.text import make_safe
from monitor.contract import Prediction
from tests.keyword_classifier import KeywordClassifier


class Counting(KeywordClassifier):
    """Fails any batch holding 'poison'; fails everything once ``dead``."""

    def __init__(self) -> None:
        self.calls = 0
        self.dead = False

    def predict(
        self, texts: Sequence[str], entities: Sequence[Sequence[EntityQuery]] | None = None
    ) -> list[Prediction]:
        self.calls += 1
        if self.dead or any("poison" in t for t in texts):
            raise RuntimeError("cuda error" if self.dead else "bad item")
        return super().predict(texts)


def test_one_bad_item_in_64_costs_about_2_log2_calls_and_the_rest_are_scored() -> None:
    model = Counting()
    texts = [f"item {i}" for i in range(64)]
    texts[37] = "poison"
    results = predict_isolating(model, texts)
    assert [i for i, r in enumerate(results) if isinstance(r, Exception)] == [37]
    assert all(isinstance(r, Prediction) for i, r in enumerate(results) if i != 37)
    assert model.calls <= 1 + 2 * 6 + 1  # the batch, two halves per level, the probe


def test_several_bad_items_are_all_isolated() -> None:
    texts = ["poison" if i % 7 == 0 else f"ok {i}" for i in range(30)]
    results = predict_isolating(Counting(), texts)
    bad = {i for i, r in enumerate(results) if isinstance(r, Exception)}
    assert bad == {i for i in range(30) if i % 7 == 0}


def test_a_dead_model_raises_model_unavailable_instead_of_dead_letters() -> None:
    model = Counting()
    model.dead = True
    with pytest.raises(ModelUnavailable, match="not a bad message"):
        predict_isolating(model, ["a", "b", "c"])


def test_wrong_result_count_counts_as_a_failure() -> None:
    results = isolate(lambda xs: [1] * (len(xs) + 1), ["a", "b"])
    assert all(isinstance(r, ValueError) for r in results)


def test_make_safe_replaces_lone_surrogates_only() -> None:
    text, count = make_safe("ok \ud800 \U0001f600 \udfff end")
    assert count == 2
    assert text == "ok \ufffd \U0001f600 \ufffd end"
    text.encode("utf-8")
