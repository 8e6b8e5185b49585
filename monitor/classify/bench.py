"""Side-by-side benchmark: this engine against ``transformers.pipeline("text-classification")``.

Both run in one process on the same normalised texts (the shared labelled sets when
``../shared/data`` is present, else the synthetic headline generator). The baseline gets a
sequence-classification model built from the exported encoder and sentiment head, with the same
pooling, so both compute the same function; its labels are compared with the engine's to prove it.
Throughput is wall-clock texts per second; latency is per call (one pipeline batch, or one
engine call over ``engine_call_items`` texts, the size of a Kafka poll). The pipeline's best batch
runs before and after the engines and counts as the mean of the two, so a load that drifts
during the bench weighs on both sides of the ratio.
"""

from __future__ import annotations

import csv
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import BertForSequenceClassification
from transformers.modeling_outputs import SequenceClassifierOutput

from monitor.classify.engine import TorchClassifier, pick_device
from monitor.classify.model import MultiTaskModel, load_model
from monitor.classify.quantize import Quantize
from monitor.classify.text import normalise

SHARED_SETS = ("twitter-financial-news/sent_valid.csv", "twitter-financial-news/topic_valid.csv")


@dataclass(frozen=True, slots=True)
class Run:
    """One configuration's figures."""

    texts_per_s: float
    p50_call_ms: float
    p99_call_ms: float
    call_items: int


def load_texts(shared_data: Path | None, n: int) -> tuple[list[str], str]:
    """``n`` normalised texts and where they came from (cycled when the source is smaller)."""
    texts: list[str] = []
    source = "synthetic"
    if shared_data is not None and (shared_data / SHARED_SETS[0]).is_file():
        for name in SHARED_SETS:
            with (shared_data / name).open(encoding="utf-8", newline="") as fh:
                texts.extend(row["text"] for row in csv.DictReader(fh))
        source = "shared:" + ",".join(SHARED_SETS)
    else:
        from monitor.demo.generator import NewsGenerator

        gen = NewsGenerator(seed=11)
        texts = [gen.item().headline for _ in range(n)]
    cleaned = [normalise(t) or t for t in texts]
    return [cleaned[i % len(cleaned)] for i in range(n)], source


class MeanPoolBertForSequenceClassification(BertForSequenceClassification):
    """``BertForSequenceClassification`` with FinMon's pooling instead of the pooler layer."""

    finmon_pooling = "mean"

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any
    ) -> SequenceClassifierOutput:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        if self.finmon_pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-6)
        return SequenceClassifierOutput(logits=self.classifier(pooled))


def baseline_model(model: MultiTaskModel) -> MeanPoolBertForSequenceClassification:
    """A Hugging Face classifier with the encoder and sentiment head of ``model``."""
    labels = model.meta.labels["sentiment"]
    config = model.encoder.config
    config.num_labels = len(labels)
    config.id2label = dict(enumerate(labels))
    config.label2id = {name: i for i, name in enumerate(labels)}
    hf = MeanPoolBertForSequenceClassification(config)  # type: ignore[arg-type]
    hf.finmon_pooling = model.meta.pooling
    hf.bert.load_state_dict(model.encoder.state_dict(), strict=False)
    hf.classifier.load_state_dict(model.heads["sentiment"].state_dict())
    return hf.eval()


def _timed_calls(call: Callable[[list[str]], object], texts: list[str], size: int) -> Run:
    latencies: list[float] = []
    started = time.perf_counter()
    for start in range(0, len(texts), size):
        t0 = time.perf_counter()
        call(texts[start : start + size])
        latencies.append((time.perf_counter() - t0) * 1000)
    total = time.perf_counter() - started
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return Run(len(texts) / total, statistics.median(ordered), p99, size)


def _labels(preds: Sequence[Any]) -> list[str]:
    return [
        max(p, key=lambda d: d["score"])["label"] if isinstance(p, list) else p["label"]
        for p in preds
    ]


def run_bench(
    model_dir: Path,
    *,
    device: str = "cpu",
    n: int = 1000,
    quantize: Quantize = "auto",
    shared_data: Path | None = None,
    max_length_tokens: int = 128,
    engine_call_items: int = 256,
) -> dict[str, Any]:
    """Time the pipeline at batch 1 and 32, the engine in fp32 and as configured, then the
    pipeline at batch 32 again: its figure is the mean of the two runs around the engines."""
    from transformers import pipeline

    texts, source = load_texts(shared_data, n)
    torch_device = pick_device(device)
    model, tokenizer = load_model(model_dir)
    pipe = pipeline(  # type: ignore[call-overload]
        "text-classification", model=baseline_model(model), tokenizer=tokenizer, device=torch_device
    )
    pipe_kwargs = {"truncation": True, "max_length": max_length_tokens}
    pipe(texts[:8], batch_size=8, **pipe_kwargs)  # warm-up
    bs1 = _timed_calls(lambda b: pipe(b, batch_size=1, **pipe_kwargs), texts, 1)
    bs32 = _timed_calls(lambda b: pipe(b, batch_size=32, **pipe_kwargs), texts, 32)
    baseline_labels = _labels(pipe(texts, batch_size=32, **pipe_kwargs))

    def engine(q: Quantize) -> TorchClassifier:
        clf = TorchClassifier.from_dir(
            model_dir, device=device, quantize=q, max_length_tokens=max_length_tokens
        )
        clf.predict(texts[:8])
        return clf

    fp32 = engine("none")
    fp32_run = _timed_calls(fp32.predict, texts, engine_call_items)
    fp32_labels = [p.sentiment for p in fp32.predict(texts)]
    tuned = engine(quantize)
    tuned_run = _timed_calls(tuned.predict, texts, engine_call_items)
    tuned_labels = [p.sentiment for p in tuned.predict(texts)]
    # The pipeline's best batch again after the engines: the two runs bracket them, so a load
    # that changes during the bench moves both sides of the ratio (as bench e2e brackets).
    bs32_after = _timed_calls(lambda b: pipe(b, batch_size=32, **pipe_kwargs), texts, 32)
    bs32_before = bs32
    bs32 = Run(
        statistics.mean([bs32_before.texts_per_s, bs32_after.texts_per_s]),
        statistics.median([bs32_before.p50_call_ms, bs32_after.p50_call_ms]),
        max(bs32_before.p99_call_ms, bs32_after.p99_call_ms),
        32,
    )
    best_pipe = max(bs1.texts_per_s, bs32.texts_per_s)
    return {
        "texts": n,
        "source": source,
        "device": str(torch_device),
        "torch_threads": torch.get_num_threads(),
        "engine_precision": tuned.precision,
        "pipeline_bs1_texts_per_s": bs1.texts_per_s,
        "pipeline_bs32_texts_per_s": bs32.texts_per_s,
        "pipeline_bs32_before_texts_per_s": bs32_before.texts_per_s,
        "pipeline_bs32_after_texts_per_s": bs32_after.texts_per_s,
        "engine_fp32_texts_per_s": fp32_run.texts_per_s,
        "engine_texts_per_s": tuned_run.texts_per_s,
        "engine_vs_best_pipeline": tuned_run.texts_per_s / best_pipe,
        "engine_fp32_vs_best_pipeline": fp32_run.texts_per_s / best_pipe,
        "baseline_vs_engine_fp32_label_agreement": _agreement(baseline_labels, fp32_labels),
        "engine_vs_fp32_label_agreement": _agreement(tuned_labels, fp32_labels),
        "runs": {
            "pipeline_bs1": asdict(bs1),
            "pipeline_bs32": asdict(bs32),
            "engine_fp32": asdict(fp32_run),
            "engine": asdict(tuned_run),
        },
    }


def compare_models(
    model_dirs: Sequence[Path],
    *,
    device: str = "cpu",
    n: int = 1000,
    quantize: Quantize = "auto",
    shared_data: Path | None = None,
    max_length_tokens: int = 128,
    engine_call_items: int = 256,
) -> dict[str, Any]:
    """Several exported models through the engine, in turn, on the same texts and settings:
    size, texts/s and per-call latency of each, its speed relative to the first model and its
    sentiment-label agreement with the first. Choose accuracy (``finmon evaluate``) or speed."""
    texts, source = load_texts(shared_data, n)
    rows: list[dict[str, Any]] = []
    first_labels: list[str] | None = None
    for path in model_dirs:
        clf = TorchClassifier.from_dir(
            path, device=device, quantize=quantize, max_length_tokens=max_length_tokens
        )
        clf.predict(texts[:8])  # warm-up
        run = _timed_calls(clf.predict, texts, engine_call_items)
        labels = [p.sentiment for p in clf.predict(texts)]
        first_labels = labels if first_labels is None else first_labels
        rows.append(
            {
                "model": str(path),
                "encoder": type(clf.model.encoder).__name__,
                "parameters": sum(p.numel() for p in clf.model.parameters()),
                "precision": clf.precision,
                "entity_head": clf.scores_entities,
                **asdict(run),
                "speed_vs_first": run.texts_per_s / rows[0]["texts_per_s"] if rows else 1.0,
                "sentiment_agreement_with_first": _agreement(labels, first_labels),
            }
        )
    return {
        "texts": n,
        "source": source,
        "device": str(pick_device(device)),
        "torch_threads": torch.get_num_threads(),
        "models": rows,
    }


def format_comparison(result: dict[str, Any]) -> str:
    """The models side by side, speed as a ratio to the first."""
    lines = [
        f"{result['texts']} texts from {result['source']} on {result['device']} "
        f"({result['torch_threads']} torch threads), engine per model",
        f"{'encoder':<14}{'params':>8}{'prec':>6}{'texts/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'speed':>7}{'agree':>7}  model",
    ]
    for row in result["models"]:
        lines.append(
            f"{row['encoder']:<14}{row['parameters'] / 1e6:>7.1f}M{row['precision']:>6}"
            f"{row['texts_per_s']:>9.1f}{row['p50_call_ms']:>9.1f}{row['p99_call_ms']:>9.1f}"
            f"{row['speed_vs_first']:>6.2f}x{row['sentiment_agreement_with_first']:>7.3f}"
            f"  {row['model']}"
        )
    return "\n".join(lines)


def _agreement(a: Sequence[str], b: Sequence[str]) -> float:
    return sum(x == y for x, y in zip(a, b, strict=True)) / max(1, len(a))


def format_report(result: dict[str, Any]) -> str:
    """A small table for humans."""
    lines = [
        f"{result['texts']} texts from {result['source']} on {result['device']} "
        f"({result['torch_threads']} torch threads)",
        f"{'config':<16}{'texts/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'per call':>10}",
    ]
    for name, run in result["runs"].items():
        lines.append(
            f"{name:<16}{run['texts_per_s']:>10.1f}{run['p50_call_ms']:>10.1f}"
            f"{run['p99_call_ms']:>10.1f}{run['call_items']:>10}"
        )
    lines += [
        f"engine ({result['engine_precision']}) / best pipeline: "
        f"{result['engine_vs_best_pipeline']:.2f}x; fp32 engine: "
        f"{result['engine_fp32_vs_best_pipeline']:.2f}x",
        f"label agreement: pipeline vs engine fp32 "
        f"{result['baseline_vs_engine_fp32_label_agreement']:.4f}, engine "
        f"{result['engine_precision']} vs fp32 {result['engine_vs_fp32_label_agreement']:.4f}",
    ]
    return "\n".join(lines)
