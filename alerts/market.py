"""Market-wide moves: one alert when every topic's negative share rises together.

The overall key pools every topic, so a broad sell-off makes its negative-share spike breach
too. A move is market-wide when the overall key breaches or alerts (in the same window or up to
``lag_windows`` before) while at least ``MIN_TOPICS`` topics, and at least ``MIN_FRACTION`` of
all topics, breach or alert (so two unrelated spikes that overlap by chance stay two alerts).
A topic's spike alert that fires then is part of that one event:

* ``suppress`` (default): the topic's firing and resolved transitions are held back (neither a
  webhook nor ``finmon_alerts_active``, so Alertmanager sees one alert too), and the overall
  alert's summary names the topics that rose.
  Conversely, an overall alert raised by a single topic whose own alert is active is held back
  as that topic's duplicate.
* ``annotate``: every alert is sent; a topic's summary says it is part of a market-wide move.

See docs/detection.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from alerts.detectors import NEGATIVE_SHARE_SPIKE
from alerts.events import AlertEvent
from alerts.rules import RuleState

MarketMode = Literal["suppress", "annotate"]
# Topics that must be up together, with the overall key, for a market-wide move.
MIN_TOPICS = 3
MIN_FRACTION = 0.5


@dataclass(frozen=True, slots=True)
class MarketView:
    """The overall key's recent hot windows and which topics are up now."""

    overall_hot_starts: Sequence[int]
    topics_up: tuple[str, ...]
    topics: int
    window_ms: int
    lag_windows: int = 2

    def overall_hot(self, start_ms: int) -> bool:
        earliest = start_ms - self.lag_windows * self.window_ms
        return any(earliest <= t <= start_ms for t in self.overall_hot_starts)

    def market_wide(self, start_ms: int) -> bool:
        up = len(self.topics_up)
        broad = up >= MIN_TOPICS and up >= MIN_FRACTION * self.topics
        return broad and self.overall_hot(start_ms)


def apply_market_wide(
    events: Sequence[AlertEvent],
    view: MarketView,
    topic_states: Mapping[str, RuleState],
    overall_state: RuleState,
    mode: MarketMode,
) -> list[AlertEvent]:
    """The events to send: topic spike alerts of a market-wide move suppressed or annotated,
    the overall spike's firing summary naming the topics that rose."""
    out: list[AlertEvent] = []
    for event in events:
        if event.rule != NEGATIVE_SHARE_SPIKE:
            out.append(event)
        elif event.key_kind == "overall":
            kept = _overall_event(event, view, overall_state, mode)
            if kept is not None:
                out.append(kept)
        elif event.key_kind == "topic" and event.key in topic_states:
            kept = _topic_event(event, view, topic_states[event.key], mode)
            if kept is not None:
                out.append(kept)
        else:
            out.append(event)
    return out


def _topic_event(
    event: AlertEvent, view: MarketView, state: RuleState, mode: MarketMode
) -> AlertEvent | None:
    if event.status == "firing":
        state.muted = view.market_wide(event.window_end_ms - view.window_ms)
    muted = state.muted
    if event.status == "resolved":
        state.muted = False
    if not muted:
        return event
    if mode == "suppress":
        return None
    return replace(event, summary=f"{event.summary}; part of a market-wide move (overall key up)")


def _overall_event(
    event: AlertEvent, view: MarketView, state: RuleState, mode: MarketMode
) -> AlertEvent | None:
    if event.status == "firing":
        state.muted = mode == "suppress" and len(view.topics_up) == 1
    muted = state.muted
    if event.status == "resolved":
        state.muted = False
        return None if muted else event
    return None if muted else _name_topics(event, view)


def _name_topics(event: AlertEvent, view: MarketView) -> AlertEvent:
    if len(view.topics_up) < MIN_TOPICS:
        return event
    names = ", ".join(view.topics_up[:8]) + (", ..." if len(view.topics_up) > 8 else "")
    summary = (
        f"{event.summary}; market-wide: {len(view.topics_up)} of {view.topics} topics up ({names})"
    )
    return replace(event, summary=summary)
