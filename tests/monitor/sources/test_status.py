"""The source board and its collector, with an injected clock."""

from __future__ import annotations

from monitor.metrics import Metrics
from monitor.sources.status import SourceBoard


def test_board_exports_success_lag_interval_and_failures(metrics: Metrics) -> None:
    now = [1_000.0]
    board = SourceBoard(clock=lambda: now[0])
    board.register("wire", "feed", interval_sec=60, silent_after_sec=180)
    metrics.register_collector(board.collector())
    labels = {"source": "wire", "kind": "feed"}

    def value(name: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    assert value("finmon_source_last_success_timestamp_seconds") is None
    assert value("finmon_source_registered_timestamp_seconds") == 1_000
    board.failure("wire", "timeout")
    board.failure("wire", "timeout")
    assert value("finmon_source_consecutive_failures") == 2
    now[0] = 1_100.0
    board.success("wire", newest_item_sec=1_040.0)
    board.success("wire", newest_item_sec=None)  # a 304 keeps the newest item time
    now[0] = 1_130.0
    assert value("finmon_source_last_success_timestamp_seconds") == 1_100
    assert value("finmon_source_feed_lag_seconds") == 90
    assert value("finmon_source_consecutive_failures") == 0
    assert value("finmon_source_poll_interval_seconds") == 60
    assert value("finmon_source_silent_after_seconds") == 180
    assert board.snapshot()["wire"].last_error is None
