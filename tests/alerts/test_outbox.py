from __future__ import annotations

from pathlib import Path

from alerts.outbox import Outbox


def test_rows_survive_reopening(tmp_path: Path) -> None:
    db = tmp_path / "outbox.sqlite"
    box = Outbox(db)
    assert box.put("http://a/", "k1", "firing", b"{}", now_sec=10).inserted
    box.close()
    reopened = Outbox(db)
    (row,) = reopened.due(now_sec=10)
    assert (row.url, row.idempotency_key, row.status, row.body) == (
        "http://a/",
        "k1",
        "firing",
        b"{}",
    )
    reopened.close()


def test_same_url_key_status_is_queued_once(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    assert box.put("http://a/", "k1", "firing", b"1", now_sec=0).inserted
    assert not box.put("http://a/", "k1", "firing", b"2", now_sec=1).inserted
    assert box.put("http://b/", "k1", "firing", b"1", now_sec=0).inserted
    assert box.put("http://a/", "k1", "resolved", b"3", now_sec=2).inserted
    assert box.pending_count() == 3


def test_resolved_waits_for_its_firing_row(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    box.put("http://a/", "k1", "firing", b"f", now_sec=0)
    box.put("http://a/", "k1", "resolved", b"r", now_sec=0)
    (firing,) = box.due(now_sec=0)
    box.mark_retry(firing.id, 1, next_attempt_sec=50, error="HTTP 503")
    assert box.due(now_sec=10) == []
    assert box.next_due_sec() == 50
    box.mark_delivered(firing.id, 2, now_sec=50)
    assert [r.status for r in box.due(now_sec=50)] == ["resolved"]


def test_overflow_drops_the_oldest_pending_row(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_pending=2)
    box.put("http://a/", "k1", "firing", b"", now_sec=0)
    box.put("http://a/", "k2", "firing", b"", now_sec=0)
    result = box.put("http://a/", "k3", "firing", b"", now_sec=0)
    assert result.dropped == 1
    assert [r.idempotency_key for r in box.due(now_sec=0)] == ["k2", "k3"]
    assert box.counts() == {"pending": 2, "failed": 1}


def test_purge_removes_only_old_finished_rows(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    box.put("http://a/", "old", "firing", b"", now_sec=0)
    box.put("http://a/", "new", "firing", b"", now_sec=0)
    box.put("http://a/", "waiting", "firing", b"", now_sec=0)
    old, new, _ = box.due(now_sec=0)
    box.mark_delivered(old.id, 1, now_sec=10)
    box.mark_failed(new.id, 1, now_sec=100, error="HTTP 400")
    assert box.purge(finished_before_sec=50) == 1
    assert box.counts() == {"pending": 1, "failed": 1}


def test_a_resolved_row_fails_with_its_firing_row(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    box.put("http://a/", "k1", "firing", b"f", now_sec=0)
    box.put("http://a/", "k1", "resolved", b"r", now_sec=1)
    box.put("http://b/", "k1", "resolved", b"r", now_sec=1)  # another URL: not its firing row
    (firing, _other) = box.due(now_sec=1)
    assert box.mark_failed(firing.id, 3, now_sec=2, error="gave up") == 1
    assert [(r.url, r.status) for r in box.due(now_sec=5)] == [("http://b/", "resolved")]
    assert box.counts() == {"failed": 2, "pending": 1}


def test_a_resolved_row_put_after_its_firing_failed_is_never_due(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite")
    box.put("http://a/", "k1", "firing", b"f", now_sec=0)
    (firing,) = box.due(now_sec=0)
    assert box.mark_failed(firing.id, 1, now_sec=1, error="HTTP 404") == 0
    result = box.put("http://a/", "k1", "resolved", b"r", now_sec=2)
    assert (result.inserted, result.orphaned) == (True, 1)
    assert box.due(now_sec=10) == [] and box.pending_count() == 0


def test_a_dropped_firing_row_takes_its_resolved_row_along(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite", max_pending=2)
    box.put("http://a/", "k1", "firing", b"", now_sec=0)
    box.put("http://a/", "k1", "resolved", b"", now_sec=0)
    result = box.put("http://a/", "k2", "firing", b"", now_sec=0)
    assert (result.dropped, result.orphaned) == (1, 1)
    assert [(r.idempotency_key, r.status) for r in box.due(now_sec=0)] == [("k2", "firing")]
