"""When to poll a feed again after a failure. Pure."""

from __future__ import annotations

from dataclasses import dataclass

# A Retry-After further out than this is treated as this (a broken server, not a plan).
MAX_RETRY_AFTER_SEC = 86_400.0


@dataclass(frozen=True, kw_only=True)
class BackoffPolicy:
    """Exponential backoff: ``initial_sec * 2^(failures-1)``, capped at ``max_sec``.

    A server's Retry-After (429/503) wins when it asks for longer.
    """

    initial_sec: float
    max_sec: float

    def delay_sec(self, failures: int, retry_after_sec: float | None = None) -> float:
        exponent = max(0, failures - 1)
        backoff = min(self.max_sec, self.initial_sec * 2.0 ** min(exponent, 30))
        if retry_after_sec is None:
            return backoff
        return max(backoff, min(retry_after_sec, MAX_RETRY_AFTER_SEC))
