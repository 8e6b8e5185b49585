"""Detectors: small pure objects that score the latest closed windows of one key.

Each detector holds an online baseline for one key. ``evaluate`` scores the latest windows without
changing anything; ``learn`` folds a closed window into the baseline, and the caller passes
``in_alert=True`` for windows that breach or belong to an alert, so a spike never teaches the
baseline that spikes are normal. Those windows go to a shadow baseline instead, which ``rebase``
adopts when an alert has lasted so long that the level is the new normal.

* :class:`NegativeShareSpike`: the negative share pooled over the last 1..K windows, scored against
  the baseline share on the arcsine square-root scale, where binomial noise for the pooled volume
  is ``1/(4n)`` whatever the share, plus the learned window-to-window spread (so 3 negatives of
  4 items is a small score, not a spike). The score is the best over the K pooled spans.
* :class:`VolumeSurge`: the window's item count against an exponentially weighted mean and
  variance of past counts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

NEGATIVE_SHARE_SPIKE = "negative_share_spike"
VOLUME_SURGE = "volume_surge"
RULES: tuple[str, ...] = (NEGATIVE_SHARE_SPIKE, VOLUME_SURGE)

# Floor on the share spread so a long run of identical windows never makes the score explode.
MIN_SPREAD = 0.005


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


class ClosedWindow(Protocol):
    """What detectors and rules read of a closed window (``monitor.aggregate.windows``
    provides it): the key, the window's bounds in event-time milliseconds, its counts."""

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
    def negative_share(self) -> float: ...


class Detector(Protocol):
    """What a rule needs from a detector; see the module docstring for the contract."""

    rule: str

    def evaluate(self, history: Sequence[ClosedWindow]) -> Evaluation: ...

    def learn(self, window: ClosedWindow, *, in_alert: bool) -> None: ...

    def rebase(self) -> None: ...

    def to_state(self) -> dict[str, Any]: ...

    def load_state(self, state: dict[str, Any]) -> None: ...


def _decay(half_life_windows: float) -> float:
    return float(0.5 ** (1.0 / half_life_windows))


@dataclass(frozen=True, slots=True)
class SpikeParams:
    """Thresholds of :class:`NegativeShareSpike` (z scores are in standard deviations)."""

    evaluation_windows: int = 3
    min_volume: int = 20
    z: float = 3.75
    critical_z: float = 8.0
    resolve_z: float = 1.5
    min_rise: float = 0.05
    min_share: float = 0.1
    prior_share: float = 0.2
    prior_items: float = 100.0
    prior_spread: float = 0.03
    half_life_windows: float = 60.0


class NegativeShareSpike:
    """Binomial-aware negative-share spike score with an online baseline (see module docstring)."""

    rule = NEGATIVE_SHARE_SPIKE

    def __init__(self, params: SpikeParams) -> None:
        self.params = params
        self._lambda = _decay(params.half_life_windows)
        self._rate = 1.0 - self._lambda
        self.neg_weight = params.prior_share * params.prior_items
        self.item_weight = params.prior_items
        self.spread2 = params.prior_spread**2
        self.learned_windows = 0
        self.shadow_neg = 0.0
        self.shadow_items = 0.0

    @property
    def baseline(self) -> float:
        return self.neg_weight / self.item_weight

    @property
    def spread(self) -> float:
        return math.sqrt(self.spread2)

    def pooled_z(self, negative: int, volume: int, windows: int) -> float:
        """Score of ``negative`` of ``volume`` items pooled over ``windows`` windows."""
        p0 = self.baseline
        # Arcsine square-root scale: binomial noise is ~1/(4n) there whatever the share, so
        # a low-share topic's skewed upper tail is not mistaken for a spike.
        var = 1.0 / (4.0 * volume) + self.spread2 / (4.0 * p0 * (1.0 - p0) * windows)
        lift = math.asin(math.sqrt(negative / volume)) - math.asin(math.sqrt(p0))
        return lift / math.sqrt(var)

    def evaluate(self, history: Sequence[ClosedWindow]) -> Evaluation:
        p = self.params
        best: tuple[float, float, int] | None = None
        negative = volume = 0
        for windows, stats in enumerate(reversed(list(history)[-p.evaluation_windows :]), 1):
            negative += stats.negative
            volume += stats.volume
            if volume < p.min_volume:
                continue
            z = self.pooled_z(negative, volume, windows)
            if best is None or z > best[0]:
                best = (z, negative / volume, volume)
        if best is None:
            return Evaluation(score=0.0, value=0.0, baseline=self.baseline, volume=volume)
        z, share, pooled = best
        rise = share - self.baseline
        breach = z >= p.z and rise >= p.min_rise and share >= p.min_share
        return Evaluation(
            score=z,
            value=share,
            baseline=self.baseline,
            volume=pooled,
            breach=breach,
            critical=breach and z >= p.critical_z,
            clear=z < p.resolve_z or rise < p.min_rise / 2,
        )

    def learn(self, window: ClosedWindow, *, in_alert: bool) -> None:
        if in_alert:
            self.shadow_neg += window.negative
            self.shadow_items += window.volume
            return
        if window.volume >= self.params.min_volume:
            p0 = self.baseline
            excess = (window.negative_share - p0) ** 2 - p0 * (1 - p0) / window.volume
            self.spread2 += self._rate * (excess - self.spread2)
            self.spread2 = max(self.spread2, MIN_SPREAD**2)
        self.neg_weight = self._lambda * self.neg_weight + window.negative
        self.item_weight = self._lambda * self.item_weight + window.volume
        self.learned_windows += 1
        self.shadow_neg = self.shadow_items = 0.0

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
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.neg_weight, self.item_weight = float(state["nw"]), float(state["iw"])
        self.spread2, self.learned_windows = float(state["s2"]), int(state["n"])
        self.shadow_neg, self.shadow_items = float(state["sn"]), float(state["si"])


@dataclass(frozen=True, slots=True)
class SurgeParams:
    """Thresholds of :class:`VolumeSurge`."""

    min_volume: int = 20
    z: float = 5.0
    min_ratio: float = 3.0
    critical_ratio: float = 6.0
    resolve_z: float = 1.5
    warmup_windows: int = 30
    half_life_windows: float = 30.0


class VolumeSurge:
    """Item count of the latest window against an EW mean and variance of past counts."""

    rule = VOLUME_SURGE

    def __init__(self, params: SurgeParams) -> None:
        self.params = params
        self._rate = 1.0 - _decay(params.half_life_windows)
        self.mean = 0.0
        self.var = 0.0
        self.learned_windows = 0
        self.shadow_sum = 0.0
        self.shadow_windows = 0

    def evaluate(self, history: Sequence[ClosedWindow]) -> Evaluation:
        p = self.params
        volume = history[-1].volume if history else 0
        # Poisson noise at least: var >= mean, and >= 1 so an empty past is not infinitely quiet.
        z = (volume - self.mean) / math.sqrt(max(self.var, self.mean, 1.0))
        breach = (
            self.learned_windows >= p.warmup_windows
            and volume >= p.min_volume
            and volume >= p.min_ratio * self.mean
            and z >= p.z
        )
        half_ratio = 1.0 + (p.min_ratio - 1.0) / 2
        return Evaluation(
            score=z,
            value=float(volume),
            baseline=self.mean,
            volume=volume,
            breach=breach,
            critical=breach and volume >= p.critical_ratio * self.mean,
            clear=z < p.resolve_z or volume < half_ratio * self.mean,
        )

    def learn(self, window: ClosedWindow, *, in_alert: bool) -> None:
        if in_alert:
            self.shadow_sum += window.volume
            self.shadow_windows += 1
            return
        delta = window.volume - self.mean
        if self.learned_windows == 0:
            self.mean = float(window.volume)
        else:
            self.mean += self._rate * delta
            self.var = (1.0 - self._rate) * (self.var + self._rate * delta * delta)
        self.learned_windows += 1
        self.shadow_sum, self.shadow_windows = 0.0, 0

    def rebase(self) -> None:
        if self.shadow_windows:
            self.mean = self.shadow_sum / self.shadow_windows
        self.shadow_sum, self.shadow_windows = 0.0, 0

    def to_state(self) -> dict[str, Any]:
        return {
            "m": self.mean,
            "v": self.var,
            "n": self.learned_windows,
            "ss": self.shadow_sum,
            "sw": self.shadow_windows,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.mean, self.var = float(state["m"]), float(state["v"])
        self.learned_windows = int(state["n"])
        self.shadow_sum, self.shadow_windows = float(state["ss"]), int(state["sw"])
