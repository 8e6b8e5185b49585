"""A tiny random BERT (hidden 32, 2 layers) with the MiniLM tokenizer, and learnable toy data."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest

from pipelines.labels import TWITTER_TOPICS
from tests.conftest import tiny_bert

SENTIMENT_WORDS = {
    "negative": ("plunges", "crashes", "misses", "slashes", "sued"),
    "neutral": ("schedules", "files", "reports", "hosts", "holds"),
    "positive": ("soars", "beats", "raises", "surges", "rallies"),
}
TOPIC_WORDS = {0: "analyst", 4: "dividend", 5: "earnings", 11: "ipo"}


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer BERT saved with the offline MiniLM tokenizer."""
    out = tmp_path_factory.mktemp("tiny-bert")
    encoder, tokenizer = tiny_bert()
    encoder.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def toy_frames(n: int = 240, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Sentiment by verb, topic by keyword; label formats mixed (names, synonyms, ids)."""
    rng = random.Random(seed)
    sentiment, topic = [], []
    for i in range(n):
        name = rng.choice(list(SENTIMENT_WORDS))
        label: object = {"negative": "Bearish", "positive": "bullish"}.get(name, name)
        sentiment.append((f"Acme{i % 17} {rng.choice(SENTIMENT_WORDS[name])} today #{i}", label))
        topic_id = rng.choice(list(TOPIC_WORDS))
        topic.append(
            (
                f"{TOPIC_WORDS[topic_id]} news for $TCK{i % 11} number {i}",
                topic_id if i % 2 else TWITTER_TOPICS[topic_id],
            )
        )
    return {
        "sentiment": pd.DataFrame(sentiment, columns=["text", "label"]),
        "topic": pd.DataFrame(topic, columns=["text", "label"]),
    }


@pytest.fixture
def frames() -> dict[str, pd.DataFrame]:
    return toy_frames()


def toy_news(n: int = 160, seed: int = 0) -> pd.DataFrame:
    """Headlines naming one or two companies, each followed by its own verb; the pairs with
    different verbs are ``mixed``."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        first, second = f"Acme{i % 13}", f"Bolt{i % 7}"
        a, b = rng.choice(list(SENTIMENT_WORDS)), rng.choice(list(SENTIMENT_WORDS))
        if i % 3:
            verbs = rng.choice(SENTIMENT_WORDS[a]), rng.choice(SENTIMENT_WORDS[b])
            text = f"{first} {verbs[0]} as {second} {verbs[1]} #{i}"
            entities = {first: a, second: b}
            label = a if a == b else "mixed"
        else:
            text, entities, label = f"{first} {rng.choice(SENTIMENT_WORDS[a])} #{i}", {first: a}, a
        rows.append((text, json.dumps(entities), label))
    return pd.DataFrame(rows, columns=["text", "entities", "label"])


def write_news(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def news_model(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained on toy tweets and ``toy_news(240)`` (all three heads)."""
    from pipelines.train import train
    from tests.pipelines.test_train import tiny_config

    root = tmp_path_factory.mktemp("news")
    news = write_news(root / "news_train.csv", toy_news(240))
    config = tiny_config(tiny_base, news_train=str(news), epochs=6)
    result = train(config, root / "model", frames=toy_frames(), progress=False)
    assert set(result.metrics["holdout"]) == {"sentiment", "topic", "news_sentiment", "news_entity"}
    assert result.card["news_data"]["not_found"] == 0
    return result.model_dir
