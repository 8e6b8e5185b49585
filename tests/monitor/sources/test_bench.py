"""`finmon bench sources` runs end to end on a small feed (figures are not asserted)."""

from __future__ import annotations

import pytest

from monitor.sources.bench import format_report, run_bench

pytestmark = pytest.mark.integration


def test_bench_runs_and_reports_every_case() -> None:
    result = run_bench(items=20, repeats=1, push_requests=4, clients=2, echo=lambda line: None)
    poller = result["poller"]
    assert set(poller) == {"new", "one_new", "304", "new+broker"}
    assert poller["new"]["new_per_poll"] == 20 and poller["new+broker"]["new_per_poll"] == 20
    assert poller["one_new"]["new_per_poll"] == 1 and poller["304"]["read_per_poll"] == 0
    assert [row["errors"] for row in result["push"]] == [0, 0]
    assert "p99 ms" in format_report(result)
