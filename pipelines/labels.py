"""Label names of the training data and the synonyms accepted for them.

``TWITTER_TOPICS`` (defined with the output contract, ``monitor.contract``) is the topic list of
the Twitter Financial News dataset in id order (id 0 is "Analyst Update").
"""

from __future__ import annotations

from collections.abc import Mapping

from monitor.contract import SENTIMENT_LABELS, TWITTER_TOPICS

# Ids in the twitter sentiment files: 0 Bearish, 1 Bullish, 2 Neutral.
TWITTER_SENTIMENT_IDS: tuple[str, ...] = ("negative", "positive", "neutral")

SENTIMENT_SYNONYMS: Mapping[str, str] = {
    "negative": "negative",
    "bearish": "negative",
    "neg": "negative",
    "positive": "positive",
    "bullish": "positive",
    "pos": "positive",
    "neutral": "neutral",
    "neu": "neutral",
}

__all__ = ["SENTIMENT_LABELS", "SENTIMENT_SYNONYMS", "TWITTER_SENTIMENT_IDS", "TWITTER_TOPICS"]
