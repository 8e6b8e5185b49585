"""The restore bench's synthetic log: real windows through the stages, then the last checkpoint
repeated up to the days asked for."""

from __future__ import annotations

import time
from typing import Any

from monitor.aggregate import scale_bench
from monitor.settings import AggregateSettings


class _Producer:
    """Keeps what is sent (the bench needs send and flush only)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int, bytes, Any]] = []

    def send(self, topic: str, *, key: bytes, value: Any, partition: int) -> None:
        self.sent.append((topic, partition, key, value))

    def flush(self, timeout: float) -> None:
        pass


def test_the_log_holds_one_checkpoint_a_window_the_last_real_one_repeated() -> None:
    settings = AggregateSettings(topic_labels=scale_bench.TOPICS, max_tracked_ids=20_000)
    now_ms = int(time.time() * 1000)
    items = scale_bench.simulate(6 / 1440, scale_bench.StreamSpec(), now_ms - scale_bench.DAY_MS)
    pipeline = scale_bench._TwoStage(settings)
    producer = _Producer()
    topics = ("first-log", "second-log")
    records, size = scale_bench._write_days(pipeline, items, 20, producer, topics)
    assert records == len(producer.sent) and size > 0
    assert {t for t, *_ in producer.sent} == set(topics)
    sent = producer.sent
    # 6 minutes of items close 5 windows; the other 15 repeat the last checkpoint.
    period = next(p for p in range(1, 500) if sent[-p:] == sent[-2 * p : -p])
    assert all(sent[-p * period :][:period] == sent[-period:] for p in range(1, 16))
    assert records > 15 * period  # the real windows come first
