"""News headlines with entity-level sentiment (SEntFiN layout): load, split, encode, predict.

A file has a text column, a headline ``label`` (``negative`` | ``neutral`` | ``positive``, or
``mixed`` when its entities disagree) and an ``entities`` column: a JSON object, entity name as
it appears in the text -> that entity's sentiment. Single-label rows teach the sentiment head;
every row teaches the entity head, one span per entity (:mod:`monitor.classify.entities`).
Errors name the file, the 1-based row and the column.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from transformers import PreTrainedTokenizerBase

from monitor.classify.entities import locate, token_span
from monitor.classify.model import ENTITY, MultiTaskModel
from monitor.classify.text import dedup_key, normalise
from pipelines.batching import IGNORE, Encoded, collate, eval_batches
from pipelines.data import KEY, LABEL, TEXT, grouped_split, load_table
from pipelines.errors import DataError
from pipelines.labels import SENTIMENT_LABELS
from pipelines.precision import autocast

logger = logging.getLogger(__name__)

ENTITIES = "entities"
MIXED = "mixed"
# The label id of a ``mixed`` headline in a news frame (stratifies the split; never a target).
MIXED_ID = len(SENTIMENT_LABELS)
HEADLINE_LABELS: tuple[str, ...] = (*SENTIMENT_LABELS, MIXED)

Spans = tuple[tuple[int, int, int], ...]


@dataclass(frozen=True)
class NewsData:
    """A news file's cleaned train and holdout frames (columns text, label, key, entities) and
    what happened on the way (for the model card)."""

    train: pd.DataFrame
    holdout: pd.DataFrame
    stats: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EncodedNews:
    """Encoded news rows plus, per row, whether each of its entities was found in the text."""

    data: Encoded
    found: tuple[tuple[bool, ...], ...]


def parse_entities(value: object, file: str, row: int, column: str) -> list[tuple[str, int]]:
    """One ``entities`` cell as ``[(name, label id)]``. Raises DataError naming the cell."""
    try:
        parsed = json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError as exc:
        raise DataError(file, f"entities is not JSON ({exc.msg})", row=row, column=column) from exc
    if not isinstance(parsed, dict) or not parsed:
        raise DataError(
            file,
            "entities must be a non-empty JSON object {name: sentiment}",
            row=row,
            column=column,
        )
    out = []
    for name, label in parsed.items():
        key = str(label).strip().lower() if isinstance(label, str) else None
        if key not in SENTIMENT_LABELS or not str(name).strip():
            raise DataError(
                file,
                f"entity {name!r} has sentiment {label!r} (known: {', '.join(SENTIMENT_LABELS)})",
                row=row,
                column=column,
            )
        out.append((str(name).strip(), SENTIMENT_LABELS.index(key)))
    return out


def load_news(
    path: str | Path, text_col: str = TEXT, label_col: str = LABEL, entities_col: str = ENTITIES
) -> pd.DataFrame:
    """Cleaned rows of a news file: text (normalised), label id (``MIXED_ID`` for mixed), the
    dedup key and the parsed entities. Raises DataError naming file, row and column."""
    file = str(path)
    raw = load_table(path, text_col, label_col, extra_cols=(entities_col,))
    labels, entities = [], []
    for i, (label, cell) in enumerate(zip(raw[LABEL], raw[entities_col], strict=True)):
        key = str(label).strip().lower()
        if key not in HEADLINE_LABELS:
            raise DataError(
                file,
                f"unknown label {label!r} (known: {', '.join(HEADLINE_LABELS)})",
                row=i + 1,
                column=label_col,
            )
        labels.append(HEADLINE_LABELS.index(key))
        entities.append(parse_entities(cell, file, i + 1, entities_col))
    texts = [normalise(str(t)) for t in raw[TEXT]]
    frame = pd.DataFrame(
        {TEXT: texts, LABEL: labels, KEY: [dedup_key(t) for t in texts], ENTITIES: entities}
    )
    return frame[frame[TEXT].str.len() > 0].reset_index(drop=True)


def split_news(
    frame: pd.DataFrame, fraction: float, seed: int, test: pd.DataFrame | None = None
) -> NewsData:
    """One row per dedup key, then a holdout stratified by label (mixed is a stratum) and
    grouped by key; the leakage count against ``test`` is reported, nothing dropped."""
    unique = frame.drop_duplicates(subset=[KEY]).reset_index(drop=True)
    train, holdout = grouped_split(unique, fraction, seed)
    stats: dict[str, Any] = {
        "rows": len(frame),
        "duplicates_removed": len(frame) - len(unique),
        "train": len(train),
        "holdout": len(holdout),
        "train_entities": int(train[ENTITIES].map(len).sum()),
        "holdout_entities": int(holdout[ENTITIES].map(len).sum()),
    }
    if test is not None:
        stats["leakage_shared_keys"] = len(set(test[KEY]) & set(unique[KEY]))
    return NewsData(train, holdout, stats)


def encode_news(
    tokenizer: PreTrainedTokenizerBase,
    frame: pd.DataFrame,
    tasks: Sequence[str],
    max_length_tokens: int,
) -> EncodedNews:
    """Token ids, the sentiment label (``IGNORE`` for mixed rows and for every other task) and
    one span per entity found in the (truncated) text."""
    texts = frame[TEXT].tolist()
    enc = tokenizer(
        texts, truncation=True, max_length=max_length_tokens, return_offsets_mapping=True
    )
    spans: list[Spans] = []
    found: list[tuple[bool, ...]] = []
    for text, offsets, entities in zip(texts, enc["offset_mapping"], frame[ENTITIES], strict=True):
        row_spans, row_found = [], []
        for name, label in entities:
            chars = locate(text, normalise(name))
            tokens = token_span(offsets, *chars) if chars is not None else None
            row_found.append(tokens is not None)
            if tokens is not None:
                row_spans.append((tokens[0], tokens[1], int(label)))
        spans.append(tuple(row_spans))
        found.append(tuple(row_found))
    head = frame[LABEL].to_numpy()
    sentiment = np.where(head < MIXED_ID, head, IGNORE).astype(np.int64)
    labels = {t: sentiment if t == "sentiment" else np.full(len(texts), IGNORE) for t in tasks}
    ids = tuple(tuple(x) for x in enc["input_ids"])
    return EncodedNews(Encoded(ids, labels, tuple(spans)), tuple(found))


def join(first: Encoded, second: Encoded) -> Encoded:
    """``first``'s examples then ``second``'s (the same tasks); spans kept, empty where absent."""
    if set(first.labels) != set(second.labels):
        raise ValueError(f"tasks differ: {sorted(first.labels)} vs {sorted(second.labels)}")
    empty: Spans = ()
    spans = (first.spans or (empty,) * len(first)) + (second.spans or (empty,) * len(second))
    return Encoded(
        first.input_ids + second.input_ids,
        {t: np.concatenate([v, second.labels[t]]) for t, v in first.labels.items()},
        spans,
    )


def span_labels(data: Encoded) -> np.ndarray:
    """Every span's label id, in example order (the order of :func:`predict_entities`)."""
    return np.fromiter((label for row in data.spans or () for _, _, label in row), dtype=np.int64)


def collate_spans(
    data: Encoded, index: np.ndarray, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The spans of the selected examples as ``[n, 3]`` (batch row, first, end) and their
    labels ``[n]``; both empty when the examples have none."""
    rows = [(r, a, b, y) for r, i in enumerate(index) for a, b, y in (data.spans or ())[i]]
    table = torch.tensor([r[:3] for r in rows], dtype=torch.long).reshape(-1, 3)
    labels = torch.tensor([r[3] for r in rows], dtype=torch.long)
    return table.to(device), labels.to(device)


def predict_entities(
    model: MultiTaskModel,
    data: Encoded,
    *,
    batch_size: int,
    pad_id: int,
    device: torch.device,
    bf16: bool = False,
) -> np.ndarray:
    """Entity-head probabilities ``[n_spans, n_labels]`` in example order. Blocking; no grad."""
    counts = [len(row) for row in data.spans or ()]
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    out = np.zeros((int(starts[-1]), len(model.meta.labels[ENTITY])), dtype=np.float32)
    was_training = model.training
    model.eval()
    with torch.inference_mode(), autocast(device, bf16):
        for batch in eval_batches(data.lengths(), batch_size):
            index = batch[[counts[i] > 0 for i in batch]]
            if not len(index):
                continue
            inputs, _ = collate(data, index, pad_id, device)
            hidden = model.encoder(**inputs).last_hidden_state
            table, _ = collate_spans(data, index, device)
            logits = model.entity_logits(hidden, inputs["attention_mask"], table)
            probs = torch.softmax(logits.float(), dim=-1).cpu().numpy()
            where = np.concatenate([np.arange(starts[i], starts[i + 1]) for i in index])
            out[where] = probs
    model.train(was_training)
    return out
