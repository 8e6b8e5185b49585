"""Fetching a feed over HTTP: conditional GET, gzip, permanent redirects, a size cap.

Blocking; one call per poll. The validators (``ETag``, ``Last-Modified``) are opaque strings sent
back unchanged. A 301/308 answer moves the feed (the caller stores ``url``); 302/303/307 are
followed for this fetch only. Errors raise :class:`FetchError` with a bounded kind and, for 429 and
503, the server's Retry-After in seconds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin

import httpx

from monitor.sources.errors import FetchError, FetchErrorKind

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 5
PERMANENT = (301, 308)
TEMPORARY = (302, 303, 307)
ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, "
    "*/*;q=0.5"
)


@dataclass(frozen=True, slots=True)
class Validators:
    """What the last successful fetch of a feed said about its version (opaque, may be None)."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class FetchResult:
    """One fetch: ``body`` is None when the server said 304 Not Modified.

    ``url`` is where the feed lives now (changed by a permanent redirect); ``validators`` are the
    ones to send next time (the old ones on a 304 that sends none).
    """

    url: str
    body: bytes | None
    validators: Validators
    status_code: int
    content_type: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.body is None


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds from ``now``: delta-seconds or an HTTP-date; None if absent/bad."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - now).total_seconds())


def _conditional_headers(validators: Validators) -> dict[str, str]:
    headers = {}
    if validators.etag:
        headers["If-None-Match"] = validators.etag
    if validators.last_modified:
        headers["If-Modified-Since"] = validators.last_modified
    return headers


@dataclass(frozen=True)
class FeedFetcher:
    """Fetches feeds with one shared connection pool. Thread-safe (httpx.Client is)."""

    client: httpx.Client
    max_bytes: int

    @classmethod
    def create(cls, *, user_agent: str, timeout_sec: float, max_bytes: int) -> FeedFetcher:
        client = httpx.Client(
            headers={"User-Agent": user_agent, "Accept": ACCEPT, "Accept-Encoding": "gzip"},
            timeout=timeout_sec,
            follow_redirects=False,
            trust_env=False,
        )
        return cls(client, max_bytes)

    def close(self) -> None:
        self.client.close()

    def fetch(self, url: str, validators: Validators, now: datetime) -> FetchResult:
        """GET ``url`` with the validators; follows up to MAX_REDIRECTS redirects."""
        current, moved_to, permanent = url, url, True
        for _ in range(MAX_REDIRECTS + 1):
            status, headers, body = self._get(current, validators)
            if status in PERMANENT or status in TEMPORARY:
                location = headers.get("location")
                if not location:
                    raise FetchError("redirect", f"{status} without a Location header")
                current = urljoin(current, location)
                # The stored URL follows only an unbroken chain of permanent moves.
                permanent = permanent and status in PERMANENT
                moved_to = current if permanent else moved_to
                continue
            return self._result(moved_to, status, headers, body, validators=validators, now=now)
        raise FetchError("redirect", f"more than {MAX_REDIRECTS} redirects from {url}")

    def _get(self, url: str, validators: Validators) -> tuple[int, httpx.Headers, bytes]:
        try:
            with self.client.stream("GET", url, headers=_conditional_headers(validators)) as resp:
                return resp.status_code, resp.headers, self._read_capped(resp)
        except httpx.TimeoutException as exc:
            raise FetchError("timeout", f"{type(exc).__name__} fetching {url}") from exc
        except httpx.TransportError as exc:
            raise FetchError("connect", f"{type(exc).__name__}: {exc}") from exc

    def _read_capped(self, resp: httpx.Response) -> bytes:
        declared = resp.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes and resp.status_code == 200:
            raise FetchError("too_large", f"{declared} bytes declared, at most {self.max_bytes}")
        chunks: list[bytes] = []
        size = 0
        for chunk in resp.iter_bytes():  # decoded (gzip) bytes: the cap bounds what we parse
            size += len(chunk)
            if size > self.max_bytes:
                raise FetchError("too_large", f"body over {self.max_bytes} bytes (decoded)")
            chunks.append(chunk)
        return b"".join(chunks)

    def _result(
        self,
        url: str,
        status: int,
        headers: httpx.Headers,
        body: bytes,
        *,
        validators: Validators,
        now: datetime,
    ) -> FetchResult:
        if status == 304:
            return FetchResult(url, None, _merge_validators(headers, validators), status)
        if status in (429, 503):
            retry = parse_retry_after(headers.get("retry-after"), now)
            kind: FetchErrorKind = "rate_limited" if status == 429 else "http_5xx"
            raise FetchError(kind, f"HTTP {status} (Retry-After {retry})", retry)
        if status >= 500:
            raise FetchError("http_5xx", f"HTTP {status}")
        if not 200 <= status < 300:
            raise FetchError("http_4xx", f"HTTP {status}")
        fresh = Validators(headers.get("etag"), headers.get("last-modified"))
        return FetchResult(url, body, fresh, status, headers.get("content-type"))


def _merge_validators(headers: httpx.Headers, old: Validators) -> Validators:
    return Validators(
        headers.get("etag") or old.etag, headers.get("last-modified") or old.last_modified
    )
