"""Exceptions of the source role. Each carries a bounded ``kind`` (a metric label) and a detail."""

from __future__ import annotations

from typing import Literal

from monitor.errors import FinMonError

FetchErrorKind = Literal[
    "timeout", "connect", "http_4xx", "http_5xx", "rate_limited", "too_large", "redirect"
]
ERROR_KINDS: tuple[str, ...] = (
    "timeout",
    "connect",
    "http_4xx",
    "http_5xx",
    "rate_limited",
    "too_large",
    "redirect",
    "malformed",
    "produce",
    "internal",
)


class SourceError(FinMonError):
    """Root of the source role's errors. A failed poll is counted, backed off and retried."""

    def __init__(self, kind: str, detail: str) -> None:
        self.kind = kind
        self.detail = detail
        super().__init__(f"{kind}: {detail}")


class FetchError(SourceError):
    """A feed could not be fetched. ``retry_after_sec`` is the server's Retry-After, if any.

    The poller backs off (at least ``retry_after_sec``) and tries again; nothing is committed.
    """

    def __init__(
        self, kind: FetchErrorKind, detail: str, retry_after_sec: float | None = None
    ) -> None:
        self.retry_after_sec = retry_after_sec
        super().__init__(kind, detail)


class FeedParseError(SourceError):
    """A fetched body is not a feed (malformed XML, HTML page, ...). Fix the feed URL."""

    def __init__(self, detail: str) -> None:
        super().__init__("malformed", detail)


class ProduceError(SourceError):
    """The broker did not acknowledge every item in time; nothing is committed, work is redone."""

    def __init__(self, detail: str) -> None:
        super().__init__("produce", detail)
