"""``finmon bench ops``: one classify replica's throughput, and its drain time under load.

One run, on an embedded broker: a backlog of synthetic headlines is produced, one classify role
(the real daemon and model) consumes it, and the rate between 10% and 90% of the backlog scored is
one replica's throughput (the figure the KEDA ``lagThreshold`` is sized against). Then a second
backlog is produced and, once a fifth of it is scored (the worker is busy: batches in the model,
sends in flight), the role is told to stop, as SIGTERM does: the drain (finish the batches, produce,
commit) and the whole stop (drain plus leaving the group and closing clients) are timed.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from kafka import KafkaProducer

from monitor.broker import EmbeddedBroker
from monitor.demo.generator import NewsGenerator
from monitor.metrics import Metrics
from monitor.settings import Settings

WAIT_SEC = 600.0


@dataclass(frozen=True)
class OpsBenchResult:
    items: int
    partitions: int
    throughput_items_per_sec: float
    drain_ms: float
    stop_ms: float
    scored_before_stop: int
    cpus: int
    load_1min: float


def _produce(bootstrap: str, topic: str, generator: NewsGenerator, n: int) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    futures = [
        producer.send(topic, json.dumps(generator.item().message(datetime.now(UTC))).encode())
        for _ in range(n)
    ]
    producer.flush(60)
    for future in futures:
        future.get(60)
    producer.close()


def _scored(metrics: Metrics) -> int:
    total = 0.0
    for family in metrics.registry.collect():
        if family.name == "finmon_classify_items":
            total += sum(s.value for s in family.samples if s.name.endswith("_total"))
    return int(total)


def _wait(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SEC
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench ops: {what} did not happen in {WAIT_SEC:.0f} s")
        time.sleep(0.02)


def _settings(bootstrap: str, model: Path, state: Path, partitions: int) -> Settings:
    tag = uuid.uuid4().hex[:8]
    return Settings(
        role="classify",
        kafka={
            "bootstrap_servers": bootstrap,
            "raw_topic": f"bench.raw.{tag}",
            "scored_topic": f"bench.scored.{tag}",
            "dlq_topic": f"bench.dlq.{tag}",
            "classify_group": f"bench-{tag}",
            "topic_partitions": partitions,
        },
        model={"path": str(model), "cache_items": 0},
        metrics={"enabled": False},
        state={"dir": str(state)},
        reload={"watch": False},
    )


def run_ops_bench(model: Path, items: int = 4000, partitions: int = 3) -> OpsBenchResult:
    """Blocking; a few minutes on a CPU for the default ``items``."""
    from monitor.daemon import Daemon  # torch: imported only when the bench runs

    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker(log_path=Path(tmp) / "b.log") as b:
        settings = _settings(b.bootstrap_servers, model, Path(tmp) / "state", partitions)
        generator = NewsGenerator(seed=11, prefix="bench")
        daemon = Daemon.from_settings(settings)
        daemon.start()
        _produce(b.bootstrap_servers, settings.kafka.raw_topic, generator, items)
        _wait(lambda: _scored(daemon.metrics) >= items // 10, "10% of the backlog scored")
        t0, c0 = time.monotonic(), _scored(daemon.metrics)
        _wait(lambda: _scored(daemon.metrics) >= items * 9 // 10, "90% of the backlog scored")
        rate = (_scored(daemon.metrics) - c0) / (time.monotonic() - t0)
        _wait(lambda: _scored(daemon.metrics) >= items, "the whole backlog scored")
        _produce(b.bootstrap_servers, settings.kafka.raw_topic, generator, items)
        _wait(lambda: _scored(daemon.metrics) >= items + items // 5, "a fifth of backlog 2")
        before = _scored(daemon.metrics)
        started = time.monotonic()
        daemon.stop(settings.shutdown.grace_period_ms / 1000)
        stop_ms = (time.monotonic() - started) * 1000
        drain_sec = daemon.metrics.registry.get_sample_value("finmon_shutdown_drain_seconds")
    return OpsBenchResult(
        items=items,
        partitions=partitions,
        throughput_items_per_sec=round(rate, 1),
        drain_ms=round((drain_sec or 0.0) * 1000, 1),
        stop_ms=round(stop_ms, 1),
        scored_before_stop=before,
        cpus=os.cpu_count() or 0,
        load_1min=round(os.getloadavg()[0], 2),
    )


def format_report(result: OpsBenchResult) -> str:
    return "\n".join(f"{key:>26}: {value}" for key, value in asdict(result).items())


def register(bench: typer.Typer) -> None:
    """Add ``ops`` to the ``finmon bench`` group."""

    @bench.command("ops")
    def bench_ops(
        model: Annotated[Path, typer.Option("--model", help="Exported FinMon model directory.")],
        items: Annotated[int, typer.Option("--items", min=100, help="Backlog size.")] = 4000,
        partitions: Annotated[int, typer.Option("--partitions", min=1)] = 3,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    ) -> None:
        """One classify replica's throughput (items/s) and its drain time under load."""
        result = run_ops_bench(model, items=items, partitions=partitions)
        typer.echo(json.dumps(asdict(result)) if as_json else format_report(result))
