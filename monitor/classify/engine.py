"""The classifier the classify step calls: texts in, one Prediction per text out.

The step depends only on the :class:`~monitor.classify.protocol.Classifier` protocol.
:class:`TorchClassifier` runs an exported :mod:`monitor.classify.model` directory on CPU or
CUDA. One call:

1. normalises each text and answers repeats from a bounded :class:`PredictionCache`;
2. tokenises the rest once, and cuts texts past the model window into windows
   (:mod:`monitor.classify.longtext`);
3. sorts the windows by length and cuts them into batches under a token budget and an item count
   (:func:`monitor.classify.batcher.split_batches`), each padded only to its longest window, where
   the padding a split saves outweighs what one more forward costs (``batch_cost_tokens``);
4. runs each batch under ``torch.inference_mode`` (bf16 autocast on CUDA; on CPU fp32, bf16
   autocast or int8, see :mod:`monitor.classify.quantize`; under autocast the linear weights are
   stored in bf16 once instead of cast on every call)
   and averages window probabilities back to one prediction per text. On CPU a call's batches
   run on two forward worker threads at once (a call of one batch is halved for them), each with
   half the torch threads.

Entities: with a model that has an ``entity`` head, each text may come with the entities it is
asked about (:class:`monitor.classify.entities.EntityQuery`). Each is located in the normalised
text and scored from the same forward pass as the headline (the head reads the mention's token
vectors, batched with every other mention of the batch); a mention in several windows averages
them. An entity the text does not contain comes back with ``found`` false and no probabilities.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

import torch

from monitor.classify.batcher import padded_tokens, split_batches, spread
from monitor.classify.cache import PredictionCache
from monitor.classify.entities import EntityQuery, locate, token_span
from monitor.classify.longtext import LongTextPolicy, plan_spans, span_weights
from monitor.classify.model import ENTITY, TASKS, MultiTaskModel, load_model, read_card
from monitor.classify.quantize import Quantize, cast_linears_bf16, quantize_int8, resolve_quantize
from monitor.classify.text import normalise
from monitor.contract import EntityPrediction, Prediction
from monitor.metrics import Metrics

logger = logging.getLogger(__name__)

UNKNOWN_PROBS = {"unknown": 1.0}
NO_ENTITIES: tuple[EntityQuery, ...] = ()
# (window index, first token, end token) of one mention inside the model input of that window.
Placement = tuple[int, int, int]
# What one more forward batch costs on CPU beyond its padded tokens, in tokens (measured with
# MiniLM-L6 on 2 cores, docs/bench-e2e.md Round 7). On CUDA a small forward is launch-bound, so
# there the engine keeps the fewest batches (None).
CPU_BATCH_COST_TOKENS = 160
# On CPU the forward batches of a call run on FORWARD_WORKERS threads at once, each with its share
# of the torch threads: one forward's Python and small kernels overlap the other's, where one
# forward on all the threads waits at each kernel for the slowest. 2 x 1 thread ran 1.3 to 1.5x
# the items/s of 1 x 2 threads on 2 cores, from calls of 20 items to 256 (docs/bench-e2e.md,
# Round 8). More workers would queue on the GIL (each forward's Python holds it).
FORWARD_WORKERS = 2
# The process's torch thread count when the engine module loads (after ``model.torch_threads``
# is applied), read once: torch hands a new thread the count last set by any thread, and each
# forward worker sets its own share.
PROCESS_THREADS = torch.get_num_threads()


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
    """An exported FinMon model on one device. Not thread-safe: one thread owns it (and the
    tokenizer); on CPU it hands forward batches to its own worker threads. It owns the model it
    is given too: serving in bf16 stores the linear layers' weights in bf16."""

    def __init__(
        self,
        model: MultiTaskModel,
        tokenizer: object,
        *,
        device: torch.device,
        version: str,
        max_batch_items: int = 256,
        max_batch_tokens: int = 4096,
        max_length_tokens: int | None = None,
        metrics: Metrics | None = None,
        cache_items: int = 0,
        quantize: Quantize = "none",
        long_text: LongTextPolicy | None = None,
        batch_cost_tokens: int | None = None,
        threads: int | None = None,
    ) -> None:
        self.precision = resolve_quantize(quantize, device)
        if self.precision == "int8":
            model = quantize_int8(model)
        self._model = model.to(device).eval()
        if device.type == "cuda" or self.precision == "bf16":  # the forward runs bf16 autocast
            cast_linears_bf16(self._model)
        self._tokenizer = tokenizer
        self._device = device
        self._version = version
        self._max_batch_items = max_batch_items
        self._max_batch_tokens = max_batch_tokens
        # None: the device's default (CPU_BATCH_COST_TOKENS on CPU, the fewest batches elsewhere).
        if batch_cost_tokens is None and device.type == "cpu":
            batch_cost_tokens = CPU_BATCH_COST_TOKENS
        self._batch_cost_tokens = batch_cost_tokens
        threads = threads or PROCESS_THREADS
        self._workers = min(FORWARD_WORKERS, threads) if device.type == "cpu" else 1
        share = max(1, threads // self._workers)
        self._pool = (
            ThreadPoolExecutor(
                self._workers,
                thread_name_prefix="finmon-forward",
                initializer=torch.set_num_threads,
                initargs=(share,),
            )
            if self._workers > 1
            else None
        )
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
        max_batch_items: int = 256,
        max_length_tokens: int | None = None,
        metrics: Metrics | None = None,
        max_batch_tokens: int = 4096,
        cache_items: int = 0,
        quantize: Quantize = "none",
        long_text: LongTextPolicy | None = None,
        batch_cost_tokens: int | None = None,
        threads: int | None = None,
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
            batch_cost_tokens=batch_cost_tokens,
            threads=threads,
        )

    @property
    def version(self) -> str:
        return self._version

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def model(self) -> MultiTaskModel:
        """The served model (read-only use: sizes, heads)."""
        return self._model

    @property
    def forward_workers(self) -> int:
        """How many forward batches of one call run at once (1 on CUDA)."""
        return self._workers

    @property
    def scores_entities(self) -> bool:
        """Whether the model has an entity head (else entities come back empty)."""
        return ENTITY in self._labels

    def predict(
        self, texts: Sequence[str], entities: Sequence[Sequence[EntityQuery]] | None = None
    ) -> list[Prediction]:
        """One prediction per text, in order; ``entities[i]`` are the entities asked about text
        ``i`` (ignored without an entity head). Blocking; raises on a model failure."""
        asked = [tuple(e) for e in entities] if entities is not None else [NO_ENTITIES] * len(texts)
        if len(asked) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(asked)} entity lists")
        if not self.scores_entities:
            asked = [NO_ENTITIES] * len(texts)
        items = [(normalise(t) or t, q) for t, q in zip(texts, asked, strict=True)]
        keys = [_cache_key(text, queries) for text, queries in items]
        results: dict[str, Prediction] = {}
        misses: dict[str, tuple[str, tuple[EntityQuery, ...]]] = {}
        for key, item in zip(keys, items, strict=True):
            cached = self._cache.get(key) if key not in misses else None
            if cached is None:
                misses[key] = item
            else:
                results[key] = cached
        if self._metrics is not None and len(keys) > len(misses):
            self._metrics.cache_hits.inc(sum(1 for k in keys if k not in misses))
        fresh = self._predict_unique(list(misses.values()))
        for key, prediction in zip(misses, fresh, strict=True):
            results[key] = prediction
            self._cache.put(key, prediction)
        return [results[k] for k in keys]

    def _observe(self, stage: str, started: float) -> None:
        if self._metrics is not None:
            self._metrics.stage_seconds.labels(stage).observe(time.perf_counter() - started)

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        return [ids for ids, _ in self._tokenize_offsets(texts, offsets=False)]

    def _tokenize_offsets(
        self, texts: list[str], *, offsets: bool = True
    ) -> list[tuple[list[int], list[tuple[int, int]]]]:
        if not texts:
            return []
        encoded = self._tokenizer(  # type: ignore[operator]
            texts,
            add_special_tokens=False,
            truncation=False,
            verbose=False,
            return_offsets_mapping=offsets,
        )
        spans = encoded["offset_mapping"] if offsets else [[] for _ in texts]
        return [
            (list(ids), [tuple(o) for o in where])
            for ids, where in zip(encoded["input_ids"], spans, strict=True)
        ]

    def _segments(
        self, items: list[tuple[str, tuple[EntityQuery, ...]]]
    ) -> tuple[list[list[int]], list[list[int]], list[list[list[Placement]]]]:
        """Model inputs (specials added) per window, the window indices of each text, and where
        each asked entity sits in those windows (empty: not in the text)."""
        segments: list[list[int]] = []
        owners: list[list[int]] = []
        placements: list[list[list[Placement]]] = []
        wants_offsets = any(queries for _, queries in items)
        texts = [text for text, _ in items]
        encoded = self._tokenize_offsets(texts, offsets=wants_offsets)
        for (text, queries), (ids, offsets) in zip(items, encoded, strict=True):
            spans = plan_spans(len(ids), self._max_content_tokens, self._long_text)
            first = len(segments)
            owners.append(list(range(first, first + len(spans))))
            segments.extend(self._prefix + ids[start:end] + self._suffix for start, end in spans)
            placements.append([self._place(text, q, offsets, spans, first) for q in queries])
        return segments, owners, placements

    def _place(
        self,
        text: str,
        query: EntityQuery,
        offsets: list[tuple[int, int]],
        spans: list[tuple[int, int]],
        first_segment: int,
    ) -> list[Placement]:
        chars = locate(text, normalise(query.name))
        tokens = token_span(offsets, *chars) if chars is not None else None
        if tokens is None:
            return []
        shift = len(self._prefix)
        return [
            (first_segment + w, shift + max(tokens[0], a) - a, shift + min(tokens[1], b) - a)
            for w, (a, b) in enumerate(spans)
            if tokens[0] < b and a < tokens[1]
        ]

    def _predict_unique(self, items: list[tuple[str, tuple[EntityQuery, ...]]]) -> list[Prediction]:
        if not items:
            return []
        started = time.perf_counter()
        segments, owners, placements = self._segments(items)
        self._observe("tokenize", started)
        by_segment: dict[int, list[tuple[int, int, int]]] = {}
        flat = [p for per_text in placements for per_entity in per_text for p in per_entity]
        for n, (segment, a, b) in enumerate(flat):
            by_segment.setdefault(segment, []).append((n, a, b))
        entity_probs = torch.zeros((len(flat), len(self._labels.get(ENTITY, ()))))
        rows: list[int] = []
        parts: dict[str, list[torch.Tensor]] = {}
        batches = spread(
            split_batches(
                [len(s) for s in segments],
                self._max_batch_items,
                self._max_batch_tokens,
                self._batch_cost_tokens,
            ),
            self._workers,
        )
        inputs = [[segments[i] for i in batch] for batch in batches]
        asked = [
            [(row, n, a, b) for row, i in enumerate(batch) for n, a, b in by_segment.get(i, [])]
            for batch in batches
        ]
        for batch, asks, (values, entity) in zip(
            batches, asked, self._run(inputs, asked), strict=True
        ):
            rows.extend(batch)
            for task, chunk in values.items():
                parts.setdefault(task, []).append(chunk)
            if entity is not None:
                entity_probs[[n for _, n, _, _ in asks]] = entity
        started = time.perf_counter()
        inverse = torch.empty(len(rows), dtype=torch.long)
        inverse[torch.tensor(rows)] = torch.arange(len(rows))
        probs = {task: torch.cat(chunks)[inverse] for task, chunks in parts.items()}
        # One conversion per task; a text of one window (most) takes its row as it is, which is
        # what the weighted mean of one row gives, without torch calls per text.
        rows_of = {task: values.tolist() for task, values in probs.items()}
        entity_rows = entity_probs.tolist()
        out = []
        cursor = 0
        for owned, (_, queries), where in zip(owners, items, placements, strict=True):
            found = []
            for query, placed in zip(queries, where, strict=True):
                if len(placed) == 1:
                    mean: list[float] | None = entity_rows[cursor]
                else:
                    window = entity_probs[cursor : cursor + len(placed)]
                    mean = window.mean(dim=0).tolist() if placed else None
                cursor += len(placed)
                found.append(self._entity(query, mean))
            if len(owned) == 1:
                out.append(self._one_window(rows_of, owned[0], tuple(found)))
            else:
                out.append(self._combine(probs, owned, tuple(found)))
        self._observe("postprocess", started)
        return out

    def _entity(self, query: EntityQuery, mean: list[float] | None) -> EntityPrediction:
        if mean is None:
            return EntityPrediction(query.name, query.ticker, {}, found=False)
        probs = dict(zip(self._labels[ENTITY], mean, strict=True))
        return EntityPrediction(query.name, query.ticker, probs)

    def _one_window(
        self,
        rows_of: dict[str, list[list[float]]],
        row: int,
        entities: tuple[EntityPrediction, ...],
    ) -> Prediction:
        per_task = {
            task: dict(zip(self._labels[task], rows_of[task][row], strict=True))
            if task in rows_of
            else dict(UNKNOWN_PROBS)
            for task in TASKS
        }
        return Prediction(
            topic_probs=per_task["topic"], sentiment_probs=per_task["sentiment"], entities=entities
        )

    def _run(
        self, inputs: list[list[list[int]]], asked: list[list[tuple[int, int, int, int]]]
    ) -> list[tuple[dict[str, torch.Tensor], torch.Tensor | None]]:
        """``_forward`` of every batch, in order: on the forward workers, the most padded tokens
        first, all finished before this returns (or raises the first batch's error)."""
        if self._pool is None:
            return [self._forward(b, a) for b, a in zip(inputs, asked, strict=True)]
        work = [padded_tokens([len(s) for s in batch]) for batch in inputs]
        order = sorted(range(len(inputs)), key=lambda i: -work[i])
        futures: dict[int, Future[tuple[dict[str, torch.Tensor], torch.Tensor | None]]] = {
            i: self._pool.submit(self._forward, inputs[i], asked[i]) for i in order
        }
        wait(futures.values())
        return [futures[i].result() for i in range(len(inputs))]

    def _forward(
        self, batch: list[list[int]], asks: list[tuple[int, int, int, int]]
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """Softmax probabilities per task for one length-sorted batch, and those of the entity
        head for ``asks`` = (batch row, flat index, first token, end token); on CPU."""
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
        entity = None
        with (
            torch.inference_mode(),
            torch.autocast(device_type=self._device.type, dtype=torch.bfloat16, enabled=bf16),
        ):
            mask = attention_mask.to(self._device, non_blocking=on_cuda)
            hidden = self._model.encoder(
                input_ids=input_ids.to(self._device, non_blocking=on_cuda), attention_mask=mask
            ).last_hidden_state
            logits = self._model.logits(self._model.pool(hidden, mask))
            probs = {task: torch.softmax(v.float(), dim=-1).cpu() for task, v in logits.items()}
            if asks:
                table = torch.tensor([(r, a, b) for r, _, a, b in asks], dtype=torch.long)
                scored = self._model.entity_logits(hidden, mask, table.to(self._device))
                entity = torch.softmax(scored.float(), dim=-1).cpu()
        self._observe("forward", started)
        return probs, entity

    def _combine(
        self,
        probs: dict[str, torch.Tensor],
        owned: list[int],
        entities: tuple[EntityPrediction, ...] = (),
    ) -> Prediction:
        weights = torch.tensor(span_weights(len(owned), self._long_text))
        weights = weights / weights.sum()
        per_task = {}
        for task in TASKS:
            if task not in probs:
                per_task[task] = dict(UNKNOWN_PROBS)
                continue
            mean = (probs[task][owned] * weights.unsqueeze(-1)).sum(dim=0)
            per_task[task] = dict(zip(self._labels[task], mean.tolist(), strict=True))
        return Prediction(
            topic_probs=per_task["topic"], sentiment_probs=per_task["sentiment"], entities=entities
        )


def _cache_key(text: str, queries: tuple[EntityQuery, ...]) -> str:
    """The cache key: the normalised text, then the entities asked about it."""
    if not queries:
        return text
    return text + "\x00" + "\x1f".join(f"{q.name}\x1e{q.ticker or ''}" for q in queries)
