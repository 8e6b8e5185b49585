"""Forged ``news.scored`` records against the real aggregate process on the real broker.

10,000 distinct topics, items dated in the year 2999 or an hour ahead, and records no classify
role writes (garbage, NaN, unknown sentiment, a huge id) must neither grow /metrics nor the
process's memory, nor blind the windows to the honest items that follow. Prints a ``FIGURES``
line (run with ``-s``) for docs/reliability.md.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from monitor.broker import EmbeddedBroker
from monitor.contract import DLQ_REASON_HEADER, TWITTER_TOPICS
from tests.kafka_helpers import drain, produce, unique_kafka_settings
from tests.polling import wait_until
from tests.reliability.aggregate_proc import AggregateProcess, scored

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HONEST = 400
FORGED_TOPICS = 10_000
FUTURE = 200
# /metrics may gain the `other` series, the future counter, dead-letter reasons and the like.
MAX_NEW_METRIC_LINES = 80
# Before the fix, 10,000 topics grew the process by 84 MB. What is left (3 to 17 MB measured) is
# the ids remembered against redelivery (bounded by max_tracked_ids) and the allocator.
MAX_RSS_GROWTH_MB = 40.0


def garbage() -> list[bytes]:
    now_ms = int(time.time() * 1000)
    nan = scored("nan", now_ms).replace(b'"sentiment_score": 0.0', b'"sentiment_score": NaN')
    return [
        b"not json at all",
        b"\xff\xfe\x00",
        b'{"id": "deep", "x": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
        nan,
        scored("furious", now_ms, sentiment="furious"),
        scored("x" * 100_000, now_ms),
        scored("prob", now_ms, sentiment_probs={"negative": 7.0}),
    ]


def honest(start: int, count: int) -> list[bytes]:
    now_ms = int(time.time() * 1000)
    topics = TWITTER_TOPICS[:4]
    return [
        scored(f"h-{i}", now_ms + i, topic=topics[i % 4], negative=i % 5 == 0)
        for i in range(start, start + count)
    ]


def counted(agg: AggregateProcess) -> float:
    return agg.sample("finmon_aggregate_items_total") or 0.0


def test_forged_scored_records_grow_nothing_and_blind_nothing(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    kafka = unique_kafka_settings(broker.bootstrap_servers, max_poll_records=256)
    agg = AggregateProcess.write(
        tmp_path,
        kafka,
        aggregate={
            "window_ms": 10_000,
            "allowed_lateness_ms": 10_000,
            "topic_labels": list(TWITTER_TOPICS),
        },
    )
    agg.start()
    try:
        agg.wait_up()
        produce(broker.bootstrap_servers, kafka.scored_topic, honest(0, HONEST))
        assert wait_until(lambda: counted(agg) >= HONEST, 120, 0.5), agg.tail()
        lines_before = len(agg.metrics_text().splitlines())
        rss_before = agg.rss_mb()

        now_ms = int(time.time() * 1000)
        forged = [scored(f"t-{n}", now_ms, topic=f"forged topic {n}") for n in range(FORGED_TOPICS)]
        forged += [scored(f"f-{n}", 32_503_680_000_000 + n) for n in range(FUTURE // 2)]
        forged += [scored(f"g-{n}", now_ms + 3_600_000) for n in range(FUTURE // 2)]
        bad = garbage()
        produce(broker.bootstrap_servers, kafka.scored_topic, forged + bad)
        produce(broker.bootstrap_servers, kafka.scored_topic, honest(HONEST, HONEST))
        assert wait_until(lambda: counted(agg) >= 2 * HONEST + FORGED_TOPICS, 180, 0.5), agg.tail()
        lines_after = len(agg.metrics_text().splitlines())
        windowed = counted(agg)
        rss_after = agg.rss_mb()
        late = agg.sample("finmon_aggregate_late_items_total") or 0.0
        future = agg.sample("finmon_aggregate_future_items_total") or 0.0
        other = agg.sample("finmon_aggregate_items_total", {"topic": "other"})
        dlq = drain(
            broker.bootstrap_servers, kafka.dlq_topic, lambda rs: len(rs) >= FUTURE + len(bad), 60
        )
    finally:
        code = agg.stop()
    reasons = Counter(dict(r.headers)[DLQ_REASON_HEADER].decode() for r in dlq)
    future_ids = {
        json.loads(r.value)["id"]
        for r in dlq
        if dict(r.headers)[DLQ_REASON_HEADER] == b"future_event_time"
    }
    assert late == 0  # the honest items after the forged ones are all windowed
    assert future == FUTURE and reasons["future_event_time"] == FUTURE
    assert other == FORGED_TOPICS
    assert sum(reasons.values()) == FUTURE + len(bad), reasons
    assert lines_after - lines_before <= MAX_NEW_METRIC_LINES, (lines_before, lines_after)
    assert rss_after - rss_before <= MAX_RSS_GROWTH_MB, (rss_before, rss_after)
    assert code == 0, agg.tail()
    assert future_ids == {f"{p}-{n}" for p in "fg" for n in range(FUTURE // 2)}
    print(
        f"\nFIGURES forged_scored: sent={2 * HONEST + FORGED_TOPICS + FUTURE + len(bad)} "
        f"windowed={windowed:.0f} late={late:.0f} "
        f"future={future:.0f} dead_lettered={sum(reasons.values())} {dict(reasons)} lost=0 "
        f"metrics_lines={lines_before}->{lines_after} rss_mb={rss_before:.0f}->{rss_after:.0f}"
    )
