"""The two stages without Kafka: N source partitions and M destination partitions raise the alerts
one aggregator raises; bundles re-delivered or re-sent after a restore change nothing."""

from __future__ import annotations

import zlib

from kafka import TopicPartition

from alerts.events import AlertEvent
from monitor.aggregate.changelog import PartitionState
from monitor.aggregate.engine import Aggregator
from monitor.aggregate.stages import Bundle, FirstStage, SecondStage
from monitor.contract import ScoredItem, decode_scored
from monitor.settings import AggregateSettings
from tests.reliability.aggregate_proc import scored

W = 2_000
T0 = 1_700_000_000_000 // W * W
SETTINGS = AggregateSettings(
    window_ms=W,
    allowed_lateness_ms=500,
    idle_close_ms=3_600_000,
    cooldown_ms=0,
    topic_labels=("Earnings", "Macro", "Legal"),
)
BURSTS = {"Earnings": (20, 50, 75), "Macro": (35, 65, 75), "Legal": (40, 75)}
NOW_MS = T0 + 86_400_000


def stream(windows: int = 90) -> list[ScoredItem]:
    rows = []
    for topic, bursts in BURSTS.items():
        for w in range(windows):
            per = 60 if w in bursts else 30
            for i in range(per):
                negative = i % 10 != 0 if w in bursts else i % 6 == 0
                tickers = ["AAPL"] if i % 3 == 0 else ["MSFT", "TSLA"] if i % 5 == 0 else []
                rows.append((T0 + w * W + i * (W // per), topic, negative, tickers))
    rows.sort()
    return [
        decode_scored(scored(f"k-{n}", at, topic=t, negative=neg, tickers=tk))
        for n, (at, t, neg, tk) in enumerate(rows)
    ]


def key_set(events: list[AlertEvent]) -> list[tuple[str, str]]:
    return sorted((e.idempotency_key, e.status) for e in events)


def single(items: list[ScoredItem]) -> list[AlertEvent]:
    agg = Aggregator(SETTINGS)
    events: list[AlertEvent] = []
    for n, item in enumerate(items):
        agg.add(item, NOW_MS)
        if n % 50 == 0:
            events += agg.advance(NOW_MS)
    return events + agg.advance(NOW_MS)


def first(p: int) -> FirstStage:
    return FirstStage(PartitionState(TopicPartition("s", p)), SETTINGS)


def second(p: int) -> SecondStage:
    return SecondStage(PartitionState(TopicPartition("p", p)), SETTINGS)


def two_stage(items: list[ScoredItem], sources: int, dests: int, cut_every: int = 70) -> list:
    ones = [first(p) for p in range(sources)]
    twos = [second(p) for p in range(dests)]
    events: list[AlertEvent] = []
    for n, item in enumerate(items):
        src = zlib.crc32(item.topic.encode()) % sources
        ones[src].add(item, NOW_MS)
        if n % cut_every == 0 or n == len(items) - 1:
            for offset, one in enumerate(ones):
                one.cut(n + offset, dests)
                for dest, raw in one.outgoing():
                    twos[dest].apply(Bundle.decode(raw, 5), NOW_MS)
                one.sent()
            for two in twos:
                events += two.advance(NOW_MS)
    return events


def test_three_partitions_raise_the_alerts_of_one_aggregator() -> None:
    items = stream()
    want = key_set(single(items))
    assert {s for _, s in want} == {"firing", "resolved"}
    assert any(":ticker=" in k for k, _ in want) and any(":overall=" in k for k, _ in want)
    assert key_set(two_stage(items, 3, 3)) == want
    assert key_set(two_stage(items, 1, 1, cut_every=13)) == want


def test_a_restart_from_the_changelog_state_raises_the_same_alerts() -> None:
    """Every partition's state is rebuilt from its key-value map (what the changelog holds)
    mid-stream, with the unsent bundles re-sent twice: the alerts are those without a restart."""
    items = stream()
    want = key_set(single(items))
    ones = [first(p) for p in range(3)]
    twos = [second(p) for p in range(2)]
    events: list[AlertEvent] = []
    for n, item in enumerate(items):
        ones[zlib.crc32(item.topic.encode()) % 3].add(item, NOW_MS)
        if n % 70 == 0 or n == len(items) - 1:
            for offset, one in enumerate(ones):
                one.cut(n + offset, 2)
                for dest, raw in one.outgoing():
                    twos[dest].apply(Bundle.decode(raw, 5), NOW_MS)
            for two in twos:
                events += two.advance(NOW_MS)
                two.checkpoint()
            if n == len(items) // 2:  # crash before the bundles were seen acknowledged
                ones = [
                    FirstStage(PartitionState(o.state.tp, dict(o.state.values)), SETTINGS)
                    for o in ones
                ]
                twos = [
                    SecondStage(PartitionState(t.state.tp, dict(t.state.values)), SETTINGS)
                    for t in twos
                ]
                assert all(o.unsent for o in ones)
            for one in ones:
                one.sent()
    assert key_set(events) == want
