from __future__ import annotations

import pytest

from monitor.ingest.offsets import OffsetTracker


def test_commits_only_the_contiguous_done_prefix() -> None:
    t: OffsetTracker[str] = OffsetTracker()
    for off in (10, 11, 12, 13):
        t.track("p0", off)
    t.done("p0", 12)
    assert t.committable() == {}
    t.done("p0", 10)
    assert t.committable() == {"p0": 11}
    t.done("p0", 11)
    assert t.committable() == {"p0": 13}
    t.committed({"p0": 13})
    assert t.committable() == {}
    assert t.inflight == 1
    t.done("p0", 13)
    assert t.committable() == {"p0": 14}


def test_partitions_are_independent_and_forget_drops_state() -> None:
    t: OffsetTracker[str] = OffsetTracker()
    t.track("a", 0)
    t.track("b", 5)
    t.done("b", 5)
    assert t.committable() == {"b": 6}
    t.forget(["a", "b"])
    t.done("a", 0)  # a late result for a revoked partition is ignored
    assert t.committable() == {}
    assert t.inflight == 0


def test_out_of_order_tracking_is_a_bug() -> None:
    t: OffsetTracker[str] = OffsetTracker()
    t.track("a", 3)
    with pytest.raises(ValueError, match="out of order"):
        t.track("a", 2)
