from __future__ import annotations

from monitor.contract import TWITTER_TOPICS
from monitor.demo.generator import SENTIMENTS
from pipelines.demo import demo_frames


def test_demo_frames_split_the_synthetic_corpus_between_tasks() -> None:
    frames = demo_frames(per_class=4)
    assert set(frames) == {"sentiment", "topic"}
    assert set(frames["sentiment"]["label"]) == set(SENTIMENTS)
    assert set(frames["topic"]["label"]) == set(TWITTER_TOPICS)
    texts = set(frames["sentiment"]["text"]) & set(frames["topic"]["text"])
    assert len(texts) < 0.1 * len(frames["topic"]), "each text should carry one task's label"
