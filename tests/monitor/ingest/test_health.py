"""Broker health from the worker's own calls, and rate-limited warnings (fake clocks)."""

from __future__ import annotations

import logging

import pytest
from kafka import TopicPartition
from kafka.errors import KafkaTimeoutError

from monitor.ingest.health import PROBE_INTERVAL_SEC, BrokerHealth, BrokerLost, BrokerWatch
from monitor.ingest.throttle import Throttle, ThrottleFilter
from monitor.metrics import Metrics
from monitor.settings import KafkaSettings


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_down_after_and_lost_after_a_failure_streak() -> None:
    clock = Clock()
    health = BrokerHealth(down_after_sec=15, exit_after_sec=120, clock=clock)
    assert health.state == "up" and health.reachable
    health.failed(OSError("refused"))
    clock.now = 14.9
    health.failed(OSError("refused"))
    assert health.state == "up"
    clock.now = 15.0
    assert health.state == "down" and not health.reachable
    clock.now = 120.0
    assert health.state == "lost"
    assert "refused" in health.last_error


def test_one_success_ends_the_streak() -> None:
    clock = Clock()
    health = BrokerHealth(down_after_sec=15, exit_after_sec=120, clock=clock)
    health.failed("x")
    clock.now = 100
    assert health.state == "down"
    health.ok()
    assert health.state == "up" and health.failing_sec == 0
    health.failed("y")
    clock.now = 110
    assert health.state == "up"  # a new streak, 10 s old


class ProbedConsumer:
    """The two consumer calls the probe makes, answering from memory or timing out."""

    def __init__(self) -> None:
        self.answers = True
        self.calls = 0

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0}

    def end_offsets(self, parts: list[TopicPartition], timeout_ms: int) -> dict:
        self.calls += 1
        if not self.answers:
            raise KafkaTimeoutError("no answer")
        return {tp: 7 for tp in parts}


def test_broker_watch_sets_the_role_gauge_logs_and_exits(
    metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    kafka = KafkaSettings(broker_down_after_sec=3, broker_exit_after_sec=15)
    watch = BrokerWatch("aggregate", kafka, metrics.broker_up, clock=clock)
    consumer = ProbedConsumer()

    def up() -> float | None:
        return metrics.registry.get_sample_value("finmon_broker_up", {"role": "aggregate"})

    watch.started()
    assert watch.probe(consumer, "s") == {TopicPartition("s", 0): 7} and up() == 1
    assert watch.probe(consumer, "s") is None and consumer.calls == 1  # not due yet
    consumer.answers = False
    for probes in (1, 2, 3):
        clock.now = probes * PROBE_INTERVAL_SEC
        watch.probe(consumer, "s")
        watch.judge()
        assert up() == (1 if probes < 3 else 0)  # failing for 0, 2, then 4 s (down after 3)
    assert not watch.reachable
    [error] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "aggregate role" in error and "kafka.bootstrap_servers" in error
    consumer.answers = True
    clock.now = 4 * PROBE_INTERVAL_SEC
    watch.probe(consumer, "s")
    watch.judge()
    assert up() == 1 and watch.reachable
    watch.failed(KafkaTimeoutError("produce"))
    clock.now += 15
    with pytest.raises(BrokerLost, match=r"kafka\.broker_exit_after_sec"):
        watch.judge()


def test_throttle_allows_one_per_interval_and_counts_the_rest() -> None:
    clock = Clock()
    throttle = Throttle(interval_sec=10, clock=clock)
    assert throttle.allow("produce") == 0
    assert [throttle.allow("produce") for _ in range(1000)] == [None] * 1000
    assert throttle.allow("commit") == 0  # keys are independent
    clock.now = 10
    assert throttle.allow("produce") == 1000


def test_throttle_filter_passes_only_kafka_repeats_once(caplog) -> None:
    flt = ThrottleFilter("kafka", interval_sec=60)
    records = [
        logging.LogRecord("kafka.conn", logging.WARNING, "", 0, "refused %s", ("b",), None)
        for _ in range(500)
    ]
    passed = [r for r in records if flt.filter(r)]
    assert len(passed) == 1
    own = logging.LogRecord("monitor.x", logging.WARNING, "", 0, "mine", (), None)
    assert all(flt.filter(own) for _ in range(5))
