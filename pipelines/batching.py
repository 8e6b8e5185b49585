"""Tokenised examples and length-bucketed, dynamically padded batches for multi-task training.

Each example carries a label id per task, or ``IGNORE`` when it has no label for that task (no
tweet has both labels), so the loss can be masked per task.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

IGNORE = -100
BUCKET_BATCHES = 50


@dataclass(frozen=True)
class Encoded:
    """Token ids (unpadded) and per-task labels, aligned by index; with entity mentions,
    ``spans[i]`` holds example ``i``'s ``(first token, end token, label id)`` triples
    (:mod:`pipelines.entities`), empty for a text without any."""

    input_ids: tuple[tuple[int, ...], ...]
    labels: Mapping[str, np.ndarray]
    spans: tuple[tuple[tuple[int, int, int], ...], ...] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)

    def lengths(self) -> np.ndarray:
        return np.fromiter((len(ids) for ids in self.input_ids), dtype=np.int64, count=len(self))


def encode(
    tokenizer: PreTrainedTokenizerBase,
    parts: Mapping[str, tuple[Sequence[str], np.ndarray]],
    tasks: Sequence[str],
    max_length_tokens: int,
) -> Encoded:
    """Tokenise each task's texts and stack them, with IGNORE for the tasks a text lacks."""
    ids: list[tuple[int, ...]] = []
    labels: dict[str, list[np.ndarray]] = {t: [] for t in tasks}
    for task, (texts, task_labels) in parts.items():
        if not len(texts):
            continue
        ids.extend(token_ids(tokenizer, texts, max_length_tokens))
        for other in tasks:
            fill = task_labels if other == task else np.full(len(texts), IGNORE)
            labels[other].append(np.asarray(fill, dtype=np.int64))
    stacked = {
        t: np.concatenate(v) if v else np.zeros(0, dtype=np.int64) for t, v in labels.items()
    }
    return Encoded(tuple(ids), stacked)


def token_ids(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length_tokens: int
) -> list[tuple[int, ...]]:
    """Token ids of each text, truncated to ``max_length_tokens`` (no padding)."""
    if not len(texts):
        return []
    enc = tokenizer(list(texts), truncation=True, max_length=max_length_tokens)
    return [tuple(x) for x in enc["input_ids"]]


def epoch_batches(lengths: np.ndarray, batch_size: int, seed: int) -> list[np.ndarray]:
    """One epoch's batches of example indices, similar lengths together, in random order.

    Indices are shuffled, cut into chunks of ``BUCKET_BATCHES`` batches, sorted by length in each
    chunk and cut into batches; the batch order is shuffled again. Deterministic in ``seed``.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    chunk = batch_size * BUCKET_BATCHES
    batches: list[np.ndarray] = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def eval_batches(lengths: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Batches sorted by length for inference (callers scatter results back by index)."""
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def collate(
    data: Encoded, index: np.ndarray, pad_id: int, device: torch.device
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Pad the selected examples to the longest one; returns (model inputs, task labels)."""
    rows = [data.input_ids[i] for i in index]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    inputs = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
    labels = {
        t: torch.as_tensor(v[index], dtype=torch.long).to(device) for t, v in data.labels.items()
    }
    return inputs, labels
