from __future__ import annotations

from alerts.detectors import NEGATIVE_SHARE_SPIKE
from alerts.events import AlertEvent, Status
from alerts.market import MarketView, apply_market_wide
from alerts.rules import RuleState

W = 60_000


def event(kind: str, key: str, status: Status, start: int) -> AlertEvent:
    return AlertEvent(
        rule=NEGATIVE_SHARE_SPIKE,
        key_kind=kind,
        key=key,
        status=status,
        severity="warning",
        window_start_ms=start * W,
        window_end_ms=(start + 1) * W,
        value=0.5,
        baseline=0.2,
        score=6.0,
        volume=100,
        summary=f"{kind} {key}",
        at_ms=start * W,
    )


def view(up: tuple[str, ...], topics: int = 4) -> MarketView:
    return MarketView(overall_hot_starts=[10 * W], topics_up=up, topics=topics, window_ms=W)


def test_topic_alerts_of_a_broad_move_fold_into_the_overall_alert() -> None:
    states = {t: RuleState() for t in "abcd"}
    events = [event("overall", "all", "firing", 10)] + [
        event("topic", t, "firing", 10) for t in "abc"
    ]
    out = apply_market_wide(events, view(("a", "b", "c")), states, RuleState(), "suppress")
    assert [(e.key_kind, e.key) for e in out] == [("overall", "all")]
    assert "3 of 4 topics up (a, b, c)" in out[0].summary
    resolved = [event("topic", "a", "resolved", 20)]
    assert apply_market_wide(resolved, view(()), states, RuleState(), "suppress") == []


def test_two_unrelated_spikes_stay_two_alerts_and_annotate_keeps_all() -> None:
    states = {t: RuleState() for t in "abcd"}
    events = [event("topic", t, "firing", 10) for t in "ab"]
    assert apply_market_wide(events, view(("a", "b")), states, RuleState(), "suppress") == events
    broad = [event("topic", t, "firing", 10) for t in "abc"]
    kept = apply_market_wide(broad, view(("a", "b", "c")), states, RuleState(), "annotate")
    assert len(kept) == 3 and all("market-wide" in e.summary for e in kept)


def test_an_overall_alert_of_one_topic_is_its_duplicate() -> None:
    overall = RuleState()
    events = [event("overall", "all", "firing", 10), event("topic", "a", "firing", 10)]
    out = apply_market_wide(events, view(("a",)), {"a": RuleState()}, overall, "suppress")
    assert [e.key_kind for e in out] == ["topic"]
    later = [event("overall", "all", "resolved", 20)]
    assert apply_market_wide(later, view(()), {"a": RuleState()}, overall, "suppress") == []
