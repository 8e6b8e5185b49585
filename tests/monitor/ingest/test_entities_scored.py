"""news.scored carries one entity output per entity, from tickers, cashtags and names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from monitor.classify.engine import TorchClassifier
from monitor.classify.protocol import Classifier
from monitor.contract import decode_scored
from monitor.ingest.classify_step import Topics, classify_records
from monitor.tickers import TickerDictionary
from tests.conftest import build_tiny_model_dir
from tests.kafka_helpers import news
from tests.keyword_classifier import KeywordClassifier
from tests.monitor.ingest.test_classify_step import Rec

TOPICS = Topics(scored="out", dlq="dlq")
NAMES = TickerDictionary.from_mapping({"AAPL": ["Apple", "Apple Inc."], "TSLA": ["Tesla"]})
HEADLINE = "Apple beats estimates as Tesla slumps"


def scored(classifier: Classifier, payload: bytes) -> dict[str, Any]:
    [out] = classify_records([Rec(payload)], classifier, TOPICS, names=NAMES)
    assert out.topic == "out"
    return json.loads(out.value)


def test_two_opposite_entities_give_one_output_each() -> None:
    body = scored(KeywordClassifier(), news(1, headline=HEADLINE, tickers=["AAPL"]))
    entities = body["entities"]
    assert [(e["name"], e["ticker"], e["sentiment"]) for e in entities] == [
        ("Apple", "AAPL", "positive"),
        ("Tesla", "TSLA", "negative"),
    ]
    keys = {"name", "ticker", "sentiment", "sentiment_probs", "found"}
    assert all(set(e) == keys for e in entities)
    item = decode_scored(json.dumps(body).encode())
    assert item.tickers == ("AAPL", "TSLA")
    assert item.view("AAPL")[0] == "positive" and item.view("TSLA")[0] == "negative"


def test_an_input_ticker_the_text_does_not_name_is_reported_not_scored() -> None:
    body = scored(KeywordClassifier(), news(2, headline="Tesla slumps", tickers=["NVDA"]))
    entities = {e["ticker"]: e for e in body["entities"]}
    assert entities["NVDA"]["found"] is False
    assert entities["NVDA"]["sentiment"] is None and entities["NVDA"]["sentiment_probs"] == {}
    item = decode_scored(json.dumps(body).encode())
    assert "NVDA" not in item.entity_views  # its window counts the headline's sentiment
    assert item.view("NVDA") == (item.sentiment, item.sentiment_score, item.negative_prob)


@pytest.fixture(scope="module")
def entity_clf(tmp_path_factory: pytest.TempPathFactory) -> TorchClassifier:
    path: Path = build_tiny_model_dir(tmp_path_factory.mktemp("tiny-entity"), entity=True)
    return TorchClassifier.from_dir(path, device="cpu", quantize="none")


def test_the_engine_scores_every_entity_of_the_headline(entity_clf: TorchClassifier) -> None:
    body = scored(entity_clf, news(3, headline=HEADLINE + " (NASDAQ:TLRY)", tickers=["MSFT"]))
    entities = body["entities"]
    assert [e["ticker"] for e in entities] == ["AAPL", "TSLA", "TLRY", "MSFT"]
    found = [e["found"] for e in entities]
    assert found == [True, True, True, False]
    for entity in entities[:3]:
        assert sum(entity["sentiment_probs"].values()) == pytest.approx(1, abs=1e-4)
