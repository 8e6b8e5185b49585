from __future__ import annotations

from alerts.detectors import Evaluation, NegativeShareSpike, SpikeParams
from alerts.rules import AlertPolicy, RuleState, Watch
from monitor.aggregate.windows import WindowStats

W = 60_000


def window(index: int, volume: int = 0, negative: int = 0) -> WindowStats:
    return WindowStats(
        "topic", "Macro", index * W, (index + 1) * W, volume=volume, negative=negative
    )


BREACH = Evaluation(score=6, value=0.6, baseline=0.2, volume=100, breach=True, clear=False)
CRITICAL = Evaluation(
    score=12, value=0.9, baseline=0.2, volume=100, breach=True, critical=True, clear=False
)
ELEVATED = Evaluation(score=2.5, value=0.3, baseline=0.2, volume=100, clear=False)
NORMAL = Evaluation(score=0.1, value=0.2, baseline=0.2, volume=100)


def run(
    state: RuleState, policy: AlertPolicy, evals: list[Evaluation], first: int = 0
) -> list[str | None]:
    return [state.step(ev, window(first + i), policy) for i, ev in enumerate(evals)]


def test_fires_after_n_consecutive_breaches_only() -> None:
    policy = AlertPolicy(consecutive_windows=2)
    state = RuleState()
    assert run(state, policy, [BREACH, NORMAL, BREACH, BREACH]) == [None, None, None, "firing"]
    assert state.active and state.fired_start_ms == 3 * W and state.severity == "warning"


def test_hysteresis_keeps_firing_while_elevated() -> None:
    policy = AlertPolicy(consecutive_windows=1, resolve_windows=2)
    state = RuleState()
    steps = run(state, policy, [BREACH, ELEVATED, ELEVATED, NORMAL, ELEVATED, NORMAL, NORMAL])
    assert steps == ["firing", None, None, None, None, None, "resolved"]


def test_cooldown_suppresses_refiring_then_allows_it() -> None:
    policy = AlertPolicy(consecutive_windows=1, resolve_windows=1, cooldown_ms=3 * W)
    state = RuleState()
    steps = run(state, policy, [BREACH, NORMAL, BREACH, BREACH, BREACH, BREACH])
    # resolved at window 1 (ends 2W): quiet until 5W, so the breach at window 5 fires
    assert steps == ["firing", "resolved", None, None, None, "firing"]


def test_severity_is_critical_when_the_firing_window_is() -> None:
    state = RuleState()
    run(state, AlertPolicy(consecutive_windows=1), [CRITICAL])
    assert state.severity == "critical"


def test_watch_emits_events_with_headlines_and_rebases_after_max_duration() -> None:
    policy = AlertPolicy(consecutive_windows=1, resolve_windows=2, max_alert_windows=5)
    watch = Watch(NegativeShareSpike(SpikeParams()), policy, RuleState())
    history: list[WindowStats] = []
    events = []
    for i in range(12):
        history = [*history, window(i, 100, 60)][-3:]  # a lasting 60 % level
        event = watch.on_window(history, (), now_ms=i)
        if event is not None:
            events.append(event)
    assert [e.status for e in events] == ["firing", "resolved"]
    assert events[1].window_end_ms == 5 * W  # after 5 alert windows
    assert events[0].idempotency_key == events[1].idempotency_key
    detector = watch.detector
    assert isinstance(detector, NegativeShareSpike) and abs(detector.baseline - 0.6) < 0.01


def test_rule_state_round_trip() -> None:
    state = RuleState()
    run(state, AlertPolicy(consecutive_windows=1), [CRITICAL, ELEVATED])
    assert RuleState.from_state(state.to_state()) == state
