"""Synthetic news streams with known spikes, to measure the detectors.

Per topic and window: expected volume follows a day/night curve (night ``night_ratio`` of the day
level, weekends ``weekend_ratio`` of a weekday), the count is Poisson, the true negative share is
the topic's base share plus a slow daily drift plus independent window-to-window spread, and
negatives are binomial. Injected spikes raise the share by ``sigmas`` standard deviations of the
window share *at that window's expected volume* (binomial noise plus spread), for ``duration``
windows; volume surges multiply the count. Further injections, each its own ``kind``:

* ``ramp``: the share rises slowly by ``ramp_rise`` over ``ramp_windows`` and falls back (a
  drift the baseline should follow: alerts there are false alarms);
* ``syndication``: one negative story copied by ``syndication_copies`` outlets within
  ``syndication_windows`` (the copies are counted as repeats, as the story index marks them);
* ``market``: every topic's share rises together by ``market_sigmas`` (a broad move).

:func:`expand_items` turns window counts into scored items with random event times, arrival
jitter (out-of-order) and a fraction of items delayed past the allowed lateness.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from monitor.contract import ScoredItem

DAY_MS = 86_400_000
MARKET_KEY = "*"  # the topic of a market-wide injection: every topic


@dataclass(frozen=True, slots=True)
class ScenarioSpec:
    """What to simulate. Presets: :data:`FLAT_WEEK`, :data:`DIURNAL_WEEK`."""

    days: float = 7.0
    window_ms: int = 60_000
    topics: int = 10
    day_volume: float = 200.0
    night_ratio: float = 1.0
    base_share: tuple[float, float] = (0.1, 0.35)
    spread: float = 0.02
    drift: float = 0.03
    spikes_per_day: float = 2.0
    spike_sigmas: tuple[float, float] = (3.0, 6.0)
    spike_windows: tuple[int, int] = (3, 10)
    surges_per_day: float = 0.5
    surge_factor: tuple[float, float] = (4.0, 8.0)
    weekend_ratio: float = 1.0
    ramps_per_day: float = 0.0
    ramp_rise: float = 0.1
    ramp_windows: int = 720
    syndication_per_day: float = 0.0
    syndication_copies: int = 30
    syndication_windows: int = 5
    market_per_day: float = 0.0
    market_sigmas: tuple[float, float] = (4.0, 8.0)
    market_windows: tuple[int, int] = (10, 30)
    warmup_windows: int = 120
    start_ms: int = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a Thursday midnight
    seed: int = 0

    @property
    def windows(self) -> int:
        return int(self.days * DAY_MS // self.window_ms)


FLAT_WEEK = ScenarioSpec()
DIURNAL_WEEK = ScenarioSpec(night_ratio=1 / 20)


@dataclass(frozen=True, slots=True)
class Injection:
    """A known anomaly: ``kind`` is ``spike`` (negative share) or ``surge`` (volume)."""

    kind: str
    topic: str
    start_ms: int
    end_ms: int
    size: float


@dataclass(frozen=True, slots=True)
class WindowCount:
    start_ms: int
    volume: int
    negative: int
    repeats: int = 0  # items (all negative here) that repeat a story counted before
    copies: int = 0  # syndicated copies among the items (the first of a burst is not a repeat)


@dataclass
class Scenario:
    spec: ScenarioSpec
    series: dict[str, list[WindowCount]] = field(default_factory=dict)
    injections: list[Injection] = field(default_factory=list)


def expected_volume(spec: ScenarioSpec, t_ms: int) -> float:
    """Smooth day/night curve: day level at 14:00 UTC, ``night_ratio`` of it at 02:00;
    Saturdays and Sundays at ``weekend_ratio`` of that."""
    phase = 2 * math.pi * ((t_ms % DAY_MS) / DAY_MS - 14 / 24)
    level = (1 + math.cos(phase)) / 2  # 1 at 14:00, 0 at 02:00
    shaped = level**2  # long quiet nights, a broad afternoon
    weekday = (t_ms // DAY_MS + 3) % 7  # 1970-01-01 was a Thursday: 0 is Monday
    scale = spec.weekend_ratio if weekday >= 5 else 1.0
    return scale * spec.day_volume * (spec.night_ratio + (1 - spec.night_ratio) * shaped)


def share_sigma(share: float, volume: float, spread: float) -> float:
    """Standard deviation of a window's negative share at that expected volume."""
    return math.sqrt(share * (1 - share) / max(volume, 1.0) + spread**2)


def _poisson(rng: random.Random, lam: float) -> int:
    if lam > 50:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    threshold, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= threshold:
            return k
        k += 1


def _binomial(rng: random.Random, n: int, p: float) -> int:
    if n > 100:
        mean, sd = n * p, math.sqrt(n * p * (1 - p))
        return min(n, max(0, round(rng.gauss(mean, sd))))
    return sum(1 for _ in range(n) if rng.random() < p)


def _place(
    rng: random.Random,
    spec: ScenarioSpec,
    per_day: float,
    lengths: tuple[int, int],
    taken: list[tuple[int, int]],
) -> list[tuple[int, int]]:
    """Non-overlapping [first, last) window ranges, 5 windows apart from each other."""
    count = round(per_day * spec.days)
    placed: list[tuple[int, int]] = []
    for _ in range(count * 20):
        if len(placed) == count:
            break
        length = rng.randint(*lengths)
        first = rng.randrange(spec.warmup_windows, spec.windows - length - 5)
        span = (first - 5, first + length + 5)
        if all(span[1] <= a or span[0] >= b for a, b in taken + placed):
            placed.append((first, first + length))
    return placed


def generate(spec: ScenarioSpec) -> Scenario:
    """Window counts per topic and the injected anomalies (deterministic for a seed)."""
    rng = random.Random(spec.seed)
    scenario = Scenario(spec)
    market = _place(rng, spec, spec.market_per_day, spec.market_windows, [])
    market_size = {first: rng.uniform(*spec.market_sigmas) for first, _ in market}
    market_sigmas = _active(market, market_size, spec.windows)
    for t in range(spec.topics):
        topic = f"topic-{t:02d}"
        base = rng.uniform(*spec.base_share)
        phase = rng.uniform(0, 2 * math.pi)
        plan = _plan_topic(rng, spec, market)
        counts = []
        for w in range(spec.windows):
            start = spec.start_ms + w * spec.window_ms
            lam = expected_volume(spec, start)
            day = 2 * math.pi * (start % DAY_MS) / DAY_MS
            share = base + spec.drift * math.sin(day + phase) + plan.ramp[w]
            sigmas = plan.sigmas[w] or market_sigmas[w]
            if sigmas:
                share += sigmas * share_sigma(share, lam, spec.spread)
            share = min(0.98, max(0.0, share + rng.gauss(0, spec.spread)))
            volume = _poisson(rng, lam * (plan.factors[w] or 1.0))
            negative = _binomial(rng, volume, share)
            copies = plan.copies[w]
            counts.append(
                WindowCount(start, volume + copies, negative + copies, plan.repeats[w], copies)
            )
        scenario.series[topic] = counts
        scenario.injections += plan.injections(spec, topic)
    scenario.injections += [
        Injection(
            "market",
            MARKET_KEY,
            spec.start_ms + first * spec.window_ms,
            spec.start_ms + last * spec.window_ms,
            round(market_size[first], 3),
        )
        for first, last in market
    ]
    return scenario


@dataclass
class _TopicPlan:
    """What is injected into one topic: per-window sigmas, factors, ramp, syndicated copies."""

    ranges: dict[str, list[tuple[int, int]]]
    sizes: dict[str, dict[int, float]]
    sigmas: list[float]
    factors: list[float]
    ramp: list[float]
    copies: list[int]
    repeats: list[int]

    def injections(self, spec: ScenarioSpec, topic: str) -> list[Injection]:
        return [
            Injection(
                kind,
                topic,
                spec.start_ms + first * spec.window_ms,
                spec.start_ms + last * spec.window_ms,
                round(self.sizes[kind][first], 3),
            )
            for kind, ranges in self.ranges.items()
            for first, last in ranges
        ]


def _plan_topic(
    rng: random.Random, spec: ScenarioSpec, market: list[tuple[int, int]]
) -> _TopicPlan:
    spikes = _place(rng, spec, spec.spikes_per_day, spec.spike_windows, market)
    surges = _place(rng, spec, spec.surges_per_day, (3, 6), spikes + market)
    taken = spikes + surges + market
    ramps = _place(rng, spec, spec.ramps_per_day, (spec.ramp_windows,) * 2, taken)
    taken += ramps
    bursts = _place(rng, spec, spec.syndication_per_day, (spec.syndication_windows,) * 2, taken)
    sizes = {
        "spike": {first: rng.uniform(*spec.spike_sigmas) for first, _ in spikes},
        "surge": {first: rng.uniform(*spec.surge_factor) for first, _ in surges},
        "ramp": {first: spec.ramp_rise for first, _ in ramps},
        "syndication": {first: float(spec.syndication_copies) for first, _ in bursts},
    }
    ramp = [0.0] * spec.windows
    for first, last in ramps:
        for w in range(first, last):
            ramp[w] = spec.ramp_rise * (1 - abs(2 * (w - first) / (last - first) - 1))
    copies, repeats = [0] * spec.windows, [0] * spec.windows
    for first, last in bursts:
        for c in range(spec.syndication_copies):
            w = first + c * (last - first) // spec.syndication_copies
            copies[w] += 1
            repeats[w] += c > 0  # the first copy is the story, the rest repeat it
    ranges = {"spike": spikes, "surge": surges, "ramp": ramps, "syndication": bursts}
    return _TopicPlan(
        ranges={k: v for k, v in ranges.items() if v},
        sizes=sizes,
        sigmas=_active(spikes, sizes["spike"], spec.windows),
        factors=_active(surges, sizes["surge"], spec.windows),
        ramp=ramp,
        copies=copies,
        repeats=repeats,
    )


def _active(ranges: list[tuple[int, int]], sizes: dict[int, float], windows: int) -> list[float]:
    values = [0.0] * windows
    for first, last in ranges:
        for w in range(first, last):
            values[w] = sizes[first]
    return values


@dataclass(frozen=True, slots=True)
class Delivery:
    """How items reach the aggregator: jitter (out of order) and a share delayed too long."""

    jitter_ms: int = 10_000
    late_fraction: float = 0.005
    late_delay_ms: int = 180_000
    seed: int = 1


def expand_items(
    scenario: Scenario, delivery: Delivery | None = None
) -> Iterator[tuple[int, ScoredItem]]:
    """``(arrival_ms, item)`` pairs in arrival order, windows kept in step with each other."""
    delivery = delivery or Delivery()
    rng = random.Random(delivery.seed)
    spec = scenario.spec
    pending: list[tuple[int, ScoredItem]] = []
    bursts: dict[str, int] = {}
    for w in range(spec.windows):
        start = spec.start_ms + w * spec.window_ms
        for topic, series in scenario.series.items():
            count = series[w]
            if count.copies > count.repeats:
                bursts[topic] = w  # a burst starts: its first copy is in this window
            for i in range(count.volume):
                event_ms = start + rng.randrange(spec.window_ms)
                delay = rng.randrange(delivery.jitter_ms + 1)
                if rng.random() < delivery.late_fraction:
                    delay += delivery.late_delay_ms
                item_id = f"{topic}-{w}-{i}"
                # Copies come first (they are negative); then the window's own items.
                copy_of = bursts.get(topic) if i < count.copies else None
                item = _item(item_id, topic, event_ms, i < count.negative, copy_of)
                pending.append((event_ms + delay, item))
        horizon = start + spec.window_ms
        pending.sort(key=lambda p: p[0])
        ready = [p for p in pending if p[0] < horizon]
        pending = [p for p in pending if p[0] >= horizon]
        yield from ready
    yield from sorted(pending, key=lambda p: p[0])


def headline_text(item_id: str, topic: str, copy_of: int | None = None) -> str:
    """A distinct headline per item (six pseudo-words from its id), or for a syndicated copy the
    burst's one story with an outlet tag, as wire copies look."""
    if copy_of is not None:
        outlet = hashlib.blake2b(item_id.encode(), digest_size=2).hexdigest()
        return f"{topic} lender {copy_of} halts withdrawals after probe - Outlet {outlet}"
    digest = hashlib.blake2b(item_id.encode(), digest_size=12).digest()
    words = [f"w{int.from_bytes(digest[k : k + 2]) % 4096}" for k in range(0, 12, 2)]
    return f"{topic}: " + " ".join(words)


def _item(
    item_id: str, topic: str, event_ms: int, negative: bool, copy_of: int | None = None
) -> ScoredItem:
    moment = datetime.fromtimestamp(event_ms / 1000, UTC)
    prob = 0.85 if negative else 0.05
    return ScoredItem(
        id=item_id,
        headline=headline_text(item_id, topic, copy_of),
        topic=topic,
        sentiment="negative" if negative else "neutral",
        sentiment_score=-0.8 if negative else 0.05,
        negative_prob=prob,
        published_at=moment,
        ingested_at=moment,
        tickers=(),
    )
