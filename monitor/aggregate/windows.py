"""Event-time tumbling windows: pure arithmetic over integer milliseconds, and what a window holds.

A window ``[start_ms, end_ms)`` closes once the watermark reaches ``end_ms``. The accumulator
follows the ``initialize / agg / result`` shape: it never knows which window or key it serves.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

from monitor.classify.text import dedup_key
from monitor.signals import Headline

KEY_KINDS: tuple[str, ...] = ("topic", "ticker", "overall")
OVERALL_KEY = "all"

KeyId = tuple[str, str]  # (key_kind, key)


def window_start(event_ms: int, window_ms: int) -> int:
    """Start of the tumbling window holding ``event_ms`` (floor, correct for negative times)."""
    return event_ms - event_ms % window_ms


def window_end(event_ms: int, window_ms: int) -> int:
    """Exclusive end of the tumbling window holding ``event_ms``."""
    return window_start(event_ms, window_ms) + window_ms


def is_closed(start_ms: int, window_ms: int, watermark_ms: int) -> bool:
    """A window is closed once the watermark has reached its end."""
    return start_ms + window_ms <= watermark_ms


@dataclass(frozen=True, slots=True)
class WindowStats:
    """What one closed window of one key held. Counts are items; ``mean_score`` is in [-1, 1]."""

    key_kind: str
    key: str
    start_ms: int
    end_ms: int
    volume: int = 0
    negative: int = 0
    neutral: int = 0
    positive: int = 0
    mean_score: float = 0.0
    headlines: tuple[Headline, ...] = ()
    # Items that repeat a story already counted (syndicated copies), and the negative ones.
    repeats: int = 0
    repeat_negative: int = 0

    @property
    def negative_share(self) -> float:
        return self.negative / self.volume if self.volume else 0.0


def confidence(sentiment_score: float, negative_prob: float) -> float:
    """Probability of the most likely sentiment, from ``p_pos - p_neg`` and ``p_neg``."""
    positive = min(1.0, max(0.0, sentiment_score + negative_prob))
    neutral = max(0.0, 1.0 - positive - negative_prob)
    return max(negative_prob, positive, neutral)


@dataclass(slots=True)
class WindowAccumulator:
    """Mutable per-window aggregate; keeps only the ``top_n`` most negative headlines."""

    top_n: int = 5
    counts: dict[str, int] = field(default_factory=dict)
    weighted_score: float = 0.0
    weight: float = 0.0
    # Min-heap of (negative_prob, id, headline, published_at_ms): the root is evicted first.
    top: list[tuple[float, str, str, int]] = field(default_factory=list)
    # Items that repeat an earlier story (alerts.stories), all and negative ones.
    repeats: int = 0
    repeat_negative: int = 0

    def add(
        self,
        sentiment: str,
        score: float,
        negative_prob: float,
        head: Headline,
        *,
        repeat: bool = False,
    ) -> None:
        """Count one item; a repeat of an earlier story is counted but never listed."""
        self.counts[sentiment] = self.counts.get(sentiment, 0) + 1
        if repeat:
            self.repeats += 1
            self.repeat_negative += sentiment == "negative"
        conf = confidence(score, negative_prob)
        self.weighted_score += conf * score
        self.weight += conf
        if self.top_n <= 0 or repeat:
            return
        self._keep((negative_prob, head.id, head.headline, head.published_at_ms))

    def _keep(self, entry: tuple[float, str, str, int]) -> None:
        if len(self.top) < self.top_n:
            heapq.heappush(self.top, entry)
        elif entry > self.top[0]:
            heapq.heapreplace(self.top, entry)

    def merge(self, other: WindowAccumulator) -> None:
        """Add another accumulator of the same key and window (a partial from another
        partition): counts and sums add, the top headlines are the top of both."""
        for sentiment, count in other.counts.items():
            self.counts[sentiment] = self.counts.get(sentiment, 0) + count
        self.weighted_score += other.weighted_score
        self.weight += other.weight
        self.repeats += other.repeats
        self.repeat_negative += other.repeat_negative
        if self.top_n > 0:
            for entry in other.top:
                self._keep(entry)

    @property
    def volume(self) -> int:
        return sum(self.counts.values())

    def result(self, key: KeyId, start_ms: int, end_ms: int) -> WindowStats:
        volume = sum(self.counts.values())
        return WindowStats(
            key_kind=key[0],
            key=key[1],
            start_ms=start_ms,
            end_ms=end_ms,
            volume=volume,
            negative=self.counts.get("negative", 0),
            neutral=self.counts.get("neutral", 0),
            positive=self.counts.get("positive", 0),
            mean_score=self.weighted_score / self.weight if self.weight > 0 else 0.0,
            headlines=top_headlines([self.top], self.top_n),
            repeats=self.repeats,
            repeat_negative=self.repeat_negative,
        )

    def to_state(self) -> dict[str, Any]:
        return {
            "c": self.counts,
            "ws": self.weighted_score,
            "w": self.weight,
            "top": [list(t) for t in self.top],
            "r": [self.repeats, self.repeat_negative],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], top_n: int) -> WindowAccumulator:
        top = [(float(t[0]), str(t[1]), str(t[2]), int(t[3])) for t in state["top"]]
        heapq.heapify(top)
        return cls(
            top_n=top_n,
            counts={str(k): int(v) for k, v in state["c"].items()},
            weighted_score=float(state["ws"]),
            weight=float(state["w"]),
            top=top,
            repeats=int(state.get("r", (0, 0))[0]),
            repeat_negative=int(state.get("r", (0, 0))[1]),
        )


def top_headlines(
    groups: list[list[tuple[float, str, str, int]]], limit: int
) -> tuple[Headline, ...]:
    """The ``limit`` most negative entries over several heaps, most negative first.

    Repeats are dropped by id and by normalised text (syndicated copies of one story).
    """
    merged = sorted((e for g in groups for e in g), key=lambda e: (-e[0], e[3], e[1]))
    unique: dict[str, Headline] = {}
    seen_ids: set[str] = set()
    for prob, item_id, text, at_ms in merged:
        key = dedup_key(text)
        if item_id in seen_ids or key in unique or len(unique) >= limit:
            continue
        seen_ids.add(item_id)
        unique[key] = Headline(item_id, text, prob, at_ms)
    return tuple(unique.values())


def headline_entries(heads: tuple[Headline, ...]) -> list[tuple[float, str, str, int]]:
    return [(h.negative_prob, h.id, h.headline, h.published_at_ms) for h in heads]
