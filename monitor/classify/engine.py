"""The classifier the classify step calls: texts in, one Prediction per text out.

The step depends only on the :class:`Classifier` protocol. :class:`TorchClassifier` runs an
exported :mod:`monitor.classify.model` directory on CPU or CUDA. One call:

1. normalises each text and answers repeats from a bounded :class:`PredictionCache`;
2. tokenises the rest once, and cuts texts past the model window into windows
   (:mod:`monitor.classify.longtext`);
3. sorts the windows by length and packs them into batches under a token budget and an item count
   (:func:`monitor.classify.batcher.split_batches`), each padded only to its longest window;
4. runs each batch under ``torch.inference_mode`` (bf16 autocast on CUDA; on CPU fp32, bf16
   autocast or int8, see :mod:`monitor.classify.quantize`)
   and averages window probabilities back to one prediction per text.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch

from monitor.classify.batcher import split_batches
from monitor.classify.cache import PredictionCache
from monitor.classify.longtext import LongTextPolicy, plan_spans, span_weights
from monitor.classify.model import TASKS, MultiTaskModel, load_model, read_card
from monitor.classify.quantize import Quantize, quantize_int8, resolve_quantize
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


def _special_affixes(tokenizer: object) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after a text (``[CLS]``, ``[SEP]``)."""
    probe = "a"
    bare = list(tokenizer(probe, add_special_tokens=False)["input_ids"])  # type: ignore[operator]
    full = list(tokenizer(probe, add_special_tokens=True)["input_ids"])  # type: ignore[operator]
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return full[:start], full[start + len(bare) :]
    raise ValueError("tokenizer special tokens do not wrap the text; cannot window long texts")


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
        max_batch_tokens: int = 8192,
        max_length_tokens: int | None = None,
        metrics: Metrics | None = None,
        cache_items: int = 0,
        quantize: Quantize = "none",
        long_text: LongTextPolicy | None = None,
    ) -> None:
        self.precision = resolve_quantize(quantize, device)
        if self.precision == "int8":
            model = quantize_int8(model)
        self._model = model.to(device).eval()
        self._tokenizer = tokenizer
        self._device = device
        self._version = version
        self._max_batch_items = max_batch_items
        self._max_batch_tokens = max_batch_tokens
        self._max_length_tokens = max_length_tokens or model.meta.max_length_tokens
        self._prefix, self._suffix = _special_affixes(tokenizer)
        specials = len(self._prefix) + len(self._suffix)
        self._max_content_tokens = max(1, self._max_length_tokens - specials)
        self._pad_id = int(getattr(tokenizer, "pad_token_id", None) or 0)
        self._metrics = metrics
        self._cache = PredictionCache(cache_items)
        self._long_text = long_text or LongTextPolicy()
        self._labels = model.meta.labels

    @classmethod
    def from_dir(
        cls,
        path: str | Path,
        *,
        device: str = "auto",
        max_batch_items: int = 64,
        max_length_tokens: int | None = None,
        metrics: Metrics | None = None,
        max_batch_tokens: int = 8192,
        cache_items: int = 0,
        quantize: Quantize = "none",
        long_text: LongTextPolicy | None = None,
    ) -> TorchClassifier:
        model, tokenizer = load_model(path)
        card = read_card(path)
        version = str(card.get("version") or model.meta.version)
        logger.info(
            "loaded model %s (version %s) from %s", type(model.encoder).__name__, version, path
        )
        return cls(
            model,
            tokenizer,
            device=pick_device(device),
            version=version,
            max_batch_items=max_batch_items,
            max_batch_tokens=max_batch_tokens,
            max_length_tokens=max_length_tokens,
            metrics=metrics,
            cache_items=cache_items,
            quantize=quantize,
            long_text=long_text,
        )

    @property
    def version(self) -> str:
        return self._version

    @property
    def device(self) -> torch.device:
        return self._device

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Padded length each text will occupy in a batch (window-capped, specials included)."""
        ids = self._tokenize([normalise(t) or t for t in texts])
        specials = self._max_length_tokens - self._max_content_tokens
        return [min(len(i), self._max_content_tokens) + specials for i in ids]

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """One prediction per text, in order. Blocking; raises on a model failure."""
        keys = [normalise(t) or t for t in texts]
        results: dict[str, Prediction] = {}
        misses: list[str] = []
        for key in dict.fromkeys(keys):
            cached = self._cache.get(key)
            if cached is None:
                misses.append(key)
            else:
                results[key] = cached
        if self._metrics is not None and len(keys) > len(misses):
            self._metrics.cache_hits.inc(sum(1 for k in keys if k not in misses))
        for key, prediction in zip(misses, self._predict_unique(misses), strict=True):
            results[key] = prediction
            self._cache.put(key, prediction)
        return [results[k] for k in keys]

    def _observe(self, stage: str, started: float) -> None:
        if self._metrics is not None:
            self._metrics.stage_seconds.labels(stage).observe(time.perf_counter() - started)

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        encoded = self._tokenizer(  # type: ignore[operator]
            texts, add_special_tokens=False, truncation=False, verbose=False
        )
        return [list(ids) for ids in encoded["input_ids"]]

    def _segments(self, texts: list[str]) -> tuple[list[list[int]], list[list[int]]]:
        """Model inputs (specials added) per window, and the window indices of each text."""
        segments: list[list[int]] = []
        owners: list[list[int]] = []
        for ids in self._tokenize(texts):
            spans = plan_spans(len(ids), self._max_content_tokens, self._long_text)
            owners.append(list(range(len(segments), len(segments) + len(spans))))
            segments.extend(self._prefix + ids[start:end] + self._suffix for start, end in spans)
        return segments, owners

    def _predict_unique(self, texts: list[str]) -> list[Prediction]:
        if not texts:
            return []
        started = time.perf_counter()
        segments, owners = self._segments(texts)
        self._observe("tokenize", started)
        probs: dict[str, torch.Tensor] = {}
        rows: list[int] = []
        parts: dict[str, list[torch.Tensor]] = {}
        for batch in split_batches(
            [len(s) for s in segments], self._max_batch_items, self._max_batch_tokens
        ):
            rows.extend(batch)
            for task, values in self._forward([segments[i] for i in batch]).items():
                parts.setdefault(task, []).append(values)
        started = time.perf_counter()
        inverse = torch.empty(len(rows), dtype=torch.long)
        inverse[torch.tensor(rows)] = torch.arange(len(rows))
        probs = {task: torch.cat(chunks)[inverse] for task, chunks in parts.items()}
        out = [self._combine(probs, owned) for owned in owners]
        self._observe("postprocess", started)
        return out

    def _forward(self, batch: list[list[int]]) -> dict[str, torch.Tensor]:
        """Softmax probabilities per task for one length-sorted batch, on CPU."""
        started = time.perf_counter()
        longest = max(len(s) for s in batch)
        input_ids = torch.full((len(batch), longest), self._pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), longest), dtype=torch.long)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, : len(ids)] = 1
        if self._metrics is not None:
            self._metrics.batch_size.observe(len(batch))
            self._metrics.batch_tokens.observe(longest * len(batch))
        on_cuda = self._device.type == "cuda"
        bf16 = on_cuda or self.precision == "bf16"
        with (
            torch.inference_mode(),
            torch.autocast(device_type=self._device.type, dtype=torch.bfloat16, enabled=bf16),
        ):
            logits = self._model(
                input_ids=input_ids.to(self._device, non_blocking=on_cuda),
                attention_mask=attention_mask.to(self._device, non_blocking=on_cuda),
            )
            probs = {task: torch.softmax(v.float(), dim=-1).cpu() for task, v in logits.items()}
        self._observe("forward", started)
        return probs

    def _combine(self, probs: dict[str, torch.Tensor], owned: list[int]) -> Prediction:
        weights = torch.tensor(span_weights(len(owned), self._long_text))
        weights = weights / weights.sum()
        per_task = {}
        for task in TASKS:
            if task not in probs:
                per_task[task] = dict(UNKNOWN_PROBS)
                continue
            mean = (probs[task][owned] * weights.unsqueeze(-1)).sum(dim=0)
            per_task[task] = dict(zip(self._labels[task], mean.tolist(), strict=True))
        return Prediction(topic_probs=per_task["topic"], sentiment_probs=per_task["sentiment"])
