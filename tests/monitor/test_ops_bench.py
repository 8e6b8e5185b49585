"""``finmon bench ops`` end to end on a tiny model: it measures, and its drain fits the grace."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.ops_bench import format_report, run_ops_bench
from monitor.settings import ShutdownSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_bench_reports_throughput_and_a_drain_within_the_grace_period(
    tiny_model_dir: Path,
) -> None:
    # Backlogs of several batches (max_batch_items 256): a rate between 10% and 90%, and a stop
    # that lands mid-stream.
    result = run_ops_bench(tiny_model_dir, items=2000, partitions=2)
    assert result.throughput_items_per_sec > 0
    assert result.scored_before_stop >= 2000 + 400  # stopped under load, past a fifth of backlog 2
    grace_ms = ShutdownSettings().grace_period_ms
    assert 0 < result.drain_ms <= result.stop_ms <= grace_ms
    assert "throughput_items_per_sec" in format_report(result)
