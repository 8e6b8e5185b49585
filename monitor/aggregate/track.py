"""The windows and detectors of one key (a topic, a ticker, or the overall stream).

A track holds its open windows (several at once while out-of-order items arrive within the allowed
lateness), the last K closed windows the detectors evaluate, and one :class:`alerts.rules.Watch`
per rule. It closes its windows in order, empty ones included, so a quiet key still resolves its
alerts and still teaches the volume baseline what quiet looks like.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from alerts.events import AlertEvent, Headline
from alerts.rules import Watch
from monitor.aggregate.windows import (
    KeyId,
    WindowAccumulator,
    WindowStats,
    headline_entries,
    top_headlines,
    window_start,
)


@dataclass
class KeyTrack:
    """Per-key window state. Not thread-safe: the aggregator owns it."""

    key: KeyId
    window_ms: int
    evaluation_windows: int
    top_n: int
    watches: dict[str, Watch]
    next_start_ms: int
    open: dict[int, WindowAccumulator] = field(default_factory=dict)
    history: deque[WindowStats] = field(default_factory=deque)
    empty_run: int = 0
    # Windows the detectors look back over (their headlines are kept for the newest
    # evaluation_windows only); 0: evaluation_windows.
    history_windows: int = 0

    def add(
        self,
        event_ms: int,
        sentiment: str,
        score: float,
        neg_prob: float,
        head: Headline,
        *,
        repeat: bool = False,
    ) -> None:
        start = window_start(event_ms, self.window_ms)
        self.next_start_ms = min(self.next_start_ms, start)
        acc = self.open.get(start)
        if acc is None:
            acc = self.open[start] = WindowAccumulator(top_n=self.top_n)
        acc.add(sentiment, score, neg_prob, head, repeat=repeat)

    def merge(self, start_ms: int, partial: WindowAccumulator) -> None:
        """Merge a partial aggregate of the window starting at ``start_ms`` (two-stage path)."""
        self.next_start_ms = min(self.next_start_ms, start_ms)
        acc = self.open.get(start_ms)
        if acc is None:
            acc = self.open[start_ms] = WindowAccumulator(top_n=self.top_n)
        acc.merge(partial)

    @property
    def active(self) -> bool:
        return any(w.state.active for w in self.watches.values())

    @property
    def last(self) -> WindowStats | None:
        return self.history[-1] if self.history else None

    def close_until(
        self, watermark_ms: int, max_fill: int, now_ms: int
    ) -> tuple[list[WindowStats], list[AlertEvent]]:
        """Close every window whose end is at or before ``watermark_ms``, oldest first.

        After ``max_fill`` consecutive empty windows the rest of a quiet gap is skipped (the
        history is cleared), which bounds the work a long outage can cause.
        """
        closed: list[WindowStats] = []
        events: list[AlertEvent] = []
        while self.next_start_ms + self.window_ms <= watermark_ms:
            start = self.next_start_ms
            acc = self.open.pop(start, None)
            if acc is None and self.empty_run >= max_fill:
                self._skip_gap(watermark_ms)
                continue
            self.empty_run = 0 if acc is not None else self.empty_run + 1
            stats = (acc or WindowAccumulator(top_n=0)).result(
                self.key, start, start + self.window_ms
            )
            closed.append(stats)
            events.extend(self.evaluate_window(stats, now_ms))
            self.next_start_ms = start + self.window_ms
        return closed, events

    def _skip_gap(self, watermark_ms: int) -> None:
        resume = window_start(watermark_ms, self.window_ms)
        self.next_start_ms = min([resume, *self.open])
        self.history.clear()

    def evaluate_window(self, stats: WindowStats, now_ms: int) -> list[AlertEvent]:
        """Run every rule on a closed window (the close path, and window-level backtests)."""
        self.history.append(stats)
        while len(self.history) > max(self.history_windows, self.evaluation_windows):
            self.history.popleft()
        if len(self.history) > self.evaluation_windows:
            old = -self.evaluation_windows - 1
            if self.history[old].headlines:
                self.history[old] = replace(self.history[old], headlines=())
        heads = self.headlines()
        events = []
        for watch in self.watches.values():
            event = watch.on_window(self.history, heads, now_ms)
            if event is not None:
                events.append(event)
        return events

    def headlines(self) -> tuple[Headline, ...]:
        """The most negative headlines of the evaluated windows."""
        recent = list(self.history)[-self.evaluation_windows :]
        return top_headlines([headline_entries(w.headlines) for w in recent], self.top_n)

    def to_state(self) -> dict[str, Any]:
        return {
            "next": self.next_start_ms,
            "empty": self.empty_run,
            "open": {str(s): acc.to_state() for s, acc in self.open.items()},
            "history": [_stats_state(w) for w in self.history],
            "watches": {
                rule: {"d": w.detector.to_state(), "r": w.state.to_state()}
                for rule, w in self.watches.items()
            },
        }

    def load_state(self, state: dict[str, Any]) -> None:
        from alerts.rules import RuleState

        self.next_start_ms, self.empty_run = int(state["next"]), int(state["empty"])
        self.open = {
            int(s): WindowAccumulator.from_state(acc, self.top_n)
            for s, acc in state["open"].items()
        }
        self.history = deque(_stats_from_state(self.key, w) for w in state["history"])
        for rule, saved in state["watches"].items():
            watch = self.watches.get(rule)
            if watch is not None:
                watch.detector.load_state(saved["d"])
                watch.state = RuleState.from_state(saved["r"])


def _stats_state(w: WindowStats) -> list[Any]:
    return [
        w.start_ms,
        w.end_ms,
        w.volume,
        w.negative,
        w.neutral,
        w.positive,
        w.mean_score,
        [list(e) for e in headline_entries(w.headlines)],
        w.repeats,
        w.repeat_negative,
    ]


def _stats_from_state(key: KeyId, s: list[Any]) -> WindowStats:
    heads = tuple(Headline(str(h[1]), str(h[2]), float(h[0]), int(h[3])) for h in s[7])
    return WindowStats(
        key_kind=key[0],
        key=key[1],
        start_ms=int(s[0]),
        end_ms=int(s[1]),
        volume=int(s[2]),
        negative=int(s[3]),
        neutral=int(s[4]),
        positive=int(s[5]),
        mean_score=float(s[6]),
        headlines=heads,
        repeats=int(s[8]) if len(s) > 8 else 0,
        repeat_negative=int(s[9]) if len(s) > 9 else 0,
    )
