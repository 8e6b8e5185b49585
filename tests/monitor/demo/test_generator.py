from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

from monitor.contract import TWITTER_TOPICS, decode_news
from monitor.demo.generator import SENTIMENTS, NewsGenerator

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_same_seed_same_stream() -> None:
    a, b = NewsGenerator(seed=3), NewsGenerator(seed=3)
    assert [a.item().headline for _ in range(50)] == [b.item().headline for _ in range(50)]


def test_messages_satisfy_the_input_contract() -> None:
    gen = NewsGenerator(seed=1)
    for _ in range(200):
        item = gen.item()
        news = decode_news(json.dumps(item.message(NOW)).encode(), NOW)
        assert news.id == item.id
        assert news.headline == item.headline
        assert news.published_at == NOW


def test_burst_is_mostly_negative_on_its_topic() -> None:
    burst = NewsGenerator(seed=2).burst("Energy | Oil", 200, negative_share=0.9)
    assert {i.topic for i in burst} == {"Energy | Oil"}
    share = sum(i.sentiment == "negative" for i in burst) / len(burst)
    assert 0.8 < share < 0.97


def test_corpus_is_balanced() -> None:
    corpus = NewsGenerator(seed=5).corpus(per_class=3)
    counts = Counter((i.topic, i.sentiment) for i in corpus)
    assert set(counts.values()) == {3}
    assert len(counts) == len(TWITTER_TOPICS) * len(SENTIMENTS)
