"""The drop folder with an in-memory sink and an injected clock."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from monitor.metrics import Metrics
from monitor.settings import DropFolderSettings
from monitor.sources.dropfolder import DropFolder
from monitor.sources.produce import MemorySink
from monitor.sources.status import SourceBoard


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def folder(tmp_path: Path, metrics: Metrics, clock: Clock, sink: MemorySink) -> DropFolder:
    settings = DropFolderSettings(dir=str(tmp_path / "drop"), settle_sec=2.0)
    return DropFolder(settings, sink, metrics, SourceBoard(clock), clock=clock)


def drop(path: Path, text: str | bytes, mtime: float) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    os.utime(path, (mtime, mtime))
    return path


def line(i: int, **extra: object) -> str:
    return json.dumps({"id": f"d-{i}", "headline": f"Row {i} about (NYSE:GE)", **extra})


def scan_twice(drop_folder: DropFolder, clock: Clock) -> list[object]:
    drop_folder.scan()  # first sighting: size and mtime noted, nothing read
    clock.now += 1
    return list(drop_folder.scan())


def test_jsonl_is_produced_then_moved_to_done(
    tmp_path: Path, metrics: Metrics, clock: Clock
) -> None:
    sink = MemorySink()
    df = folder(tmp_path, metrics, clock, sink)
    drop(df.root / "batch.jsonl", "\n".join(line(i) for i in range(3)) + "\n", clock.now - 10)
    assert df.scan() == []  # seen once: not yet
    clock.now += 1
    (outcome,) = df.scan()
    assert outcome.ok and outcome.produced == 3
    assert [m["id"] for m in sink.messages] == ["d-0", "d-1", "d-2"]
    assert sink.messages[0]["source"] == "dropfolder" and sink.messages[0]["tickers"] == ["GE"]
    assert (df.root / "done" / "batch.jsonl").exists() and not (df.root / "batch.jsonl").exists()


def test_csv_rows(tmp_path: Path, metrics: Metrics, clock: Clock) -> None:
    sink = MemorySink()
    df = folder(tmp_path, metrics, clock, sink)
    text = (
        "id,headline,body,source,published_at,tickers\n"
        'c-1,"Bank A, Bank B to merge",,wire,2026-11-30T10:00:00Z,BKA;BKB\n'
        "c-2,Fed holds rates,Statement text,,,\n"
    )
    drop(df.root / "rows.csv", text, clock.now - 10)
    (outcome,) = scan_twice(df, clock)
    assert outcome.ok  # type: ignore[attr-defined]
    first, second = sink.messages
    assert first["headline"] == "Bank A, Bank B to merge" and first["tickers"] == ["BKA", "BKB"]
    assert first["source"] == "wire" and second["source"] == "dropfolder"
    assert second["published_at_estimated"] is True


def test_invalid_rows_go_to_failed_with_a_reason_file(
    tmp_path: Path, metrics: Metrics, clock: Clock
) -> None:
    sink = MemorySink()
    df = folder(tmp_path, metrics, clock, sink)
    rows = [line(1), "{not json", json.dumps({"headline": "no id"}), line(2)]
    drop(df.root / "mixed.jsonl", "\n".join(rows), clock.now - 10)
    scan_twice(df, clock)
    assert [m["id"] for m in sink.messages] == ["d-1", "d-2"]
    assert (df.root / "failed" / "mixed.jsonl").exists()
    reason = json.loads((df.root / "failed" / "mixed.jsonl.reason.json").read_text())
    assert reason["produced_rows"] == 2
    assert [(r["index"], r["reason"]) for r in reason["rejected"]] == [
        (1, "not_json"),
        (2, "missing_id"),
    ]


def test_unreadable_file_fails_whole(tmp_path: Path, metrics: Metrics, clock: Clock) -> None:
    sink = MemorySink()
    df = folder(tmp_path, metrics, clock, sink)
    drop(df.root / "latin.jsonl", line(1).encode() + b"\xe9\xff\n", clock.now - 10)
    drop(df.root / "noid.csv", "headline\nx\n", clock.now - 10)
    scan_twice(df, clock)
    assert sink.messages == []
    for name in ("latin.jsonl", "noid.csv"):
        reason = json.loads((df.root / "failed" / f"{name}.reason.json").read_text())
        assert reason["error"]


def test_a_file_being_written_is_not_read(tmp_path: Path, metrics: Metrics, clock: Clock) -> None:
    sink = MemorySink()
    df = folder(tmp_path, metrics, clock, sink)
    path = drop(df.root / "growing.jsonl", line(1) + "\n", clock.now - 10)
    df.scan()
    clock.now += 1
    drop(path, line(1) + "\n" + line(2)[:10], clock.now - 10)  # grew since the last scan
    assert df.scan() == [] and sink.messages == []
    drop(path, line(1) + "\n" + line(2), clock.now - 10)  # the writer finished
    df.scan()
    clock.now += 1
    assert [o.path.name for o in df.scan()] == ["growing.jsonl"]

    fresh = drop(df.root / "fresh.jsonl", line(3), clock.now - 0.5)  # written just now
    assert df.scan() == [] and df.scan() == []  # unchanged, but not settle_sec old
    clock.now += 2
    assert [o.path.name for o in df.scan()] == ["fresh.jsonl"] and not fresh.exists()

    drop(df.root / ".hidden.jsonl", line(4), clock.now - 10)
    drop(df.root / "part.jsonl.tmp", line(5), clock.now - 10)
    assert scan_twice(df, clock) == []
    assert [m["id"] for m in sink.messages] == ["d-1", "d-2", "d-3"]


def test_a_produce_failure_leaves_the_file_for_the_next_scan(
    tmp_path: Path, metrics: Metrics, clock: Clock
) -> None:
    sink = MemorySink()
    sink.fail_next = True
    df = folder(tmp_path, metrics, clock, sink)
    path = drop(df.root / "batch.jsonl", line(1), clock.now - 10)
    assert scan_twice(df, clock) == []
    assert path.exists()
    clock.now += 1
    (outcome,) = df.scan()
    assert outcome.ok and [m["id"] for m in sink.messages] == ["d-1"]
