"""The news part of a training run: the news file's encoded rows and its two holdouts.

``news_train`` rows join the training data (sentiment label where single, entity spans always);
its grouped holdout is scored twice, as headline sentiment (``news_sentiment``, single-label rows)
and as entity sentiment (``news_entity``), and both join the selection score.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from transformers import PreTrainedTokenizerBase

from monitor.classify.model import ENTITY
from pipelines.batching import Encoded
from pipelines.config import TrainConfig
from pipelines.data import LABEL, file_sha256
from pipelines.entities import (
    MIXED_ID,
    NewsData,
    encode_news,
    load_news,
    span_labels,
    split_news,
)
from pipelines.labels import SENTIMENT_LABELS
from pipelines.loop import Holdout

logger = logging.getLogger(__name__)

NEWS_SENTIMENT = "news_sentiment"
NEWS_ENTITY = "news_entity"


@dataclass(frozen=True)
class NewsInputs:
    """Encoded news training rows (None without ``news_train``), holdouts, card stats, and
    per training row whether each of its entities was found (the entity soft targets of a
    distilled run are given per entity, :func:`pipelines.distill.span_targets`)."""

    train: Encoded | None = None
    holdouts: Mapping[str, Holdout] = field(default_factory=dict)
    stats: Mapping[str, Any] = field(default_factory=dict)
    train_found: tuple[tuple[bool, ...], ...] = ()


def load_news_split(config: TrainConfig) -> NewsData | None:
    """``config.news_train`` loaded and split (None without it); the same split every time the
    config is the same. Raises DataError."""
    if not config.news_train:
        return None
    path = config.path(config.news_train)
    frame = load_news(path, config.text_col, config.label_col, config.entities_col)
    test = None
    if config.news_test:
        test_path = config.path(config.news_test)
        test = load_news(test_path, config.text_col, config.label_col, config.entities_col)
    news = split_news(frame, config.holdout_fraction, config.seed, test)
    sha = file_sha256(path)
    return NewsData(news.train, news.holdout, {"file": str(path), "sha256": sha, **news.stats})


def news_inputs(
    config: TrainConfig,
    tokenizer: PreTrainedTokenizerBase,
    tasks: Sequence[str],
    news: NewsData | None,
) -> NewsInputs:
    """Encode a loaded news split (:func:`load_news_split`); empty without one."""
    if news is None:
        return NewsInputs()
    train = encode_news(tokenizer, news.train, tasks, config.max_length_tokens)
    held = encode_news(tokenizer, news.holdout, tasks, config.max_length_tokens)
    missing = sum(not f for row in train.found + held.found for f in row)
    stats = {**news.stats, "not_found": missing}
    logger.info("news: %s", stats)
    single = news.holdout[LABEL].to_numpy() < MIXED_ID
    headline = Encoded(
        tuple(ids for ids, keep in zip(held.data.input_ids, single, strict=True) if keep),
        {"sentiment": held.data.labels["sentiment"][single]},
    )
    holdouts = {
        NEWS_SENTIMENT: Holdout(headline, SENTIMENT_LABELS, head="sentiment"),
        NEWS_ENTITY: Holdout(
            held.data, SENTIMENT_LABELS, head=ENTITY, truth=span_labels(held.data)
        ),
    }
    return NewsInputs(train.data, holdouts, stats, train.found)
