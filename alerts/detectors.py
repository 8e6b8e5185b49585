"""Detectors: small pure objects that score the latest closed windows of one key.

Each detector holds an online baseline for one key. ``evaluate`` scores the newest windows
(oldest first, up to the lookback) without changing anything; ``learn`` folds a closed window
into the baseline, and the caller passes ``in_alert=True`` for windows that breach or belong to
an alert, so a spike never teaches the baseline that spikes are normal. Those windows go to a
shadow baseline instead, which ``rebase`` adopts when an alert has lasted so long that the level
is the new normal.

Both detectors pool the newest 1, 2, 3, 4, 6, ... windows up to ``lookback_windows`` and score
each span by its likelihood ratio against the baseline (:mod:`alerts.evidence`), so evidence
accumulates at thin volume. Counts are stories: repeats of a story already counted
(syndicated copies, see :mod:`alerts.stories`) are left out.

* :class:`NegativeShareSpike`: binomial GLR of the pooled negative count against the learned
  baseline share, divided by the learned extra window-to-window spread.
* :class:`VolumeSurge`: Poisson GLR of the pooled count against an hour-of-week seasonal
  expectation (:mod:`alerts.seasonal`), divided by a learned negative-binomial dispersion.

Detectors read plain closed windows (:class:`ClosedWindow`) and plain parameter objects; they
depend on no settings class and on no aggregator module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from alerts.evidence import (
    RunningTotals,
    Span,
    binomial_glr,
    poisson_glr,
    signed_root,
    spans_within,
)
from alerts.seasonal import SeasonalProfile, SeasonParams

NEGATIVE_SHARE_SPIKE = "negative_share_spike"
VOLUME_SURGE = "volume_surge"
RULES: tuple[str, ...] = (NEGATIVE_SHARE_SPIKE, VOLUME_SURGE)

# Floor on the share spread so a long run of identical windows never makes the score explode.
MIN_SPREAD = 0.005
# Floor on an expected count, so an empty hour never turns one item into a surge.
MIN_EXPECTED = 0.05
# A window this many standard deviations above its expected count teaches the baseline nothing.
ELEVATED_Z = 3.0
# Windows expecting fewer items say too little about overdispersion to learn from.
DISPERSION_MIN_EXPECTED = 5.0
# Spans the clear test looks at, at least: the newest 1..3 windows.
CLEAR_SPANS = 3


class ClosedWindow(Protocol):
    """What detectors and rules read of a closed window (``monitor.aggregate.windows``
    provides it): the key, the window's bounds in event-time milliseconds, its counts, and
    how many of its items repeat a story counted before (syndicated copies)."""

    @property
    def key_kind(self) -> str: ...

    @property
    def key(self) -> str: ...

    @property
    def start_ms(self) -> int: ...

    @property
    def end_ms(self) -> int: ...

    @property
    def volume(self) -> int: ...

    @property
    def negative(self) -> int: ...

    @property
    def repeats(self) -> int: ...

    @property
    def repeat_negative(self) -> int: ...


def stories(window: ClosedWindow) -> int:
    return window.volume - window.repeats


def negative_stories(window: ClosedWindow) -> int:
    return window.negative - window.repeat_negative


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One detector's verdict on the latest closed window of a key."""

    score: float
    value: float
    baseline: float
    volume: int
    breach: bool = False
    critical: bool = False
    clear: bool = True


QUIET = Evaluation(score=0.0, value=0.0, baseline=0.0, volume=0)


class Detector(Protocol):
    """What a rule needs from a detector; see the module docstring for the contract."""

    rule: str

    def evaluate(self, history: Sequence[ClosedWindow]) -> Evaluation: ...

    def learn(self, window: ClosedWindow, *, in_alert: bool) -> None: ...

    def rebase(self) -> None: ...

    def restart_evidence(self) -> None: ...

    def to_state(self) -> dict[str, Any]: ...

    def load_state(self, state: dict[str, Any]) -> None: ...


def _span_ends(spans: tuple[int, ...], previous: int) -> list[int]:
    """Span lengths (newest window included) that fit in the newest plus ``previous`` windows,
    ending with the longest one that fits."""
    ends = [k for k in spans if k <= previous]
    return ends if ends and ends[-1] == previous + 1 else [*ends, previous + 1]


def _decay(half_life_windows: float) -> float:
    return float(0.5 ** (1.0 / half_life_windows))


@dataclass(slots=True)
class _Best:
    """The strongest qualifying span, the strongest of any span, and the clear test's input:
    the span of the newest ``CLEAR_SPANS`` windows (or all there are, when fewer), whatever
    its volume: a quiet key, or a few ordinary items, clears an alert."""

    clear_windows: int
    span: Span | None = None
    any_z: float = 0.0
    clear_z: float = 0.0
    clear_ratio: float = 0.0

    def offer(
        self, span: tuple[int, float, float, float], *, qualifies: bool, ratio: float
    ) -> None:
        windows, z = span[0], span[3]
        self.any_z = max(self.any_z, z)
        if qualifies and (self.span is None or z > self.span.z):
            self.span = Span(*span)
        if windows == self.clear_windows:
            self.clear_z, self.clear_ratio = z, ratio


@dataclass(frozen=True, slots=True)
class SpikeParams:
    """Thresholds of :class:`NegativeShareSpike` (z scores on the standard-normal scale)."""

    lookback_windows: int = 60
    min_volume: int = 10
    z: float = 4.0
    critical_z: float = 8.0
    resolve_z: float = 1.5
    min_rise: float = 0.05
    min_share: float = 0.1
    prior_share: float = 0.2
    prior_items: float = 100.0
    prior_spread: float = 0.03
    half_life_windows: float = 60.0


class NegativeShareSpike:
    """Negative-share spike: pooled binomial evidence over a growing span (module docstring)."""

    rule = NEGATIVE_SHARE_SPIKE

    def __init__(self, params: SpikeParams) -> None:
        self.params = params
        self._lambda = _decay(params.half_life_windows)
        self._rate = 1.0 - self._lambda
        self._spans = spans_within(params.lookback_windows)
        self.neg_weight = params.prior_share * params.prior_items
        self.item_weight = params.prior_items
        self.spread2 = params.prior_spread**2
        self.learned_windows = 0
        self.shadow_neg = 0.0
        self.shadow_items = 0.0
        # Negative and item counts of the windows before the newest, for the pooled spans.
        self.totals = RunningTotals(params.lookback_windows, 2)

    @property
    def baseline(self) -> float:
        return self.neg_weight / self.item_weight

    @property
    def spread(self) -> float:
        return math.sqrt(self.spread2)

    def span_z(self, negative: float, items: float, windows: int) -> float:
        """Score of ``negative`` of ``items`` stories pooled over ``windows`` windows."""
        p0 = self.baseline
        # Beta-binomial variance inflation: the window-to-window spread averages over windows.
        dispersion = 1.0 + items / windows * self.spread2 / (p0 * (1.0 - p0))
        return signed_root(binomial_glr(negative, items, p0), dispersion)

    def evaluate(self, history: Sequence[ClosedWindow]) -> Evaluation:
        """Score the newest window of ``history`` together with the windows learned before it."""
        p = self.params
        p0 = self.baseline
        best = _Best(min(CLEAR_SPANS, self.totals.windows + 1))
        latest = history[-1] if history else None
        if latest is None:
            return Evaluation(0.0, 0.0, p0, 0)
        x0, n0 = negative_stories(latest), stories(latest)
        newest, totals = self.totals.bounds()
        for windows in _span_ends(self._spans, self.totals.windows):
            before = totals[windows - 1]
            x, n = x0 + newest[0] - before[0], n0 + newest[1] - before[1]
            if n == 0:
                continue
            rise = x / n - p0
            qualifies = n >= p.min_volume and x / n >= p.min_share and rise >= p.min_rise
            span = (windows, x, n, self.span_z(x, n, windows))
            best.offer(span, qualifies=qualifies, ratio=rise)
        return self._verdict(best, latest)

    def _verdict(self, best: _Best, latest: ClosedWindow) -> Evaluation:
        p = self.params
        clear = best.clear_z < p.resolve_z or best.clear_ratio < p.min_rise / 2
        if best.span is None:
            volume = stories(latest)
            share = negative_stories(latest) / volume if volume else 0.0
            return Evaluation(best.any_z, share, self.baseline, volume, clear=clear)
        span = best.span
        breach = span.z >= p.z
        return Evaluation(
            score=span.z,
            value=span.observed / span.reference,
            baseline=self.baseline,
            volume=int(span.reference),
            breach=breach,
            critical=breach and span.z >= p.critical_z,
            clear=clear,
        )

    def learn(self, window: ClosedWindow, *, in_alert: bool) -> None:
        negative, items = negative_stories(window), stories(window)
        self.totals.push((negative, items))
        if in_alert:
            self.shadow_neg += negative
            self.shadow_items += items
            return
        if items >= self.params.min_volume:
            p0 = self.baseline
            excess = (negative / items - p0) ** 2 - p0 * (1 - p0) / items
            self.spread2 += self._rate * (excess - self.spread2)
            self.spread2 = max(self.spread2, MIN_SPREAD**2)
        self.neg_weight = self._lambda * self.neg_weight + negative
        self.item_weight = self._lambda * self.item_weight + items
        self.learned_windows += 1
        self.shadow_neg = self.shadow_items = 0.0

    def restart_evidence(self) -> None:
        self.totals.restart()

    def rebase(self) -> None:
        if self.shadow_items > 0:
            self.neg_weight, self.item_weight = self.shadow_neg, self.shadow_items
        self.shadow_neg = self.shadow_items = 0.0

    def to_state(self) -> dict[str, Any]:
        return {
            "nw": self.neg_weight,
            "iw": self.item_weight,
            "s2": self.spread2,
            "n": self.learned_windows,
            "sn": self.shadow_neg,
            "si": self.shadow_items,
            "t": self.totals.to_state(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.neg_weight, self.item_weight = float(state["nw"]), float(state["iw"])
        self.spread2, self.learned_windows = float(state["s2"]), int(state["n"])
        self.shadow_neg, self.shadow_items = float(state["sn"]), float(state["si"])
        self.totals.load_state(state["t"])


@dataclass(frozen=True, slots=True)
class SurgeParams:
    """Thresholds of :class:`VolumeSurge` (``min_volume``: stories the best span needs)."""

    window_ms: int = 60_000
    lookback_windows: int = 60
    min_volume: int = 20
    z: float = 5.0
    min_ratio: float = 3.0
    critical_ratio: float = 6.0
    resolve_z: float = 1.5
    warmup_windows: int = 30
    half_life_windows: float = 30.0
    memory_weeks: float = 3.0
    prior_dispersion: float = 0.05
    max_dispersion: float = 4.0


class VolumeSurge:
    """Volume surge: pooled Poisson evidence against a seasonal expectation (module docstring)."""

    rule = VOLUME_SURGE

    def __init__(self, params: SurgeParams) -> None:
        self.params = params
        self._dispersion_rate = 1.0 - _decay(10 * params.half_life_windows)
        self._spans = spans_within(params.lookback_windows)
        self.season = SeasonalProfile(
            SeasonParams(
                window_ms=params.window_ms,
                memory_weeks=params.memory_weeks,
                level_half_life_windows=params.half_life_windows,
            )
        )
        self.dispersion = params.prior_dispersion
        self.learned_windows = 0
        self.shadow_ratio = 0.0
        self.shadow_windows = 0
        # Count, expected count and its square of the windows before the newest.
        self.totals = RunningTotals(params.lookback_windows, 3)

    def expected(self, start_ms: int) -> float:
        return max(self.season.expected(start_ms), MIN_EXPECTED)

    def evaluate(self, history: Sequence[ClosedWindow]) -> Evaluation:
        """Score the newest window of ``history`` together with the windows learned before it."""
        p = self.params
        best = _Best(min(CLEAR_SPANS, self.totals.windows + 1))
        latest = history[-1] if history else None
        if latest is None:
            return Evaluation(0.0, 0.0, 0.0, 0)
        c0, m0 = stories(latest), self.expected(latest.start_ms)
        newest, totals = self.totals.bounds()
        for windows in _span_ends(self._spans, self.totals.windows):
            before = totals[windows - 1]
            c, m = c0 + newest[0] - before[0], m0 + newest[1] - before[1]
            dispersion = 1.0 + self.dispersion * (m0 * m0 + newest[2] - before[2]) / m
            z = signed_root(poisson_glr(c, m), dispersion)
            qualifies = c >= p.min_volume and c >= p.min_ratio * m
            best.offer((windows, c, m, z), qualifies=qualifies, ratio=c / m)
        return self._verdict(best, latest)

    def _verdict(self, best: _Best, latest: ClosedWindow) -> Evaluation:
        p = self.params
        half_ratio = 1.0 + (p.min_ratio - 1.0) / 2
        clear = best.clear_z < p.resolve_z or best.clear_ratio < half_ratio
        if best.span is None:
            volume = stories(latest)
            base = self.expected(latest.start_ms)
            return Evaluation(best.any_z, float(volume), base, volume, clear=clear)
        span = best.span
        breach = self.learned_windows >= p.warmup_windows and span.z >= p.z
        return Evaluation(
            score=span.z,
            value=span.observed / span.windows,
            baseline=span.reference / span.windows,
            volume=int(span.observed),
            breach=breach,
            critical=breach and span.observed >= p.critical_ratio * span.reference,
            clear=clear,
        )

    def learn(self, window: ClosedWindow, *, in_alert: bool) -> None:
        """Fold a window in. Alert windows, and after the warm-up a window more than
        ``ELEVATED_Z`` above its expectation (the run-up of a surge, or a new seasonal peak),
        shape the hour-of-week profile (capped) but move neither the level nor the dispersion."""
        count, start = stories(window), window.start_ms
        mu = self.expected(start)
        self.totals.push((count, mu, mu * mu))
        residual2 = (count - mu) ** 2 / (mu * (1.0 + self.dispersion * mu))
        # Alert and elevated windows shape the profile with the count capped at min_ratio times
        # the expectation: a peak that recurs every day is learned within a cycle or two, while
        # a one-off surge moves its hour of the week by little.
        capped = min(count, self.params.min_ratio * mu)
        if in_alert:
            self.shadow_ratio += count / max(self.season.profile(start), MIN_EXPECTED)
            self.shadow_windows += 1
            self.season.learn(capped, start, level=False)
            return
        warm = self.learned_windows >= self.params.warmup_windows
        if warm and count > mu and residual2 > ELEVATED_Z**2:
            self.season.learn(capped, start, level=False)
            return
        if mu >= DISPERSION_MIN_EXPECTED and not self.season.is_outage(count, start):
            # Negative-binomial var = mu + a*mu^2, from the winsorised Pearson residual.
            excess = (min((count - mu) ** 2 / mu, ELEVATED_Z**2) - 1.0) / mu
            self.dispersion += self._dispersion_rate * (excess - self.dispersion)
            self.dispersion = min(max(self.dispersion, 0.0), self.params.max_dispersion)
        self.season.learn(count, start)
        self.learned_windows += 1
        self.shadow_ratio, self.shadow_windows = 0.0, 0

    def restart_evidence(self) -> None:
        self.totals.restart()

    def rebase(self) -> None:
        if self.shadow_windows:
            self.season.rebase(self.shadow_ratio / self.shadow_windows)
        self.shadow_ratio, self.shadow_windows = 0.0, 0

    def to_state(self) -> dict[str, Any]:
        return {
            "s": self.season.to_state(),
            "a": self.dispersion,
            "n": self.learned_windows,
            "sr": self.shadow_ratio,
            "sw": self.shadow_windows,
            "t": self.totals.to_state(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.season.load_state(state["s"])
        self.dispersion, self.learned_windows = float(state["a"]), int(state["n"])
        self.shadow_ratio, self.shadow_windows = float(state["sr"]), int(state["sw"])
        self.totals.load_state(state["t"])
