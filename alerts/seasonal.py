"""Hour-of-week seasonal profile of a count, learned online, with a multiplicative level.

The expected count of a window is ``level * profile(slot)``:

* ``profile`` is the mean count per window in the window's hour of the week (168 slots), shrunk
  towards the same hour of the day (24 slots) while a slot has few observations, and that towards
  the overall mean. A new series thus starts from its overall mean, learns a daily shape within a
  day and a weekly one (weekends) within a week.
* ``level`` is an exponentially weighted ratio of recent counts to the profile, so a holiday or a
  slow trend scales the expectation without being written into the profile: the profile learns
  ``count / level``, the de-levelled count.

Gaps: a window with no items where the expectation is at least ``outage_expected`` items is
taken for a feed outage, not a quiet hour, and teaches nothing (the Poisson probability of zero
there is below ``exp(-outage_expected)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

HOUR_MS = 3_600_000
WEEK_SLOTS = 168
DAY_SLOTS = 24
LEVEL_BOUNDS = (0.1, 10.0)


@dataclass(frozen=True, slots=True)
class SeasonParams:
    """How fast the profile and the level learn (``window_ms`` sets windows per hour)."""

    window_ms: int = 60_000
    memory_weeks: float = 3.0
    level_half_life_windows: float = 120.0
    outage_expected: float = 5.0


class SeasonalProfile:
    """Expected count per window by hour of week (see module docstring). Pure, no clock."""

    def __init__(self, params: SeasonParams) -> None:
        self.params = params
        per_hour = max(1.0, HOUR_MS / params.window_ms)
        # A slot's own mean outweighs the broader one once it holds an hour of windows.
        self._shrink = per_hour
        # A slot is a running mean until it holds memory_weeks of windows, then an EW mean.
        self._min_rate = 1.0 / (per_hour * params.memory_weeks)
        self._level_rate = 1.0 - 0.5 ** (1.0 / params.level_half_life_windows)
        self.week = [0.0] * WEEK_SLOTS
        self.week_n = [0.0] * WEEK_SLOTS
        self.day = [0.0] * DAY_SLOTS
        self.day_n = [0.0] * DAY_SLOTS
        self.mean = 0.0
        self.mean_n = 0.0
        self.level = 1.0

    @staticmethod
    def slots(start_ms: int) -> tuple[int, int]:
        hour = start_ms // HOUR_MS
        return hour % WEEK_SLOTS, hour % DAY_SLOTS

    def profile(self, start_ms: int) -> float:
        """The de-levelled expected count of the window starting at ``start_ms``."""
        w, d = self.slots(start_ms)
        day = _shrink(self.day[d], self.day_n[d], self.mean, self._shrink)
        return _shrink(self.week[w], self.week_n[w], day, self._shrink)

    def expected(self, start_ms: int) -> float:
        return self.level * self.profile(start_ms)

    def is_outage(self, count: float, start_ms: int) -> bool:
        return (
            count == 0
            and self.mean_n > 0
            and self.expected(start_ms) >= (self.params.outage_expected)
        )

    def learn(self, count: float, start_ms: int, *, level: bool = True) -> None:
        """Fold one window's count in. ``level=False``: a suspect window (in or near an alert)
        that moves the profile at the slow, settled rate only, and never the level."""
        if self.is_outage(count, start_ms):
            return
        if level and self.mean_n > 0:
            ratio = (count + 0.5) / (self.profile(start_ms) + 0.5)
            ratio = min(max(ratio, LEVEL_BOUNDS[0]), LEVEL_BOUNDS[1])
            self.level += self._level_rate * (ratio - self.level)
            self.level = min(max(self.level, LEVEL_BOUNDS[0]), LEVEL_BOUNDS[1])
        base = count / self.level
        w, d = self.slots(start_ms)
        if not level:
            cap = 1.0 / self._min_rate
            for slot, counts, i in ((self.day, self.day_n, d), (self.week, self.week_n, w)):
                if counts[i] == 0:
                    slot[i] = self.profile(start_ms)  # start from what was expected
                slot[i] += self._min_rate * (base - slot[i])
                counts[i] = min(counts[i] + 1.0, cap)
            return
        self.mean, self.mean_n = self._update(self.mean, self.mean_n, base, self._min_rate / 24)
        self.day[d], self.day_n[d] = self._update(self.day[d], self.day_n[d], base, self._min_rate)
        self.week[w], self.week_n[w] = self._update(
            self.week[w], self.week_n[w], base, self._min_rate
        )

    @staticmethod
    def _update(mean: float, n: float, value: float, min_rate: float) -> tuple[float, float]:
        rate = max(1.0 / (n + 1.0), min_rate)
        return mean + rate * (value - mean), min(n + 1.0, 1.0 / min_rate)

    def rebase(self, ratio: float) -> None:
        """Adopt ``ratio`` (mean count over profile during a long alert) as the level."""
        self.level = min(max(ratio, LEVEL_BOUNDS[0]), LEVEL_BOUNDS[1])

    def to_state(self) -> dict[str, Any]:
        return {
            "w": self.week,
            "wn": self.week_n,
            "d": self.day,
            "dn": self.day_n,
            "m": self.mean,
            "mn": self.mean_n,
            "l": self.level,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.week = [float(v) for v in state["w"]]
        self.week_n = [float(v) for v in state["wn"]]
        self.day = [float(v) for v in state["d"]]
        self.day_n = [float(v) for v in state["dn"]]
        self.mean, self.mean_n = float(state["m"]), float(state["mn"])
        self.level = float(state["l"])


def _shrink(value: float, n: float, prior: float, weight: float) -> float:
    """``value`` seen ``n`` times, shrunk towards ``prior`` (seen ``weight`` times)."""
    return (n * value + weight * prior) / (n + weight)
