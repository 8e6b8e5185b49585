"""Alert rules: turn a detector's per-window verdicts into firing and resolved transitions.

A rule fires after ``consecutive_windows`` breaching windows (not during the cooldown that follows
a resolve), resolves with hysteresis after ``resolve_windows`` windows below the detector's clear
level, and carries a severity (critical when the firing window is critical). An alert that lasts
``max_alert_windows`` windows resolves and the detector adopts the level as its new baseline.
All times are window boundaries in event time, so replays give the same transitions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from alerts.detectors import ClosedWindow, Detector, Evaluation
from alerts.events import AlertEvent, Headline, Severity, Status

HOT_WINDOWS = 8


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    """When a rule fires and resolves (windows are counts of closed windows)."""

    consecutive_windows: int = 2
    resolve_windows: int = 2
    cooldown_ms: int = 900_000
    max_alert_windows: int = 180
    key_kinds: tuple[str, ...] = ("topic", "ticker", "overall")


@dataclass(slots=True)
class RuleState:
    """The state machine of one rule for one key."""

    active: bool = False
    severity: Severity = "warning"
    fired_start_ms: int = 0
    breach_run: int = 0
    clear_run: int = 0
    active_windows: int = 0
    peak_score: float = 0.0
    cooldown_until_ms: int = 0
    # Starts of the newest windows that breached or belonged to an alert (market-wide checks).
    hot_starts: list[int] = field(default_factory=list)
    # The current alert was held back as part of a market-wide move (alerts.market).
    muted: bool = False

    def step(self, ev: Evaluation, window: ClosedWindow, policy: AlertPolicy) -> Status | None:
        """Advance by one closed window; return the transition it causes, if any."""
        if ev.breach or self.active:
            self.hot_starts = [*self.hot_starts[-(HOT_WINDOWS - 1) :], window.start_ms]
        if not self.active:
            self.breach_run = self.breach_run + 1 if ev.breach else 0
            cooled = window.start_ms >= self.cooldown_until_ms
            if self.breach_run >= policy.consecutive_windows and cooled:
                self._fire(ev, window)
                return "firing"
            return None
        self.active_windows += 1
        self.peak_score = max(self.peak_score, ev.score)
        self.clear_run = self.clear_run + 1 if ev.clear else 0
        if self.clear_run >= policy.resolve_windows or self.active_windows >= (
            policy.max_alert_windows
        ):
            self._resolve(window, policy)
            return "resolved"
        return None

    def _fire(self, ev: Evaluation, window: ClosedWindow) -> None:
        self.active, self.fired_start_ms = True, window.start_ms
        self.severity = "critical" if ev.critical else "warning"
        self.breach_run = self.clear_run = 0
        self.active_windows, self.peak_score = 1, ev.score

    def _resolve(self, window: ClosedWindow, policy: AlertPolicy) -> None:
        self.active = False
        self.cooldown_until_ms = window.end_ms + policy.cooldown_ms
        self.breach_run = self.clear_run = 0

    def to_state(self) -> dict[str, Any]:
        return {
            "a": self.active,
            "sev": self.severity,
            "f": self.fired_start_ms,
            "br": self.breach_run,
            "cr": self.clear_run,
            "aw": self.active_windows,
            "pk": self.peak_score,
            "cd": self.cooldown_until_ms,
            "hot": list(self.hot_starts),
            "mu": self.muted,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> RuleState:
        severity: Severity = "critical" if state["sev"] == "critical" else "warning"
        return cls(
            active=bool(state["a"]),
            severity=severity,
            fired_start_ms=int(state["f"]),
            breach_run=int(state["br"]),
            clear_run=int(state["cr"]),
            active_windows=int(state["aw"]),
            peak_score=float(state["pk"]),
            cooldown_until_ms=int(state["cd"]),
            hot_starts=[int(t) for t in state.get("hot", [])],
            muted=bool(state.get("mu", False)),
        )


@dataclass
class Watch:
    """One detector and its rule state for one key: windows in, alert events out."""

    detector: Detector
    policy: AlertPolicy
    state: RuleState
    last: Evaluation | None = None

    def on_window(
        self, history: Sequence[ClosedWindow], headlines: tuple[Headline, ...], now_ms: int
    ) -> AlertEvent | None:
        """Score the newest window of ``history`` (oldest first), learn, and maybe transition."""
        window = history[-1]
        ev = self.detector.evaluate(history)
        self.last = ev
        was_active = self.state.active
        status = self.state.step(ev, window, self.policy)
        timed_out = status == "resolved" and self.state.active_windows >= (
            self.policy.max_alert_windows
        )
        self.detector.learn(window, in_alert=was_active or ev.breach)
        if timed_out:
            self.detector.rebase()
        if status == "resolved":
            self.detector.restart_evidence()
        if status is None or window.key_kind not in self.policy.key_kinds:
            return None
        return self._event(status, ev, window, headlines, now_ms)

    def _event(
        self,
        status: Status,
        ev: Evaluation,
        window: ClosedWindow,
        headlines: tuple[Headline, ...],
        now_ms: int,
    ) -> AlertEvent:
        rule = self.detector.rule
        what = "negative share" if rule.startswith("negative") else "volume"
        summary = (
            f"{rule} {status} on {window.key_kind} {window.key}: {what} {ev.value:.3g} "
            f"vs baseline {ev.baseline:.3g} (score {ev.score:.1f}, {ev.volume} items)"
        )
        return AlertEvent(
            rule=rule,
            key_kind=window.key_kind,
            key=window.key,
            status=status,
            severity=self.state.severity,
            window_start_ms=self.state.fired_start_ms,
            window_end_ms=window.end_ms,
            value=round(ev.value, 6),
            baseline=round(ev.baseline, 6),
            score=round(ev.score if status == "firing" else self.state.peak_score, 4),
            volume=ev.volume,
            summary=summary,
            at_ms=now_ms,
            headlines=headlines,
        )
