"""Label names of the training data and the synonyms accepted for them.

``TWITTER_TOPICS`` is the topic list of the Twitter Financial News dataset in id order (id 0 is
"Analyst Update"); the demo's synthetic news generator uses the same names.
"""

from __future__ import annotations

from collections.abc import Mapping

from monitor.contract import SENTIMENT_LABELS

TWITTER_TOPICS: tuple[str, ...] = (
    "Analyst Update",
    "Fed | Central Banks",
    "Company | Product News",
    "Treasuries | Corporate Debt",
    "Dividend",
    "Earnings",
    "Energy | Oil",
    "Financials",
    "Currencies",
    "General News | Opinion",
    "Gold | Metals | Materials",
    "IPO",
    "Legal | Regulation",
    "M&A | Investments",
    "Macro",
    "Markets",
    "Politics",
    "Personnel Change",
    "Stock Commentary",
    "Stock Movement",
)

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
