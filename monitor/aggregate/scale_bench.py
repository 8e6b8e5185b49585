"""``finmon bench aggregate``: the partitioned aggregator's costs, measured side by side.

* Items/s of the single stage (:class:`~monitor.aggregate.engine.Aggregator`) and of the two
  stages (stage one on every source partition, bundles encoded and decoded, stage two) on the
  same simulated stream, in one process, with stage two's share of the time: the part that does
  not divide among aggregators.
* Restore time of the state a partitioned aggregator holds after 1 and 7 days of that stream:
  every checkpoint (one per window) is produced to real changelog topics on an embedded broker,
  then all partitions are restored cold (from the log) and warm (from the SQLite cache). The
  first ``REAL_WINDOWS`` windows run through both stages; each later window's checkpoint is the
  last real one again (the same keys and bytes: every key is rewritten each window once the
  stream has reached all of them), so a week of log is written in minutes, not hours.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from monitor.aggregate.changelog import PartitionState, Restorer, StateCache
from monitor.aggregate.engine import Aggregator
from monitor.aggregate.stages import Bundle, FirstStage, SecondStage
from monitor.aggregate.store import MemoryStateStore
from monitor.contract import ScoredItem
from monitor.settings import AggregateSettings

DAY_MS = 86_400_000
TOPICS = ("Earnings", "Macro", "M&A | Investments", "Legal | Regulation")
TICKERS = tuple(f"T{i:02d}" for i in range(20))
PARTITIONS = 3
REAL_WINDOWS = 120  # windows run through the stages; later checkpoints repeat the last one
_Record = tuple[str, int, bytes, bytes | None]  # topic, partition, key, value (None: deleted)


@dataclass(frozen=True)
class StreamSpec:
    items_per_minute: int = 24  # over all topics
    seed: int = 7


def simulate(days: float, spec: StreamSpec, t0_ms: int) -> list[ScoredItem]:
    """A stream of ``days`` of scored items, in event-time order."""
    rng = random.Random(spec.seed)
    minutes = int(days * 1440)
    items = []
    for m in range(minutes):
        for i in range(spec.items_per_minute):
            at_ms = t0_ms + m * 60_000 + i * 60_000 // spec.items_per_minute
            negative = rng.random() < 0.2
            prob = 0.9 if negative else 0.05
            tickers = (rng.choice(TICKERS),) if rng.random() < 0.5 else ()
            at = datetime.fromtimestamp(at_ms / 1000, UTC)
            items.append(
                ScoredItem(
                    id=f"b-{m}-{i}",
                    headline=f"story {m} {i} {rng.random():.6f}",
                    topic=rng.choice(TOPICS),
                    sentiment="negative" if negative else "neutral",
                    sentiment_score=-prob if negative else 0.0,
                    negative_prob=prob,
                    published_at=at,
                    ingested_at=at,
                    tickers=tickers,
                )
            )
    return items


def _source(item: ScoredItem) -> int:
    return zlib.crc32(item.topic.encode()) % PARTITIONS


def run_single(items: list[ScoredItem], settings: AggregateSettings, now_ms: int) -> float:
    agg = Aggregator(settings, topics=TOPICS, store=MemoryStateStore())
    started = time.perf_counter()
    for n, item in enumerate(items):
        agg.add(item, now_ms)
        if n % 500 == 0:
            agg.advance(now_ms)
            agg.checkpoint()
    agg.advance(now_ms)
    return time.perf_counter() - started


class _TwoStage:
    """Both stages in one process; checkpoints optionally written to a producer."""

    def __init__(self, settings: AggregateSettings) -> None:
        self.ones = [
            FirstStage(PartitionState(TopicPartition("first", p)), settings, topics=TOPICS)
            for p in range(PARTITIONS)
        ]
        self.twos = [
            SecondStage(PartitionState(TopicPartition("second", p)), settings, topics=TOPICS)
            for p in range(PARTITIONS)
        ]
        self.first_sec = self.second_sec = 0.0

    def add(self, item: ScoredItem, now_ms: int) -> None:
        self.ones[_source(item)].add(item, now_ms)

    def cycle(self, offset: int, now_ms: int) -> None:
        started = time.perf_counter()
        bundles = []
        for one in self.ones:
            one.cut(offset, PARTITIONS)
            bundles += one.outgoing()
            one.sent()
        middle = time.perf_counter()
        for dest, raw in bundles:
            self.twos[dest].apply(Bundle.decode(raw, 5), now_ms)
        for two in self.twos:
            two.advance(now_ms)
            two.checkpoint()
        self.first_sec += middle - started
        self.second_sec += time.perf_counter() - middle

    def states(self) -> list[PartitionState]:
        return [s.state for s in self.ones] + [s.state for s in self.twos]


def run_two_stage(
    items: list[ScoredItem], settings: AggregateSettings, now_ms: int
) -> tuple[float, float]:
    """Seconds in total, and in stage two (a cycle and checkpoint every 500 items, as
    run_single)."""
    pipeline = _TwoStage(settings)
    started = time.perf_counter()
    for n, item in enumerate(items):
        pipeline.add(item, now_ms)
        if n % 500 == 0:
            pipeline.cycle(n, now_ms)
    pipeline.cycle(len(items), now_ms)
    return time.perf_counter() - started, pipeline.second_sec


def throughput(n_items: int, settings: AggregateSettings) -> dict[str, Any]:
    now_ms = int(time.time() * 1000)
    items = simulate(
        n_items / (StreamSpec().items_per_minute * 1440), StreamSpec(), now_ms - DAY_MS
    )
    single_sec = run_single(items, settings, now_ms)
    two_sec, second_sec = run_two_stage(items, settings, now_ms)
    single_sec = min(single_sec, run_single(items, settings, now_ms))
    return {
        "items": len(items),
        "single_items_per_sec": round(len(items) / single_sec),
        "two_stage_items_per_sec": round(len(items) / two_sec),
        "ratio_two_stage_to_single": round(single_sec / two_sec, 2),
        "stage_two_share": round(second_sec / two_sec, 3),
    }


def _write_days(
    pipeline: _TwoStage,
    items: list[ScoredItem],
    windows: int,
    producer: KafkaProducer,
    topics: tuple[str, str],
) -> tuple[int, int]:
    """Write ``windows`` checkpoints (one per 60 s window of event time): the stream's first
    windows through the stages, then the last real checkpoint repeated. Records and bytes."""
    now_ms = int(time.time() * 1000)
    written = [0, 0]
    last: list[_Record] = []
    window, real = None, 0
    for n, item in enumerate(items):
        minute = int(item.published_at.timestamp()) // 60
        if window is not None and minute != window:
            pipeline.cycle(n, now_ms)
            last = _checkpoint(pipeline, topics)
            _send(producer, last, written)
            real += 1
        window = minute
        pipeline.add(item, now_ms)
    for _ in range(windows - real):
        _send(producer, last, written)
    producer.flush(120)
    return written[0], written[1]


def _checkpoint(pipeline: _TwoStage, topics: tuple[str, str]) -> list[_Record]:
    out = []
    for state in pipeline.states():
        topic = topics[0] if state.tp.topic == "first" else topics[1]
        for key, value in state.take_dirty().items():
            out.append((topic, state.tp.partition, key.encode(), value))
    return out


def _send(producer: KafkaProducer, records: list[_Record], written: list[int]) -> None:
    for topic, partition, key, value in records:
        producer.send(topic, key=key, value=value, partition=partition)
        written[0] += 1
        written[1] += len(key) + len(value or b"")


def restore_time(days: float, bootstrap: str, settings: AggregateSettings) -> dict[str, Any]:
    """Seconds to restore every partition of both stages after ``days`` of checkpoints."""
    tag = f"{int(days * 10)}d{random.randrange(10**6)}"
    topics = (f"bench.first-changelog.{tag}", f"bench.second-changelog.{tag}")
    now_ms = int(time.time() * 1000)
    windows = int(days * 1440)
    real_days = min(days, REAL_WINDOWS / 1440)
    items = simulate(real_days, StreamSpec(), now_ms - int(days * DAY_MS) - DAY_MS)
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        batch_size=1024 * 1024,
        max_request_size=8 * 1024 * 1024,
    )
    pipeline = _TwoStage(settings)
    started = time.perf_counter()
    written, written_bytes = _write_days(pipeline, items, windows, producer, topics)
    write_sec = time.perf_counter() - started
    keys = sum(len(s.values) for s in pipeline.states())
    state_bytes = sum(len(v) for s in pipeline.states() for v in s.values.values())
    with tempfile.TemporaryDirectory() as tmp:
        cold = _restore_all(bootstrap, producer, Path(tmp) / "cache.sqlite", topics)
        warm = _restore_all(bootstrap, producer, Path(tmp) / "cache.sqlite", topics)
    producer.close()
    return {
        "days": days,
        "items_simulated": len(items),
        "changelog_records": written,
        "changelog_mib": round(written_bytes / 2**20),
        "write_sec": round(write_sec, 1),
        "state_keys": keys,
        "state_mib": round(state_bytes / 2**20, 2),
        "restore_cold_sec": round(cold, 2),
        "restore_warm_sec": round(warm, 2),
    }


def _restore_all(
    bootstrap: str, producer: KafkaProducer, cache_path: Path, topics: tuple[str, str]
) -> float:
    cache = StateCache(cache_path)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    restorer = Restorer(consumer, producer, cache)
    started = time.perf_counter()
    for topic in topics:
        for p in range(PARTITIONS):
            restorer.begin(TopicPartition(topic, p))
    while restorer.restoring:
        restorer.step(100)
    seconds = time.perf_counter() - started
    consumer.close()
    cache.close()
    return seconds


def bench_aggregate(n_items: int = 50_000, days: tuple[float, ...] = (1, 7)) -> dict[str, Any]:
    """Both measurements; the restore ones on an embedded tansu broker."""
    from monitor.broker import EmbeddedBroker

    settings = AggregateSettings(topic_labels=TOPICS, max_tracked_ids=20_000)
    result: dict[str, Any] = {"load_average_start": round(os.getloadavg()[0], 1), "restore": []}
    result["throughput"] = throughput(n_items, settings) if n_items > 0 else None
    with EmbeddedBroker() as broker:
        for d in days:
            result["restore"].append(restore_time(d, broker.bootstrap_servers, settings))
    return result


def register(bench: Any) -> None:
    """Add ``finmon bench aggregate`` to the ``bench`` group."""
    import json

    import typer

    @bench.command("aggregate")
    def aggregate(
        items: int = typer.Option(
            50_000, "--items", help="Items for the items/s comparison (0: skip it)."
        ),
        days: str = typer.Option(
            "1,7", "--days", help="Days of state to restore, comma-separated."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    ) -> None:
        """Partitioned aggregator: items/s two-stage vs single stage, restore time of N days."""
        result = bench_aggregate(items, tuple(float(d) for d in days.split(",")))
        if as_json:
            typer.echo(json.dumps(result))
            return
        typer.echo(f"load average at the start {result['load_average_start']}")
        if (t := result["throughput"]) is not None:
            typer.echo(
                f"items/s single {t['single_items_per_sec']}, "
                f"two-stage {t['two_stage_items_per_sec']} ({t['ratio_two_stage_to_single']}x), "
                f"stage two {t['stage_two_share']:.1%} of it"
            )
        for r in result["restore"]:
            typer.echo(
                f"{r['days']:g} days: {r['changelog_records']} changelog records "
                f"({r['changelog_mib']} MiB, written in {r['write_sec']} s), "
                f"{r['state_keys']} keys ({r['state_mib']} MiB): restore cold "
                f"{r['restore_cold_sec']} s, warm (SQLite cache) {r['restore_warm_sec']} s"
            )
