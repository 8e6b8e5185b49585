"""End-to-end benchmark: the classify role on the embedded broker against the engine alone.

One process, one loaded model, the same texts. Each repeat:

1. produces ``n`` items to a fresh ``news.raw`` topic (before the role starts, so the producer
   does not share the CPU with it);
2. times the engine alone on those texts (``predict`` calls of ``max_poll_records`` texts, as
   ``finmon bench classify`` does, on a thread of its own like the role's model thread);
3. starts the classify role (:class:`monitor.daemon.Daemon`, ``role: classify``, the settings the
   daemon would read) and times it from the first scored record to the last (the scored records'
   timestamps, stamped when the worker hands them to its producer);
4. then feeds it at half that rate (half the engine's, where the role measured above the engine
   alone, which on a shared CPU it can) for ``latency_sec`` and takes each item's end-to-end
   latency: the scored record's timestamp minus the raw record's;
5. feeds it lightly (``light_rate_items_per_s``, 20, for ``light_sec``, 5 s: night volume) and
   takes the same latency with the model mostly idle;
6. times the engine alone again (the CPU is shared: before and after bracket the role).

The role runs at default settings except ``model.cache_items: 0`` (a repeat answered from the cache
measures the cache, not the path). Stage seconds come from ``finmon_classify_stage_seconds``;
the queue wait is reported per model call (its oldest item's), the other stages per item.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.record import util as kafka_crc

from monitor.broker import EmbeddedBroker
from monitor.classify.bench import load_texts
from monitor.classify.entities import entity_queries
from monitor.classify.protocol import Classifier
from monitor.daemon import Daemon, load_classifier
from monitor.ingest import kafka_io
from monitor.memory import freeze_loaded_objects
from monitor.metrics import Metrics, build_metrics
from monitor.settings import Settings, load_settings
from monitor.tickers import EMPTY_DICTIONARY

logger = logging.getLogger(__name__)

STAGES = (
    "decode",
    "tokenize",
    "forward",
    "postprocess",
    "encode",
    "produce",
    "commit",
)
TRAIN_SETS = ("twitter-financial-news/sent_train.csv", "twitter-financial-news/topic_train.csv")
POLL_INTERVAL_SEC = 0.05


@dataclass(frozen=True, slots=True, kw_only=True)
class E2EPlan:
    """What one bench run does."""

    n: int = 6000
    repeats: int = 1
    latency_sec: float = 10.0
    # Then a light feed, as at night: latency when the model is mostly idle.
    light_rate_items_per_s: float = 20.0
    light_sec: float = 5.0
    device: str = "cpu"
    phase_timeout_sec: float = 300.0
    settings_overrides: Mapping[str, Any] = field(default_factory=dict)


def bench_settings(model_dir: Path, bootstrap: str, plan: E2EPlan) -> Settings:
    """Default settings, a fresh set of topics and group, the model, ``cache_items: 0``."""
    tag = uuid.uuid4().hex[:8]
    base: dict[str, Any] = {
        "role": "classify",
        "kafka": {
            "bootstrap_servers": bootstrap,
            "raw_topic": f"bench.raw.{tag}",
            "scored_topic": f"bench.scored.{tag}",
            "dlq_topic": f"bench.dlq.{tag}",
            "classify_group": f"bench-classify-{tag}",
        },
        "model": {"path": str(model_dir), "device": plan.device, "cache_items": 0},
        "metrics": {"enabled": False},
    }
    overrides = dict(plan.settings_overrides)
    for section in ("kafka", "model"):
        base[section].update(overrides.pop(section, {}))
    base.update(overrides)
    return load_settings(None, environ={}, overrides=base)


def bench_texts(shared_data: Path | None, n: int) -> tuple[list[str], str]:
    """Training-split tweets when ``../shared/data`` is there (test sets are not tuned on)."""
    if shared_data is not None and (shared_data / TRAIN_SETS[0]).is_file():
        import csv

        texts: list[str] = []
        for name in TRAIN_SETS:
            with (shared_data / name).open(encoding="utf-8", newline="") as fh:
                texts.extend(row["text"] for row in csv.DictReader(fh))
        return [texts[i % len(texts)] for i in range(n)], "shared:" + ",".join(TRAIN_SETS)
    return load_texts(None, n)


def _message(item_id: str, text: str) -> bytes:
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    body = {"id": item_id, "headline": text, "source": "bench", "published_at": now}
    return json.dumps(body, ensure_ascii=False).encode()


def produce_all(producer: KafkaProducer, topic: str, ids: list[str], texts: list[str]) -> None:
    for item_id, text in zip(ids, texts, strict=True):
        producer.send(topic, key=item_id.encode(), value=_message(item_id, text))
    producer.flush(60)


def produce_paced(
    producer: KafkaProducer, topic: str, ids: list[str], texts: list[str], rate_per_s: float
) -> None:
    """One item every ``1 / rate_per_s`` seconds (no catching up in bursts beyond the plan)."""
    started = time.monotonic()
    for i, (item_id, text) in enumerate(zip(ids, texts, strict=True)):
        delay = started + i / rate_per_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        producer.send(topic, key=item_id.encode(), value=_message(item_id, text))
    producer.flush(60)


def read_topic(bootstrap: str, topic: str) -> list[Any]:
    """Every record of ``topic`` from the start to its current end (no group)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        parts = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])
        ]
        if not parts:
            return []
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        records: list[Any] = []
        deadline = time.monotonic() + 60
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end")
            for batch in consumer.poll(timeout_ms=500, max_records=5000).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def stage_sums(metrics: Metrics) -> dict[str, float]:
    """Seconds spent so far per stage (summed over batches)."""
    get = metrics.registry.get_sample_value
    return {s: get("finmon_classify_stage_seconds_sum", {"stage": s}) or 0.0 for s in STAGES}


def queue_wait_sums(metrics: Metrics) -> tuple[float, float]:
    """Seconds the oldest item of each model call waited, summed, and the number of calls."""
    get = metrics.registry.get_sample_value
    labels = {"stage": "queue_wait"}
    return (
        get("finmon_classify_stage_seconds_sum", labels) or 0.0,
        get("finmon_classify_stage_seconds_count", labels) or 0.0,
    )


def batch_sums(metrics: Metrics) -> tuple[float, float, float]:
    """Batches, items and padded tokens so far."""
    get = metrics.registry.get_sample_value
    return (
        get("finmon_classify_batch_size_items_count") or 0.0,
        get("finmon_classify_batch_size_items_sum") or 0.0,
        get("finmon_classify_batch_tokens_sum") or 0.0,
    )


@dataclass
class _Snapshot:
    """Counters at one moment, to take differences over a phase."""

    metrics: Metrics
    stages: dict[str, float] = field(init=False)
    batches: tuple[float, float, float] = field(init=False)
    waits: tuple[float, float] = field(init=False)
    cpu_sec: float = field(init=False)

    def __post_init__(self) -> None:
        self.stages = stage_sums(self.metrics)
        self.batches = batch_sums(self.metrics)
        self.waits = queue_wait_sums(self.metrics)
        self.cpu_sec = time.process_time()

    def since(self, earlier: _Snapshot, items: int) -> dict[str, Any]:
        n_batches, n_items, tokens = (
            a - b for a, b in zip(self.batches, earlier.batches, strict=True)
        )
        per_item = {s: 1000 * (self.stages[s] - earlier.stages[s]) / max(1, items) for s in STAGES}
        wait_sec, calls = (a - b for a, b in zip(self.waits, earlier.waits, strict=True))
        return {
            "stage_ms_per_item": {s: round(v, 3) for s, v in per_item.items() if v > 0},
            "model_calls": int(calls),
            "queue_wait_ms_per_call": round(1000 * wait_sec / calls, 1) if calls else None,
            "batches": int(n_batches),
            "mean_batch_items": round(n_items / n_batches, 1) if n_batches else 0.0,
            "padded_tokens_per_item": round(tokens / n_items, 1) if n_items else 0.0,
            "process_cpu_ms_per_item": round(1000 * (self.cpu_sec - earlier.cpu_sec) / items, 3),
        }


def time_engine(
    classifier: Classifier, texts: list[str], call_items: int, metrics: Metrics
) -> dict[str, Any]:
    """The engine alone: texts/s over ``predict`` calls of ``call_items``, and its stages.

    It runs on a thread of its own, as the role's model thread does: on a loaded machine the
    main thread ran the same calls about half as fast (docs/bench-e2e.md). With an entity head it
    scores the entities the role asks about (found before the clock starts: finding them is the
    role's Kafka-thread work).
    """

    errors: list[BaseException] = []
    wanted = bool(getattr(classifier, "scores_entities", False))
    queries = [entity_queries(t, (), EMPTY_DICTIONARY) if wanted else () for t in texts]

    def calls() -> None:
        try:
            for start in range(0, len(texts), call_items):
                end = start + call_items
                classifier.predict(texts[start:end], queries[start:end])
        except BaseException as exc:
            errors.append(exc)

    before = _Snapshot(metrics)
    started = time.perf_counter()
    thread = threading.Thread(target=calls, name="bench-engine")
    thread.start()
    thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return {"texts_per_s": len(texts) / elapsed, **_Snapshot(metrics).since(before, len(texts))}


def _scored_count(metrics: Metrics) -> float:
    """Output records acknowledged so far (scored plus dead letters).

    Only these two counters are read: collecting the whole registry every 50 ms cost the bench's
    main thread about 0.1 ms of CPU per item, counted against the role.
    """
    families = (*metrics.items_scored.collect(), *metrics.dlq_messages.collect())
    return sum(s.value for f in families for s in f.samples if s.name.endswith("_total"))


def _wait_for(done: Callable[[], bool], timeout_sec: float, failed: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + timeout_sec
    while not done():
        if failed() or time.monotonic() > deadline:
            return False
        time.sleep(POLL_INTERVAL_SEC)
    return True


def _percentile_ms(values_sec: list[float], q: float) -> float | None:
    """The ``q`` quantile in milliseconds; None without values (JSON has no NaN)."""
    ordered = sorted(values_sec)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None


def run_repeat(
    classifier: Classifier,
    metrics: Metrics,
    settings: Settings,
    texts: list[str],
    plan: E2EPlan,
) -> dict[str, Any]:
    """One engine / role / engine round on fresh topics (see the module docstring)."""
    kafka = settings.kafka
    bootstrap = kafka.bootstrap_servers
    tag = kafka.raw_topic.rsplit(".", 1)[-1]
    ids = [f"bench-{tag}-{i}" for i in range(len(texts))]
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, batch_size=256 * 1024)
    kafka_io.ensure_topics(kafka, [kafka.raw_topic, kafka.scored_topic, kafka.dlq_topic])
    produce_all(producer, kafka.raw_topic, ids, texts)
    engine_before = time_engine(classifier, texts, kafka.max_poll_records, metrics)

    daemon = Daemon.from_settings(settings, metrics=metrics, classifier=classifier)
    base = _scored_count(metrics)
    before = _Snapshot(metrics)
    daemon.start()
    try:
        complete = _wait_for(
            lambda: _scored_count(metrics) - base >= len(texts),
            plan.phase_timeout_sec,
            daemon.stop_event.is_set,
        )
        throughput_stats = _Snapshot(metrics).since(before, len(texts))
        scored = read_topic(bootstrap, kafka.scored_topic)
        # The path cannot sustain more than the engine alone: on a shared CPU the role measured
        # up to twice it (more runnable threads get more of the CPU), and half of that fed it
        # near its real limit (docs/bench-e2e.md).
        max_rate = min(_rate(scored), engine_before["texts_per_s"])
        lat_n = int(0.5 * max_rate * plan.latency_sec) if complete else 0
        lat_ids = [f"lat-{tag}-{i}" for i in range(lat_n)]
        lat_texts = [texts[i % len(texts)] for i in range(lat_n)]
        latency_stats: dict[str, Any] | None = None
        if lat_n:
            lat_before = _Snapshot(metrics)
            produce_paced(producer, kafka.raw_topic, lat_ids, lat_texts, 0.5 * max_rate)
            _wait_for(
                lambda: _scored_count(metrics) - base >= len(texts) + lat_n,
                plan.phase_timeout_sec,
                daemon.stop_event.is_set,
            )
            latency_stats = _Snapshot(metrics).since(lat_before, lat_n)
        light_n = int(plan.light_rate_items_per_s * plan.light_sec) if complete else 0
        light_ids = [f"light-{tag}-{i}" for i in range(light_n)]
        if light_n:
            light_texts = [texts[i % len(texts)] for i in range(light_n)]
            produce_paced(
                producer, kafka.raw_topic, light_ids, light_texts, plan.light_rate_items_per_s
            )
            _wait_for(
                lambda: _scored_count(metrics) - base >= len(texts) + lat_n + light_n,
                plan.phase_timeout_sec,
                daemon.stop_event.is_set,
            )
    finally:
        daemon.stop()
        producer.close()
    engine_after = time_engine(classifier, texts, kafka.max_poll_records, metrics)

    raw_ts = {r.key.decode(): r.timestamp for r in read_topic(bootstrap, kafka.raw_topic)}
    scored = read_topic(bootstrap, kafka.scored_topic)
    scored_ids = {json.loads(r.value)["id"]: r.timestamp for r in scored}
    dlq = read_topic(bootstrap, kafka.dlq_topic)
    first_phase = [r for r in scored if json.loads(r.value)["id"] in set(ids)]
    latencies = [(scored_ids[i] - raw_ts[i]) / 1000 for i in lat_ids if i in scored_ids]
    light = [(scored_ids[i] - raw_ts[i]) / 1000 for i in light_ids if i in scored_ids]
    engine_rate = statistics.mean([engine_before["texts_per_s"], engine_after["texts_per_s"]])
    e2e_rate = _rate(first_phase)
    return {
        "engine_texts_per_s": engine_rate,
        "engine_before_texts_per_s": engine_before["texts_per_s"],
        "engine_after_texts_per_s": engine_after["texts_per_s"],
        "e2e_items_per_s": e2e_rate,
        "e2e_vs_engine": e2e_rate / engine_rate,
        "all_ids_scored": set(ids) | set(lat_ids) | set(light_ids) <= set(scored_ids),
        "missing_ids": len((set(ids) | set(lat_ids) | set(light_ids)) - set(scored_ids)),
        "dead_letters": len(dlq),
        "latency_rate_items_per_s": 0.5 * max_rate,
        "latency_items": len(latencies),
        "p50_latency_ms": _percentile_ms(latencies, 0.5),
        "p99_latency_ms": _percentile_ms(latencies, 0.99),
        "light_rate_items_per_s": plan.light_rate_items_per_s,
        "light_items": len(light),
        "light_p50_latency_ms": _percentile_ms(light, 0.5),
        "light_p99_latency_ms": _percentile_ms(light, 0.99),
        "e2e": throughput_stats,
        # The same counters over the latency phase (CPU includes the paced producer's).
        "latency": latency_stats,
        "engine": engine_before,
    }


def _rate(records: list[Any]) -> float:
    """Records per second from the first record's timestamp to the last's."""
    if len(records) < 2:
        return 0.0
    stamps = [r.timestamp for r in records]
    span_ms = max(stamps) - min(stamps)
    return (len(records) - 1) * 1000 / max(1, span_ms)


def run_e2e_bench(
    model_dir: Path, *, plan: E2EPlan, shared_data: Path | None = None
) -> dict[str, Any]:
    """Start the embedded broker, run ``plan.repeats`` rounds, summarise (median and spread)."""
    import torch

    texts, source = bench_texts(shared_data, plan.n)
    metrics = build_metrics()
    load_before = os.getloadavg()
    with EmbeddedBroker() as broker:
        settings = bench_settings(model_dir, broker.bootstrap_servers, plan)
        classifier = load_classifier(settings, metrics)
        classifier.predict(texts[:64])  # warm-up
        freeze_loaded_objects()  # as `finmon run` does once the model is loaded
        runs = []
        for repeat in range(plan.repeats):
            if repeat:
                settings = bench_settings(model_dir, broker.bootstrap_servers, plan)
            runs.append(run_repeat(classifier, metrics, settings, texts, plan))
    ratios = [r["e2e_vs_engine"] for r in runs]
    return {
        "items": plan.n,
        "source": source,
        "device": plan.device,
        "torch_threads": torch.get_num_threads(),
        "precision": getattr(classifier, "precision", "?"),
        "max_batch_items": settings.model.max_batch_items,
        "crc32c": "c" if kafka_crc.crc32c_c is not None else "python",
        "repeats": plan.repeats,
        "e2e_vs_engine": statistics.median(ratios),
        "e2e_vs_engine_min": min(ratios),
        "e2e_vs_engine_max": max(ratios),
        "engine_texts_per_s": statistics.median(r["engine_texts_per_s"] for r in runs),
        "e2e_items_per_s": statistics.median(r["e2e_items_per_s"] for r in runs),
        "p50_latency_ms": _summary(runs, "p50_latency_ms", statistics.median),
        "p99_latency_ms": _summary(runs, "p99_latency_ms", max),
        "light_p50_latency_ms": _summary(runs, "light_p50_latency_ms", statistics.median),
        "light_p99_latency_ms": _summary(runs, "light_p99_latency_ms", max),
        "all_ids_scored": all(r["all_ids_scored"] for r in runs),
        "load_avg_before": [round(v, 2) for v in load_before],
        "load_avg_after": [round(v, 2) for v in os.getloadavg()],
        "runs": runs,
    }


def _summary(runs: list[dict[str, Any]], key: str, how: Callable[[list[float]], float]) -> Any:
    values = [r[key] for r in runs if r[key] is not None]
    return how(values) if values else None


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def format_e2e_report(result: dict[str, Any]) -> str:
    """A few lines for humans; ``--json`` has everything."""
    lines = [
        f"{result['items']} items from {result['source']} on {result['device']} "
        f"({result['torch_threads']} torch threads, {result['precision']}, "
        f"max_batch_items {result['max_batch_items']}), load {result['load_avg_before']}",
        f"{'run':<5}{'engine/s':>10}{'e2e/s':>10}{'ratio':>8}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'all ids':>9}",
    ]
    for i, run in enumerate(result["runs"]):
        lines.append(
            f"{i:<5}{run['engine_texts_per_s']:>10.1f}{run['e2e_items_per_s']:>10.1f}"
            f"{run['e2e_vs_engine']:>8.3f}{_ms(run['p50_latency_ms']):>9}"
            f"{_ms(run['p99_latency_ms']):>9}{run['all_ids_scored']!s:>9}"
        )
    lines.append(
        f"e2e / engine: median {result['e2e_vs_engine']:.3f} "
        f"(min {result['e2e_vs_engine_min']:.3f}, max {result['e2e_vs_engine_max']:.3f}); "
        f"p99 latency at half rate {_ms(result['p99_latency_ms'])} ms; light feed p50 / p99 "
        f"{_ms(result['light_p50_latency_ms'])} / {_ms(result['light_p99_latency_ms'])} ms"
    )
    last = result["runs"][-1]
    for name in ("e2e", "engine"):
        stats = last[name]
        stages = ", ".join(f"{k} {v:.2f}" for k, v in stats["stage_ms_per_item"].items())
        lines.append(
            f"{name:<7} ms per item: {stages}; {stats['mean_batch_items']} items/batch, "
            f"{stats['padded_tokens_per_item']} padded tokens/item, "
            f"process CPU {stats['process_cpu_ms_per_item']} ms/item"
        )
    wait = last["e2e"]["queue_wait_ms_per_call"]
    lines.append(f"e2e queue wait of each call's oldest item: {_ms(wait)} ms (saturated run)")
    return "\n".join(lines)
