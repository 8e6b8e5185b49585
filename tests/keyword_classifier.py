"""A deterministic in-memory Classifier for pipeline tests that need predictable labels.

It implements the same protocol as TorchClassifier with a fixed keyword rule, so tests about
windows and alerts do not depend on what a randomly initialised model happens to predict.
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor.contract import Prediction

NEGATIVE_WORDS = ("plunge", "crash", "tumble", "sued", "fraud")
TOPIC_WORDS = {"oil": "Energy | Oil", "earnings": "Earnings", "fed": "Fed | Central Banks"}
TOPICS = ("Energy | Oil", "Earnings", "Fed | Central Banks", "Markets")


class KeywordClassifier:
    version = "keyword-test"

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        return [self._one(t.lower()) for t in texts]

    def _one(self, text: str) -> Prediction:
        topic = next((t for w, t in TOPIC_WORDS.items() if w in text), "Markets")
        negative = any(w in text for w in NEGATIVE_WORDS)
        sentiment = (
            {"negative": 0.9, "neutral": 0.05, "positive": 0.05}
            if negative
            else {"negative": 0.05, "neutral": 0.9, "positive": 0.05}
        )
        return Prediction({t: 0.97 if t == topic else 0.01 for t in TOPICS}, sentiment)
