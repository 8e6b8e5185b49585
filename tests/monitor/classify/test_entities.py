"""Entity-level sentiment through the engine: one pass per text, not-found entities reported."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from monitor.classify.engine import TorchClassifier
from monitor.classify.entities import EntityQuery, entity_queries, locate, token_span
from monitor.classify.longtext import LongTextPolicy
from monitor.tickers import TickerDictionary
from tests.conftest import build_tiny_model_dir

NAMES = TickerDictionary.from_mapping({"AAPL": ["Apple", "Apple Inc."], "TSLA": ["Tesla"]})


@pytest.fixture(scope="module")
def entity_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny-entity"), entity=True)


def test_locate_prefers_word_boundaries_and_maps_to_tokens() -> None:
    assert locate("Pineapple beats Apple", "apple") == (16, 21)
    assert locate("Acme soars", "Nvidia") is None
    offsets = [(0, 0), (0, 4), (5, 10), (0, 0)]
    assert token_span(offsets, 5, 10) == (2, 3)
    assert token_span(offsets, 20, 25) is None


def test_queries_from_cashtags_names_and_input_tickers() -> None:
    queries = entity_queries("Apple beats as $TSLA slumps", ["aapl", "MSFT"], NAMES)
    assert queries == (
        EntityQuery("Apple", "AAPL"),
        EntityQuery("$TSLA", "TSLA"),
        EntityQuery("MSFT", "MSFT"),
    )


def test_one_entity_output_per_entity_and_a_missing_one_reported(entity_model_dir: Path) -> None:
    clf = TorchClassifier.from_dir(entity_model_dir, device="cpu", quantize="none")
    asked = [EntityQuery("Apple", "AAPL"), EntityQuery("Tesla", "TSLA"), EntityQuery("Nvidia")]
    (prediction,) = clf.predict(["Apple beats estimates as Tesla slumps"], [asked])
    assert [e.name for e in prediction.entities] == ["Apple", "Tesla", "Nvidia"]
    apple, tesla, nvidia = prediction.entities
    assert apple.found and tesla.found and sum(apple.sentiment_probs.values()) == pytest.approx(1)
    assert apple.sentiment_probs != tesla.sentiment_probs  # each read from its own mention
    assert not nvidia.found and nvidia.sentiment is None and nvidia.sentiment_probs == {}


def test_entities_do_not_change_the_headline_and_batch_like_one_by_one(
    entity_model_dir: Path,
) -> None:
    clf = TorchClassifier.from_dir(entity_model_dir, device="cpu", quantize="none")
    texts = ["Apple beats as Tesla slumps", "Tesla recalls cars", "Fed holds rates"]
    asked = [[EntityQuery("Apple"), EntityQuery("Tesla")], [EntityQuery("Tesla")], []]
    together = clf.predict(texts, asked)
    plain = clf.predict(texts)
    for both, alone, text, queries in zip(together, plain, texts, asked, strict=True):
        assert both.sentiment_probs == pytest.approx(alone.sentiment_probs, abs=1e-5)
        (single,) = clf.predict([text], [queries])
        for a, b in zip(both.entities, single.entities, strict=True):
            assert a.sentiment_probs == pytest.approx(b.sentiment_probs, abs=1e-5)
    assert plain[0].entities == ()


def test_a_mention_in_a_later_window_of_a_long_text_is_scored(entity_model_dir: Path) -> None:
    clf = TorchClassifier.from_dir(
        entity_model_dir,
        device="cpu",
        quantize="none",
        max_length_tokens=16,
        long_text=LongTextPolicy(max_chunks=8, overlap_tokens=2),
    )
    text = "Markets " + "were calm today and " * 6 + "Tesla slumps"
    (prediction,) = clf.predict([text], [[EntityQuery("Tesla")]])
    assert prediction.entities[0].found
    assert sum(prediction.entities[0].sentiment_probs.values()) == pytest.approx(1)


def test_a_model_without_entity_head_returns_no_entities(tiny_model_dir: Path) -> None:
    clf = TorchClassifier.from_dir(tiny_model_dir, device="cpu")
    assert not clf.scores_entities
    (prediction,) = clf.predict(["Apple beats"], [[EntityQuery("Apple")]])
    assert prediction.entities == ()


def test_entity_head_reads_twice_the_hidden_size(entity_model_dir: Path) -> None:
    from monitor.classify.model import ENTITY, load_model

    model, _ = load_model(entity_model_dir)
    hidden = int(model.encoder.config.hidden_size)
    assert model.heads[ENTITY].in_features == 2 * hidden
    logits = model.entity_logits(
        torch.randn(2, 5, hidden), torch.ones(2, 5), torch.tensor([[0, 1, 3], [1, 2, 3]])
    )
    assert logits.shape == (2, 3)
