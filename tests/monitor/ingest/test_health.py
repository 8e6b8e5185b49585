"""Broker health from the worker's own calls, and rate-limited warnings (fake clocks)."""

from __future__ import annotations

import logging

from monitor.ingest.health import BrokerHealth
from monitor.ingest.throttle import Throttle, ThrottleFilter


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
