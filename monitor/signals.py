"""Plain data that crosses from the aggregator to the detectors and alert sinks.

Depends on nothing, so that the window maths (``monitor.aggregate.windows``) and the alerting
package both use it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Headline:
    """One news item that drove an alert, for analysts who act without opening a dashboard."""

    id: str
    headline: str
    negative_prob: float
    published_at_ms: int


__all__ = ["Headline"]
