"""``finmon bench sources``: the feed poller and the push endpoint, measured on this machine.

Poller: a 1,000-item RSS 2.0 feed served on loopback; per poll, wall time and the polling
thread's CPU time (fetch, parse, dedup, produce, commit) for three cases: every item new, one
new item among known ones, and a 304. Items go to an in-memory sink, and (case ``new+broker``) to
the embedded broker with ``acks=all``. Push: concurrent clients POST batches to ``/v1/news``
backed by the embedded broker with ``acks=all``; latency is request to 202.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from monitor.broker import EmbeddedBroker
from monitor.demo.generator import NewsGenerator
from monitor.demo.replay import DemoFeed
from monitor.ingest.kafka_io import ensure_topics, make_producer
from monitor.metrics import build_metrics
from monitor.settings import FeedSettings, KafkaSettings, PushSettings, SourcesSettings
from monitor.sources.dedup import FeedStore
from monitor.sources.http import FeedFetcher
from monitor.sources.poller import FeedPoller
from monitor.sources.produce import AckProducer, MemorySink, MessageSink
from monitor.sources.push import PushServer
from monitor.sources.status import SourceBoard

BENCH_TOKEN = "bench-token"


def _poll_once(
    feed_url: str, store: FeedStore, sink: MessageSink, fetcher: FeedFetcher
) -> tuple[float, float, int, int]:
    """(wall seconds, thread CPU seconds, new items, feed items read) of one poll."""
    board = SourceBoard()
    board.register("bench", "feed", 60.0)
    poller = FeedPoller(
        SourcesSettings(),
        fetcher=fetcher,
        store=store,
        producer=sink,
        metrics=build_metrics(),
        board=board,
    )
    wall, cpu = time.perf_counter(), time.thread_time()
    result = poller.poll(FeedSettings(name="bench", url=feed_url))
    if result.error is not None:
        raise result.error
    read = result.new + result.duplicates + result.stale
    return time.perf_counter() - wall, time.thread_time() - cpu, result.new, read


Sample = tuple[float, float, int, int]


def _summary(samples: list[Sample]) -> dict[str, float]:
    """Medians; ``items_per_sec`` counts the feed items a poll read (new or known)."""
    wall = statistics.median(s[0] for s in samples)
    read = statistics.median(s[3] for s in samples)
    return {
        "polls": len(samples),
        "new_per_poll": statistics.median(s[2] for s in samples),
        "read_per_poll": read,
        "wall_ms_median": round(wall * 1000, 1),
        "cpu_ms_median": round(statistics.median(s[1] for s in samples) * 1000, 1),
        "items_per_sec": round(read / wall, 0) if read else 0.0,
    }


def bench_poller(
    items: int, repeats: int, kafka: KafkaSettings, work_dir: Path
) -> dict[str, dict[str, float]]:
    feed = DemoFeed(window_items=items)
    generator = NewsGenerator(seed=3)
    now = datetime.now(UTC)
    for _ in range(items):
        feed.add(generator.item(), now)
    feed.start()
    fetcher = FeedFetcher.create(user_agent="FinMon/bench", timeout_sec=30, max_bytes=50_000_000)
    cases: dict[str, list[Sample]] = {"new": [], "one_new": [], "304": []}
    broker_case: list[Sample] = []
    ensure_topics(kafka, [kafka.raw_topic])
    producer = AckProducer(
        make_producer(kafka), kafka.raw_topic, timeout_sec=60, max_in_flight_items=10**6
    )
    try:
        for r in range(repeats):
            store = FeedStore(work_dir / f"poll-{r}.sqlite", retention_ms=10**12)
            cases["new"].append(_poll_once(feed.url, store, MemorySink(), fetcher))
            cases["304"].append(_poll_once(feed.url, store, MemorySink(), fetcher))
            feed.add(generator.item(), datetime.now(UTC))
            cases["one_new"].append(_poll_once(feed.url, store, MemorySink(), fetcher))
            store.close()
            kafka_store = FeedStore(work_dir / f"kafka-{r}.sqlite", retention_ms=10**12)
            broker_case.append(_poll_once(feed.url, kafka_store, producer, fetcher))
            kafka_store.close()
    finally:
        producer.close()
        fetcher.close()
        feed.stop()
    report = {name: _summary(samples) for name, samples in cases.items()}
    report["new+broker"] = _summary(broker_case)
    return report


def _client(
    url: str, batches: list[list[dict[str, Any]]], latencies: list[float], errors: list[int]
) -> None:
    headers = {"Authorization": f"Bearer {BENCH_TOKEN}"}
    with httpx.Client(timeout=60) as client:
        for batch in batches:
            started = time.perf_counter()
            answer = client.post(url, json=batch, headers=headers)
            latencies.append(time.perf_counter() - started)
            if answer.status_code != 202:
                errors.append(answer.status_code)


def bench_push(
    requests: int, batch_items: int, clients: int, kafka: KafkaSettings
) -> dict[str, float]:
    ensure_topics(kafka, [kafka.raw_topic])
    producer = AckProducer(
        make_producer(kafka), kafka.raw_topic, timeout_sec=60, max_in_flight_items=10**6
    )
    settings = PushSettings(enabled=True, port=0, token=SecretStr(BENCH_TOKEN), max_items=1000)
    server = PushServer(settings, producer, build_metrics(), SourceBoard())
    server.start()
    generator = NewsGenerator(seed=5)
    now = datetime.now(UTC)
    per_client = [
        [
            [generator.item().message(now) for _ in range(batch_items)]
            for _ in range(requests // clients)
        ]
        for _ in range(clients)
    ]
    latencies: list[float] = []
    errors: list[int] = []
    threads = [
        threading.Thread(target=_client, args=(server.url, b, latencies, errors))
        for b in per_client
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    server.stop()
    producer.close()
    ordered = sorted(latencies)
    sent = len(ordered) * batch_items
    return {
        "requests": len(ordered),
        "batch_items": batch_items,
        "clients": clients,
        "errors": len(errors),
        "items_per_sec": round(sent / wall, 0),
        "requests_per_sec": round(len(ordered) / wall, 1),
        "p50_ms": round(_quantile(ordered, 0.5) * 1000, 1),
        "p99_ms": round(_quantile(ordered, 0.99) * 1000, 1),
    }


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_bench(
    *,
    items: int = 1000,
    repeats: int = 5,
    push_requests: int = 400,
    clients: int = 4,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Both benchmarks on one embedded broker. Returns the figures (and the load average)."""
    with (
        tempfile.TemporaryDirectory(prefix="finmon-bench-sources-") as tmp,
        EmbeddedBroker(log_path=Path(tmp) / "broker.log") as broker,
    ):

        def kafka(tag: str) -> KafkaSettings:
            return KafkaSettings(
                bootstrap_servers=broker.bootstrap_servers, raw_topic=f"bench.{tag}"
            )

        echo(f"poller: {items}-item feed, {repeats} repeats")
        poller = bench_poller(items, repeats, kafka("poll"), Path(tmp))
        push = []
        for batch in (1, 50):
            echo(f"push: {push_requests} requests of {batch} item(s), {clients} clients")
            requests = push_requests if batch == 1 else max(clients, push_requests // 10)
            push.append(bench_push(requests, batch, clients, kafka(f"push{batch}")))
    return {
        "poller": poller,
        "push": push,
        "load_average": list(os.getloadavg()),
        "cpus": os.cpu_count(),
    }


def format_report(result: dict[str, Any]) -> str:
    lines = [f"load average {result['load_average']} on {result['cpus']} CPUs", "", "poller:"]
    lines.append("  case        read/poll  new/poll  wall ms  CPU ms  items read/s")
    for case, row in result["poller"].items():
        lines.append(
            f"  {case:11} {row['read_per_poll']:9.0f} {row['new_per_poll']:9.0f} "
            f"{row['wall_ms_median']:8.1f} {row['cpu_ms_median']:7.1f} {row['items_per_sec']:13.0f}"
        )
    lines += ["", "push (acks=all):", "  batch  clients  requests  items/s  req/s  p50 ms  p99 ms"]
    for row in result["push"]:
        lines.append(
            f"  {row['batch_items']:5d} {row['clients']:8d} {row['requests']:9d} "
            f"{row['items_per_sec']:8.0f} {row['requests_per_sec']:6.1f} {row['p50_ms']:7.1f} "
            f"{row['p99_ms']:7.1f}" + (f"  errors={row['errors']}" if row["errors"] else "")
        )
    return "\n".join(lines)
