"""A deterministic in-memory Classifier for pipeline tests that need predictable labels.

It implements the same protocol as TorchClassifier with a fixed keyword rule, so tests about
windows and alerts do not depend on what a randomly initialised model happens to predict.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from monitor.classify.entities import EntityQuery
from monitor.contract import EntityPrediction, Prediction

NEGATIVE_WORDS = ("plunge", "crash", "tumble", "sued", "fraud", "slump")
POSITIVE_WORDS = ("beat", "soar", "surge", "rall")
TOPIC_WORDS = {"oil": "Energy | Oil", "earnings": "Earnings", "fed": "Fed | Central Banks"}
TOPICS = ("Energy | Oil", "Earnings", "Fed | Central Banks", "Markets")


class KeywordClassifier:
    version = "keyword-test"

    def predict(
        self, texts: Sequence[str], entities: Sequence[Sequence[EntityQuery]] | None = None
    ) -> list[Prediction]:
        asked = entities if entities is not None else [()] * len(texts)
        return [
            replace(self._one(t.lower()), entities=tuple(self._entity(t, q) for q in queries))
            for t, queries in zip(texts, asked, strict=True)
        ]

    def _entity(self, text: str, query: EntityQuery) -> EntityPrediction:
        """The keyword rule on the clause (split at ' as ', ',' and ';') naming the entity."""
        clauses = re.split(r" as |,|;", text.lower())
        clause = next((c for c in clauses if query.name.lower() in c), None)
        if clause is None:
            return EntityPrediction(query.name, query.ticker, {}, found=False)
        label = (
            "negative"
            if any(w in clause for w in NEGATIVE_WORDS)
            else "positive"
            if any(w in clause for w in POSITIVE_WORDS)
            else "neutral"
        )
        probs = {k: 0.9 if k == label else 0.05 for k in ("negative", "neutral", "positive")}
        return EntityPrediction(query.name, query.ticker, probs)

    def _one(self, text: str) -> Prediction:
        topic = next((t for w, t in TOPIC_WORDS.items() if w in text), "Markets")
        negative = any(w in text for w in NEGATIVE_WORDS)
        sentiment = (
            {"negative": 0.9, "neutral": 0.05, "positive": 0.05}
            if negative
            else {"negative": 0.05, "neutral": 0.9, "positive": 0.05}
        )
        return Prediction({t: 0.97 if t == topic else 0.01 for t in TOPICS}, sentiment)
