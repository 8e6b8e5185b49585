"""The drop folder: JSONL or CSV files of items, produced, then moved to ``done/`` or ``failed/``.

A file is taken only when it ends in ``.jsonl`` or ``.csv``, is not hidden, and its size and mtime
have not changed for ``settle_sec`` (seen on two scans): a file still being written is never read.
Writers that can should write ``.name.tmp`` and rename it in place.

Rows are validated against the news.raw contract (CSV columns: ``id, headline, body, source,
published_at, tickers`` with tickers separated by spaces, commas or semicolons). Valid rows are
produced; once the broker acknowledged all of them the file moves to ``done/``. A file with any
invalid row, or one that cannot be read, moves to ``failed/`` beside ``NAME.reason.json`` listing
each bad row and how many rows were produced. A crash before the move means the file is produced
again on restart (same ids, dropped downstream).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.contract import DEFAULT_LIMITS, DecodeLimits
from monitor.metrics import Metrics
from monitor.settings import DropFolderSettings
from monitor.sources.errors import SourceError
from monitor.sources.produce import MessageSink
from monitor.sources.status import SourceBoard
from monitor.sources.validate import Rejected, split_valid
from monitor.tickers import EMPTY_DICTIONARY, TickerDictionary

logger = logging.getLogger(__name__)

SUFFIXES = (".jsonl", ".csv")
CHUNK_ROWS = 500
MAX_REJECTS_LISTED = 1_000
_TICKER_SPLIT = re.compile(r"[\s,;]+")


class FileRejected(SourceError):
    """A dropped file cannot be read at all (encoding, CSV header, size); it goes to failed/."""

    def __init__(self, detail: str) -> None:
        super().__init__("malformed", detail)


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """What happened to one file."""

    path: Path
    produced: int
    rejected: tuple[Rejected, ...]
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.rejected


def _csv_row(row: dict[str, str | None]) -> dict[str, Any]:
    item: dict[str, Any] = {k: v for k, v in row.items() if k and v not in (None, "")}
    if "tickers" in item:
        item["tickers"] = [t for t in _TICKER_SPLIT.split(str(item["tickers"])) if t]
    return item


def read_rows(path: Path) -> Iterator[object]:
    """The file's items (JSONL objects or CSV rows as dicts). Raises FileRejected."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileRejected(f"not UTF-8: {exc}") from exc
    if path.suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "id" not in reader.fieldnames:
            raise FileRejected(f"CSV header must include 'id', got {reader.fieldnames}")
        yield from (_csv_row(row) for row in reader)
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                yield json.loads(line)
            except (json.JSONDecodeError, RecursionError) as exc:
                yield _BadLine(number, str(exc))


@dataclass(frozen=True, slots=True)
class _BadLine:
    """A JSONL line that is not JSON; validation turns it into a ``not_json`` rejection."""

    line: int
    detail: str


class DropFolder:
    """Scans ``settings.dir`` every ``scan_interval_sec`` until stopped."""

    def __init__(
        self,
        settings: DropFolderSettings,
        producer: MessageSink,
        metrics: Metrics,
        board: SourceBoard,
        *,
        dictionary: TickerDictionary = EMPTY_DICTIONARY,
        limits: DecodeLimits = DEFAULT_LIMITS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.root = Path(settings.dir)
        self.producer = producer
        self.metrics = metrics
        self.board = board
        self.dictionary = dictionary
        self.limits = limits
        self.clock = clock
        self._sizes: dict[Path, tuple[int, int]] = {}
        board.register(settings.source_name, "dropfolder")
        for sub in ("done", "failed"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def run(self, stop: threading.Event) -> None:
        logger.info("drop folder %s", self.root)
        while not stop.is_set():
            self.scan()
            stop.wait(self.settings.scan_interval_sec)

    def ready_files(self) -> list[Path]:
        """Files whose size and mtime held still since the last scan, older than settle_sec."""
        now = self.clock()
        seen: dict[Path, tuple[int, int]] = {}
        ready = []
        for path in sorted(self.root.iterdir()):
            if path.name.startswith(".") or path.suffix not in SUFFIXES or not path.is_file():
                continue
            stat = path.stat()
            mark = (stat.st_size, stat.st_mtime_ns)
            seen[path] = mark
            settled = now - stat.st_mtime_ns / 1e9 >= self.settings.settle_sec
            if self._sizes.get(path) == mark and settled:
                ready.append(path)
        self._sizes = seen
        return ready

    def scan(self) -> list[FileOutcome]:
        """Handle every ready file; a file that fails to produce stays for the next scan."""
        outcomes = []
        for path in self.ready_files():
            try:
                outcome = self.process(path)
            except SourceError as exc:  # the broker: leave the file, try again next scan
                logger.warning("drop folder %s: %s; retrying later", path.name, exc)
                self.metrics.source_errors.labels(self.settings.source_name, exc.kind).inc()
                self.board.failure(self.settings.source_name, exc.kind)
                continue
            self._finish(outcome)
            outcomes.append(outcome)
        return outcomes

    def process(self, path: Path) -> FileOutcome:
        """Produce the valid rows of ``path``. Raises ProduceError (the file is left in place)."""
        if path.stat().st_size > self.settings.max_file_bytes:
            limit = self.settings.max_file_bytes
            return FileOutcome(path, 0, (), f"file over max_file_bytes ({limit})")
        try:
            rows = list(read_rows(path))
        except FileRejected as exc:
            return FileOutcome(path, 0, (), exc.detail)
        produced, rejected = 0, list[Rejected]()
        now = datetime.fromtimestamp(self.clock(), UTC)
        for start in range(0, len(rows), CHUNK_ROWS):
            chunk = rows[start : start + CHUNK_ROWS]
            valid, bad = split_valid(
                chunk,  # a _BadLine is not an object: rejected, then explained below
                now=now,
                default_source=self.settings.source_name,
                dictionary=self.dictionary,
                limits=self.limits,
                first_index=start,
            )
            self.producer.produce(valid)
            produced += len(valid)
            rejected.extend(_explain(bad, chunk, start))
        return FileOutcome(path, produced, tuple(rejected))

    def _finish(self, outcome: FileOutcome) -> None:
        name = self.settings.source_name
        target = self.root / ("done" if outcome.ok else "failed") / outcome.path.name
        if not outcome.ok:
            target.with_name(target.name + ".reason.json").write_text(
                json.dumps(_reason(outcome), indent=1), encoding="utf-8"
            )
        os.replace(outcome.path, target)
        self.metrics.dropfolder_files.labels("done" if outcome.ok else "failed").inc()
        if outcome.produced:
            self.metrics.source_items.labels(name, "new").inc(outcome.produced)
        if outcome.rejected:
            self.metrics.source_items.labels(name, "invalid").inc(len(outcome.rejected))
        if outcome.error:
            self.metrics.source_errors.labels(name, "malformed").inc()
            self.board.failure(name, "malformed")
        else:
            self.board.success(name)
        logger.info(
            "drop folder %s: %d produced, %d rejected -> %s",
            outcome.path.name,
            outcome.produced,
            len(outcome.rejected),
            target.parent.name,
        )


def _explain(bad: list[Rejected], chunk: list[object], start: int) -> Iterator[Rejected]:
    for rejection in bad:
        row = chunk[rejection.index - start]
        if isinstance(row, _BadLine):
            yield Rejected(rejection.index, "not_json", f"line {row.line}: {row.detail}")
        else:
            yield rejection


def _reason(outcome: FileOutcome) -> dict[str, Any]:
    return {
        "file": outcome.path.name,
        "error": outcome.error,
        "produced_rows": outcome.produced,
        "rejected_rows": len(outcome.rejected),
        "rejected": [r.to_dict() for r in outcome.rejected[:MAX_REJECTS_LISTED]],
        "note": "produced rows were delivered; fix and re-drop only the rejected rows",
    }
