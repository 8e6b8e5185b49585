"""The classifier the classify step calls: texts in, one Prediction per text out.

The step depends only on the :class:`Classifier` protocol. :class:`TorchClassifier` runs an
exported :mod:`monitor.classify.model` directory on CPU or CUDA; it sorts a call's texts by length
and pads each sub-batch only to its longest item.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch

from monitor.classify.model import TASKS, MultiTaskModel, load_model, read_card
from monitor.classify.text import normalise
from monitor.contract import Prediction
from monitor.metrics import Metrics

logger = logging.getLogger(__name__)

UNKNOWN_PROBS = {"unknown": 1.0}


class Classifier(Protocol):
    """Labels texts. Blocking; raises on a model failure (the caller dead-letters the batch)."""

    @property
    def version(self) -> str: ...

    def predict(self, texts: Sequence[str]) -> list[Prediction]: ...


def pick_device(name: str) -> torch.device:
    """``auto`` means CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class TorchClassifier:
    """An exported FinMon model on one device. Not thread-safe: one thread owns it."""

    def __init__(
        self,
        model: MultiTaskModel,
        tokenizer: object,
        *,
        device: torch.device,
        version: str,
        max_batch_items: int = 64,
        max_length_tokens: int | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._model = model.to(device).eval()
        self._tokenizer = tokenizer
        self._device = device
        self._version = version
        self._max_batch_items = max_batch_items
        self._max_length_tokens = max_length_tokens or model.meta.max_length_tokens
        self._metrics = metrics
        self._labels = model.meta.labels

    @classmethod
    def from_dir(
        cls, path: str | Path, *, device: str = "auto", max_batch_items: int = 64,
        max_length_tokens: int | None = None, metrics: Metrics | None = None,
    ) -> TorchClassifier:
        model, tokenizer = load_model(path)
        card = read_card(path)
        version = str(card.get("version") or model.meta.version)
        logger.info("loaded model %s (version %s) from %s", type(model.encoder).__name__, version, path)
        return cls(
            model, tokenizer, device=pick_device(device), version=version,
            max_batch_items=max_batch_items, max_length_tokens=max_length_tokens, metrics=metrics,
        )

    @property
    def version(self) -> str:
        return self._version

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        cleaned = [normalise(t) or t for t in texts]
        order = sorted(range(len(cleaned)), key=lambda i: len(cleaned[i]))
        results: list[Prediction | None] = [None] * len(cleaned)
        for start in range(0, len(order), self._max_batch_items):
            chunk = order[start : start + self._max_batch_items]
            for index, prediction in zip(chunk, self._predict_batch([cleaned[i] for i in chunk]),
                                         strict=True):
                results[index] = prediction
        return [r for r in results if r is not None]

    def _observe(self, stage: str, started: float) -> None:
        if self._metrics is not None:
            self._metrics.stage_seconds.labels(stage).observe(time.perf_counter() - started)

    def _predict_batch(self, texts: list[str]) -> list[Prediction]:
        started = time.perf_counter()
        encoded = self._tokenizer(  # type: ignore[operator]
            texts, padding="longest", truncation=True, max_length=self._max_length_tokens,
            return_tensors="pt",
        )
        self._observe("tokenize", started)
        if self._metrics is not None:
            self._metrics.batch_size.observe(len(texts))
            self._metrics.batch_tokens.observe(int(encoded["input_ids"].numel()))
        started = time.perf_counter()
        with torch.inference_mode():
            inputs = {k: v.to(self._device) for k, v in encoded.items()}
            logits = self._model(**inputs)
            probs = {task: torch.softmax(v.float(), dim=-1).cpu() for task, v in logits.items()}
        self._observe("forward", started)
        started = time.perf_counter()
        out = [self._to_prediction(probs, row) for row in range(len(texts))]
        self._observe("postprocess", started)
        return out

    def _to_prediction(self, probs: dict[str, torch.Tensor], row: int) -> Prediction:
        per_task = {}
        for task in TASKS:
            if task not in probs:
                per_task[task] = dict(UNKNOWN_PROBS)
                continue
            values = probs[task][row].tolist()
            per_task[task] = dict(zip(self._labels[task], values, strict=True))
        return Prediction(topic_probs=per_task["topic"], sentiment_probs=per_task["sentiment"])
