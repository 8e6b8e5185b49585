"""Backtest: run the aggregator and detectors over a recorded stream, list what would have fired.

Two inputs (CSV, JSONL or Parquet, chosen by file suffix):

* scored records: ``published_at``, ``topic``, ``sentiment`` (negative/neutral/positive, or
  bearish/bullish), optional ``tickers`` (list or ``,``/``;``-separated), ``id``, ``headline``,
  ``negative_prob``. Records are counted in event-time order with the clock at each event time.
* a plain ``timestamp,value`` series (counts per interval): each row is one window of the
  ``series`` key, the window width is the median interval, and only the volume rule applies;
  with ``values`` (``finmon backtest --values``), the two-sided value rule of
  :mod:`alerts.values` instead, for series that are not counts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pandas as pd

from alerts.detectors import VOLUME_SURGE
from alerts.events import AlertEvent
from alerts.values import ValueParams, ValueShift
from monitor.aggregate.engine import Aggregator, new_track
from monitor.aggregate.windows import KeyId, WindowStats
from monitor.contract import ScoredItem
from monitor.errors import FinMonError
from monitor.settings import AggregateSettings

SENTIMENT_ALIASES = {"bearish": "negative", "bullish": "positive"}
SERIES_KEY: KeyId = ("topic", "series")


class BacktestInputError(FinMonError):
    """The backtest input cannot be read or lacks a column; fix the file and run again."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"cannot backtest {path!r}: {problem}")


@dataclass(frozen=True, slots=True)
class AlertSpan:
    """One alert from firing to resolved (``end_ms`` None: still firing at the end of input)."""

    rule: str
    key_kind: str
    key: str
    severity: str
    start_ms: int
    end_ms: int | None
    peak_score: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "key_kind": self.key_kind,
            "key": self.key,
            "severity": self.severity,
            "start": _iso(self.start_ms),
            "end": _iso(self.end_ms) if self.end_ms is not None else None,
            "peak_score": round(self.peak_score, 3),
        }


@dataclass
class BacktestResult:
    """Alerts, the per-window series and baselines (for plots), and counting totals."""

    spans: list[AlertSpan]
    events: list[AlertEvent]
    series: dict[KeyId, list[tuple[int, float, float]]] = field(default_factory=dict)
    window_ms: int = 60_000
    items: int = 0
    late_items: int = 0
    mode: str = "records"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def read_frame(path: Path) -> pd.DataFrame:
    """Load CSV, JSONL (``.jsonl``/``.ndjson``/``.json``) or Parquet into a DataFrame."""
    if not path.is_file():
        raise BacktestInputError(str(path), "file not found")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".jsonl", ".ndjson", ".json"):
            return pd.read_json(path, lines=True)
        return pd.read_csv(path)
    except (ValueError, OSError, ImportError) as exc:
        raise BacktestInputError(str(path), f"unreadable ({exc})") from exc


def is_value_series(frame: pd.DataFrame) -> bool:
    columns = {str(c).lower() for c in frame.columns}
    return {"timestamp", "value"} <= columns and "sentiment" not in columns


def run_backtest(
    path: Path, settings: AggregateSettings, *, values: bool = False
) -> BacktestResult:
    """Read ``path`` and run the matching mode (see the module docstring); ``values``: a
    ``timestamp,value`` series goes through the value rule instead of the count rule."""
    frame = read_frame(path)
    if is_value_series(frame):
        return backtest_values(frame) if values else backtest_series(frame, settings)
    return backtest_records(records_from_frame(frame, str(path)), settings)


def times_ms(values: pd.Series, path: str, column: str) -> list[int]:
    try:
        stamps = pd.to_datetime(values, utc=True, format="mixed")
    except (ValueError, TypeError) as exc:
        raise BacktestInputError(path, f"column {column!r} is not a timestamp ({exc})") from exc
    return [int(t.value // 1_000_000) for t in stamps]


def _tickers(raw: object) -> tuple[str, ...]:
    if hasattr(raw, "tolist"):
        raw = raw.tolist()
    if isinstance(raw, str):
        parts = raw.replace(";", ",").split(",")
    elif isinstance(raw, list | tuple):
        parts = [str(p) for p in raw]
    else:
        return ()
    return tuple(dict.fromkeys(p.strip().upper().lstrip("$") for p in parts if p.strip()))


def records_from_frame(frame: pd.DataFrame, path: str = "<frame>") -> list[ScoredItem]:
    """Scored items from a records frame, sorted by event time."""
    missing = {"published_at", "topic", "sentiment"} - set(frame.columns)
    if missing:
        raise BacktestInputError(path, f"missing column(s) {sorted(missing)}")
    times = times_ms(frame["published_at"], path, "published_at")
    items = []
    for row, (event_ms, record) in enumerate(zip(times, frame.to_dict("records"), strict=True)):
        sentiment = str(record["sentiment"]).strip().lower()
        sentiment = SENTIMENT_ALIASES.get(sentiment, sentiment)
        if sentiment not in ("negative", "neutral", "positive"):
            raise BacktestInputError(path, f"row {row}: unknown sentiment {sentiment!r}")
        neg = record.get("negative_prob")
        neg_prob = float(sentiment == "negative") if neg is None or pd.isna(neg) else float(neg)
        moment = datetime.fromtimestamp(event_ms / 1000, UTC)
        items.append(
            ScoredItem(
                id=str(record.get("id", row)),
                headline=str(record.get("headline") or "")[:500],
                topic=str(record["topic"]),
                sentiment=sentiment,
                sentiment_score=-neg_prob if sentiment == "negative" else 0.0,
                negative_prob=neg_prob,
                published_at=moment,
                ingested_at=moment,
                tickers=_tickers(record.get("tickers")),
            )
        )
    items.sort(key=lambda i: i.published_at)
    return items


def backtest_records(items: Sequence[ScoredItem], settings: AggregateSettings) -> BacktestResult:
    """Count items in event-time order (clock = event time) and collect the transitions."""
    result = BacktestResult(spans=[], events=[], window_ms=settings.window_ms)
    late: list[int] = []
    agg = Aggregator(settings, on_late=lambda _i, t: late.append(t))
    closed_through: int | None = None
    for item in items:
        now_ms = int(item.published_at.timestamp() * 1000)
        agg.add(item, now_ms)
        # Windows only close when the watermark enters a new window: advance just then.
        boundary = None if agg.watermark_ms is None else agg.watermark_ms // settings.window_ms
        if boundary != closed_through:
            closed_through = boundary
            result.events += agg.advance(now_ms)
            _sample(agg, result)
    if items:
        flush = int(items[-1].published_at.timestamp() * 1000) + settings.allowed_lateness_ms
        flush += settings.idle_close_ms + 2 * settings.window_ms + 1
        result.events += agg.advance(flush)
        _sample(agg, result)
    result.items, result.late_items = len(items), len(late)
    result.spans = spans(result.events)
    return result


def _sample(agg: Aggregator, result: BacktestResult) -> None:
    """Record each key's newest closed window: (start_ms, negative share, baseline)."""
    for key, track in agg.tracks.items():
        last = track.last
        points = result.series.setdefault(key, [])
        if last is None or (points and points[-1][0] >= last.start_ms):
            continue
        spike = track.watches["negative_share_spike"].last
        points.append((last.start_ms, last.negative_share, spike.baseline if spike else 0.0))


def backtest_series(frame: pd.DataFrame, settings: AggregateSettings) -> BacktestResult:
    """Volume rule over a ``timestamp,value`` series, one row per window."""
    columns = {str(c).lower(): c for c in frame.columns}
    times = times_ms(frame[columns["timestamp"]], "<series>", "timestamp")
    # Counts: negative values (some public series have them) count as zero.
    values = [max(0, round(float(v))) for v in frame[columns["value"]]]
    pairs = sorted(zip(times, values, strict=True))
    gaps = sorted(b[0] - a[0] for a, b in pairwise(pairs) if b[0] > a[0])
    window_ms = max(1, gaps[len(gaps) // 2]) if gaps else settings.window_ms
    tuned = settings.model_copy(update={"window_ms": window_ms})
    track = new_track(tuned, SERIES_KEY, pairs[0][0] if pairs else 0, top_headlines=0)
    result = BacktestResult(spans=[], events=[], window_ms=window_ms, mode="series")
    points = result.series.setdefault(SERIES_KEY, [])
    for start, value in pairs:
        stats = WindowStats(*SERIES_KEY, start, start + window_ms, volume=value, neutral=value)
        result.events += [
            e for e in track.evaluate_window(stats, start + window_ms) if e.rule == VOLUME_SURGE
        ]
        surge = track.watches[VOLUME_SURGE].last
        points.append((start, float(value), surge.baseline if surge else 0.0))
    result.items = sum(values)
    result.spans = spans(result.events)
    return result


VALUE_SHIFT = "value_shift"


def backtest_values(frame: pd.DataFrame, params: ValueParams | None = None) -> BacktestResult:
    """The value rule (:mod:`alerts.values`, two sided) over a ``timestamp,value`` series,
    sampled at its median interval (``params.window_ms`` is replaced by it). Each alert is a
    span from the firing point to the end of its cooldown."""
    columns = {str(c).lower(): c for c in frame.columns}
    times = times_ms(frame[columns["timestamp"]], "<series>", "timestamp")
    pairs = sorted(zip(times, (float(v) for v in frame[columns["value"]]), strict=True))
    gaps = sorted(b[0] - a[0] for a, b in pairwise(pairs) if b[0] > a[0])
    base = params or ValueParams()
    step_ms = max(1, gaps[len(gaps) // 2]) if gaps else base.window_ms
    rule = ValueShift(replace(base, window_ms=step_ms))
    result = BacktestResult(spans=[], events=[], window_ms=step_ms, mode="values")
    points = result.series.setdefault(SERIES_KEY, [])
    for start, value in pairs:
        if not math.isfinite(value):
            continue
        if rule.step(start, value):
            result.spans.append(
                AlertSpan(
                    VALUE_SHIFT,
                    *SERIES_KEY,
                    "warning",
                    start,
                    rule.cooldown_until_ms,
                    rule.last_z,
                )
            )
        points.append((start, value, 0.0))
    result.items = len(points)
    return result


def value_series_alerts(frame: pd.DataFrame, params: ValueParams | None = None) -> list[int]:
    """Firing times (ms) of :func:`backtest_values`."""
    return [span.start_ms for span in backtest_values(frame, params).spans]


def spans(events: Sequence[AlertEvent]) -> list[AlertSpan]:
    """Pair firing and resolved events into spans, in firing order."""
    out: list[AlertSpan] = []
    open_spans: dict[str, int] = {}
    for event in events:
        if event.status == "firing":
            open_spans[event.idempotency_key] = len(out)
            out.append(
                AlertSpan(
                    event.rule,
                    event.key_kind,
                    event.key,
                    event.severity,
                    event.window_start_ms,
                    None,
                    event.score,
                )
            )
        elif event.idempotency_key in open_spans:
            index = open_spans.pop(event.idempotency_key)
            span = out[index]
            out[index] = AlertSpan(
                span.rule,
                span.key_kind,
                span.key,
                span.severity,
                span.start_ms,
                event.window_end_ms,
                max(span.peak_score, event.score),
            )
    return out


def format_table(result: BacktestResult) -> str:
    """Human-readable list of alert spans and a summary line."""
    lines = [f"{'start':<25} {'end':<25} {'rule':<21} {'key':<28} {'severity':<9} peak"]
    for s in result.spans:
        end = _iso(s.end_ms) if s.end_ms is not None else "(firing)"
        key = f"{s.key_kind}={s.key}"
        lines.append(
            f"{_iso(s.start_ms):<25} {end:<25} {s.rule:<21} {key:<28} "
            f"{s.severity:<9} {s.peak_score:.1f}"
        )
    lines.append(
        f"{len(result.spans)} alert(s); {result.items} items, "
        f"{result.late_items} late, window {result.window_ms} ms"
    )
    return "\n".join(lines)


def format_json(result: BacktestResult) -> str:
    """One JSON object per alert span, one per line."""
    return "\n".join(json.dumps(s.to_dict(), sort_keys=True) for s in result.spans)
