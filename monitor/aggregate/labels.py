"""Bounded label values: what a record on ``news.scored`` may add to the aggregator's keys.

Every key becomes a track (memory) and a label value of several metric families, and
``news.scored`` can be written by anyone with access to the topic. So topics outside the model's
label map are counted under :data:`OTHER_TOPIC`, and ticker strings that cannot be tickers are not
tracked (the ticker count is capped separately by ``aggregate.max_ticker_series``).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Collection
from pathlib import Path

from monitor.contract import MAX_TICKERS, SENTIMENT_LABELS, ScoredItem
from monitor.errors import InvalidMessage
from monitor.settings import Settings

logger = logging.getLogger(__name__)

OTHER_TOPIC = "other"
OTHER_LOG_INTERVAL_MS = 60_000
# Ids are remembered (max_tracked_ids of them) and quoted in webhooks: bound what a forger sends.
MAX_ID_CHARS = 256
MODEL_META_FILE = "finmon_model.json"  # monitor.classify.model.META_FILE, without torch
# Exchange tickers and their suffixes (BRK.B, RDS-A, 7203.T): short, no spaces or punctuation.
_TICKER = re.compile(r"[A-Z0-9][A-Z0-9.\-]{0,11}")


class TopicLabels:
    """Maps a record's topic to a bounded label: itself when known, else :data:`OTHER_TOPIC`.

    With a known label set (the model's), every other topic is ``other``. Without one, the first
    ``max_series`` distinct topics are admitted and the rest are ``other``. Topics mapped to
    ``other`` are logged at most once per :data:`OTHER_LOG_INTERVAL_MS` of the injected clock.
    """

    def __init__(self, known: Collection[str], max_series: int) -> None:
        self._fixed = bool(known)
        self._admitted: set[str] = set(known)
        self._max_series = max_series
        self._unlogged = 0
        self._next_log_ms: int | None = None

    def restore(self, topic: str) -> bool:
        """Whether a track of ``topic`` restored from a checkpoint keeps its own name."""
        if topic in self._admitted or topic == OTHER_TOPIC:
            return True
        if self._fixed or len(self._admitted) >= self._max_series:
            return False
        self._admitted.add(topic)
        return True

    def label(self, topic: str, now_ms: int) -> str:
        if topic in self._admitted or topic == OTHER_TOPIC:
            return topic
        if not self._fixed and len(self._admitted) < self._max_series:
            self._admitted.add(topic)
            return topic
        self._note_other(topic, now_ms)
        return OTHER_TOPIC

    def _note_other(self, topic: str, now_ms: int) -> None:
        self._unlogged += 1
        if self._next_log_ms is not None and now_ms < self._next_log_ms:
            return
        logger.warning(
            "%d record(s) with a topic outside the label map counted as %r (latest: %r)",
            self._unlogged,
            OTHER_TOPIC,
            topic[:80],
        )
        self._unlogged = 0
        self._next_log_ms = now_ms + OTHER_LOG_INTERVAL_MS


def check_scored(item: ScoredItem) -> ScoredItem:
    """``item`` when its values are ones the classify role writes; else InvalidMessage
    (``bad_field_type``, ``bad_number`` or ``too_many_tickers``) for the dead-letter topic."""
    if not 0 < len(item.id) <= MAX_ID_CHARS:
        raise InvalidMessage("bad_field_type", f"id of {len(item.id)} characters")
    if len(item.tickers) > MAX_TICKERS:
        raise InvalidMessage("too_many_tickers", f"{len(item.tickers)} tickers")
    for sentiment, score, prob in (item.view(), *item.entity_views.values()):
        if sentiment not in SENTIMENT_LABELS:
            raise InvalidMessage("bad_field_type", f"sentiment {sentiment[:40]!r} is not a label")
        if not (_within(prob, 0.0, 1.0) and _within(score, -1.0, 1.0)):
            raise InvalidMessage("bad_number", f"negative_prob {prob!r}, sentiment_score {score!r}")
    return item


def _within(value: float, low: float, high: float) -> bool:
    return math.isfinite(value) and low <= value <= high


def tracked_tickers(tickers: tuple[str, ...]) -> tuple[str, ...]:
    """The tickers that may open a ticker series (the classify role upper-cases them)."""
    if all(_TICKER.fullmatch(t) for t in tickers):
        return tickers
    return tuple(t for t in tickers if _TICKER.fullmatch(t))


def known_topics(settings: Settings) -> tuple[str, ...]:
    """``aggregate.topic_labels``, else the topic labels of the model at ``model.path``, else ()."""
    if settings.aggregate.topic_labels:
        return settings.aggregate.topic_labels
    meta = Path(settings.model.path) / MODEL_META_FILE if settings.model.path else None
    if meta is None or not meta.is_file():
        return ()
    try:
        labels = json.loads(meta.read_text(encoding="utf-8"))["labels"]["topic"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("no topic labels in %s (%r): topics are capped instead", meta, exc)
        return ()
    return tuple(str(t) for t in labels)
