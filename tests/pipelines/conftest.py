"""A tiny random BERT (hidden 32, 2 layers) with the MiniLM tokenizer, and learnable toy data."""

from __future__ import annotations

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
