"""A scored stream over three topics and three tickers with topic, ticker and market-wide
bursts, for the partitioned-aggregator tests: records keyed by topic (as the classify role writes
them), fed at a steady pace, and the alerts one uninterrupted aggregator raises on it."""

from __future__ import annotations

import threading
import time

from kafka import KafkaProducer

from monitor.aggregate.engine import Aggregator
from monitor.contract import decode_scored
from monitor.settings import AggregateSettings
from tests.reliability.aggregate_proc import scored

W = 2_000
WINDOWS = 70
# Topic bursts, and one market-wide burst (window 45) that raises the overall and ticker alerts.
BURSTS = {"Earnings": (15, 40, 45), "Macro": (25, 45, 50), "Legal": (30, 45)}
AGGREGATE = {
    "window_ms": W,
    # Ten windows of lateness: partitions read at different speeds on a loaded machine.
    "allowed_lateness_ms": 10 * W,
    "idle_close_ms": 3_600_000,  # windows close by event time only: the run is deterministic
    "cooldown_ms": 0,
    "topic_labels": list(BURSTS),
}


def tickers(i: int) -> list[str]:
    return ["AAPL"] if i % 3 == 0 else ["MSFT", "TSLA"] if i % 5 == 0 else []


def stream() -> list[tuple[bytes, bytes]]:
    """(key, value) records: 30 items a window per topic (1 in 6 negative), 60 (90% negative) in
    a burst window; dated a day ago, in event-time order."""
    t0 = (int(time.time() * 1000) - 86_400_000) // W * W
    rows = []
    for topic, bursts in BURSTS.items():
        for w in range(WINDOWS):
            per = 60 if w in bursts else 30
            for i in range(per):
                negative = i % 10 != 0 if w in bursts else i % 6 == 0
                rows.append((t0 + w * W + i * (W // per), topic, negative, tickers(i)))
    rows.sort()
    return [
        (t.encode(), scored(f"s-{n}", at, topic=t, negative=neg, tickers=tk))
        for n, (at, t, neg, tk) in enumerate(rows)
    ]


def expected(records: list[tuple[bytes, bytes]]) -> set[tuple[str, str]]:
    """(idempotency key, status) of every transition one uninterrupted aggregator raises."""
    agg = Aggregator(AggregateSettings.model_validate(AGGREGATE))
    now_ms = int(time.time() * 1000)
    events = []
    for n, (_, value) in enumerate(records):
        agg.add(decode_scored(value), now_ms)
        if n % 50 == 0:
            events += agg.advance(now_ms)
    events += agg.advance(now_ms)
    return {(e.idempotency_key, e.status) for e in events}


def feed(
    bootstrap: str, topic: str, records: list[tuple[bytes, bytes]], done: threading.Event
) -> None:
    """About 300 records a second (90 per 0.3 s), keyed by topic."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for start in range(0, len(records), 90):
        for key, value in records[start : start + 90]:
            producer.send(topic, key=key, value=value)
        producer.flush(30)
        time.sleep(0.3)
    producer.close()
    done.set()
