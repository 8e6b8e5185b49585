"""Alert events: what a detector emits and what every sink (webhook, Alertmanager) receives."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from monitor.signals import Headline

Status = Literal["firing", "resolved"]
Severity = Literal["warning", "critical"]


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """A firing or resolved transition of one rule for one key.

    ``key_kind`` is ``topic``, ``ticker`` or ``overall``; ``key`` the value ("Earnings", "AAPL").
    ``window_start_ms`` is the start of the window in which the alert first fired; together with
    ``rule`` and ``key`` it forms the idempotency key shared by the firing and resolved messages.
    """

    rule: str
    key_kind: str
    key: str
    status: Status
    severity: Severity
    window_start_ms: int
    window_end_ms: int
    value: float
    baseline: float
    score: float
    volume: int
    summary: str
    at_ms: int
    headlines: tuple[Headline, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def idempotency_key(self) -> str:
        return f"{self.rule}:{self.key_kind}={self.key}:{self.window_start_ms}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "key_kind": self.key_kind,
            "key": self.key,
            "status": self.status,
            "severity": self.severity,
            "window_start_ms": self.window_start_ms,
            "window_end_ms": self.window_end_ms,
            "value": self.value,
            "baseline": self.baseline,
            "score": self.score,
            "volume": self.volume,
            "summary": self.summary,
            "at_ms": self.at_ms,
            "idempotency_key": self.idempotency_key,
            "headlines": [
                {
                    "id": h.id,
                    "headline": h.headline,
                    "negative_prob": h.negative_prob,
                    "published_at_ms": h.published_at_ms,
                }
                for h in self.headlines
            ],
            "labels": dict(self.labels),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertEvent:
        """The event :meth:`to_dict` wrote (``idempotency_key`` is derived, so ignored)."""
        heads = tuple(
            Headline(
                str(h["id"]),
                str(h["headline"]),
                float(h["negative_prob"]),
                int(h["published_at_ms"]),
            )
            for h in data.get("headlines", ())
        )
        fields = {k: data[k] for k in _SCALARS}
        return cls(**fields, headlines=heads, labels=dict(data.get("labels", {})))


_SCALARS = (
    "rule",
    "key_kind",
    "key",
    "status",
    "severity",
    "window_start_ms",
    "window_end_ms",
    "value",
    "baseline",
    "score",
    "volume",
    "summary",
    "at_ms",
)
