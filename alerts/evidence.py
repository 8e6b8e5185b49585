"""Evidence pooled over a growing span of recent windows: likelihood-ratio scores for counts.

A detector looks back from the newest closed window over spans of 1, 2, 3, 4, 6, ... windows, up
to a bounded lookback, and scores each span by the generalised likelihood ratio (GLR) of its
pooled counts against the learned baseline:

* binomial (negative count ``x`` of ``n`` items, baseline share ``p0``):
  ``G = n * KL(x/n || p0)`` when ``x/n > p0``, else 0;
* Poisson (count ``c`` against the expected count ``m``): ``G = c*ln(c/m) - (c - m)`` when
  ``c > m``, else 0.

``G`` is divided by a dispersion factor ``phi >= 1`` (the variance beyond the count model that
the detector learned from past windows), and reported on the standard-normal scale as the signed
root ``z = sqrt(2 G / phi)``. By the Chernoff bound, under the baseline ``P(z >= z0) <=
exp(-z0**2 / 2)`` for one span, so a threshold ``z0`` over ``S`` spans per window breaches in at
most ``S * exp(-z0**2 / 2)`` of quiet windows (see docs/detection.md for what that means per
week). Thin volume therefore accumulates: a long span of a few items a minute carries as much
evidence as one busy minute, while a single item never does (``x = n = 1`` gives ``G = -ln p0``).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

# Span lengths tried, in windows (geometric, so the work per window stays small).
SPAN_WINDOWS: tuple[int, ...] = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 45, 60, 90, 120)


def spans_within(lookback_windows: int) -> tuple[int, ...]:
    """The span lengths up to ``lookback_windows`` (always ending with the lookback itself)."""
    spans = tuple(s for s in SPAN_WINDOWS if s < lookback_windows)
    return (*spans, lookback_windows)


def binomial_glr(negative: float, items: float, p0: float) -> float:
    """``items * KL(negative/items || p0)`` for an upward shift, else 0 (nats)."""
    if items <= 0 or negative <= p0 * items or not 0.0 < p0 < 1.0:
        return 0.0
    share = negative / items
    g = negative * math.log(share / p0)
    if share < 1.0:
        g += (items - negative) * math.log((1.0 - share) / (1.0 - p0))
    return g


def poisson_glr(count: float, expected: float) -> float:
    """Poisson log-likelihood ratio of ``count`` against ``expected``, upward shifts only."""
    if count <= expected or expected <= 0:
        return 0.0
    return count * math.log(count / expected) - (count - expected)


def signed_root(glr: float, dispersion: float = 1.0) -> float:
    """The GLR on the standard-normal scale, after dividing by the dispersion factor."""
    return math.sqrt(2.0 * max(glr, 0.0) / max(dispersion, 1.0))


@dataclass(frozen=True, slots=True)
class Span:
    """The pooled counts of the newest ``windows`` windows and their score.

    ``observed`` is the negative count (share rule) or the item count (volume rule);
    ``reference`` is the item count (share rule) or the expected item count (volume rule).
    """

    windows: int
    observed: float
    reference: float
    z: float


class RunningTotals:
    """Running totals of a few quantities over the newest ``capacity`` windows, so the sum of
    any newest ``k`` windows costs one subtraction. Bounded: ``capacity + 1`` entries."""

    def __init__(self, capacity: int, width: int) -> None:
        self.capacity = capacity
        self.width = width
        self._cum: deque[tuple[float, ...]] = deque([(0.0,) * width], maxlen=capacity + 1)

    def push(self, values: tuple[float, ...]) -> None:
        last = self._cum[-1]
        self._cum.append(tuple(a + b for a, b in zip(last, values, strict=True)))

    @property
    def windows(self) -> int:
        """How many pushed windows the sums can reach back over."""
        return len(self._cum) - 1

    def sums(self, k: int) -> tuple[float, ...]:
        """Totals of the newest ``k`` pushed windows (``0 <= k <= windows``)."""
        newest, before = self._cum[-1], self._cum[-1 - k]
        return tuple(a - b for a, b in zip(newest, before, strict=True))

    def bounds(self) -> tuple[tuple[float, ...], list[tuple[float, ...]]]:
        """The newest running total and all of them, newest first: ``sums(k)`` is
        ``newest - totals[k]`` (for callers that take many sums at once)."""
        return self._cum[-1], list(reversed(self._cum))

    def restart(self) -> None:
        """Forget the windows pushed so far: spans start afresh from the next one."""
        self._cum = deque([self._cum[-1]], maxlen=self.capacity + 1)

    def to_state(self) -> list[list[float]]:
        return [list(c) for c in self._cum]

    def load_state(self, state: list[list[float]]) -> None:
        self._cum = deque((tuple(float(v) for v in c) for c in state), maxlen=self.capacity + 1)
