"""HMAC-SHA256 webhook signatures over ``f"{timestamp}.{body}"``.

The sender puts the Unix time (whole seconds) in ``X-FinMon-Timestamp`` and
``sha256=<hex digest>`` in ``X-FinMon-Signature``. A receiver recomputes the digest with the shared
secret, compares in constant time, and rejects timestamps older than its tolerance (replays).
The secret is never logged or put in an exception message.
"""

from __future__ import annotations

import hashlib
import hmac

from monitor.errors import FinMonError

TIMESTAMP_HEADER = "X-FinMon-Timestamp"
SIGNATURE_HEADER = "X-FinMon-Signature"
IDEMPOTENCY_HEADER = "X-FinMon-Idempotency-Key"
ATTEMPT_HEADER = "X-FinMon-Delivery-Attempt"
SIGNATURE_SCHEME = "sha256"
DEFAULT_TOLERANCE_SEC = 300


class SignatureError(FinMonError):
    """A webhook request's signature is missing, malformed, wrong or too old.

    Raised by :func:`verify`; a receiver answers 401 and the sender does not retry. Check that the
    sender and receiver share the same secret and that their clocks agree within the tolerance.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"webhook signature rejected: {reason}")


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def sign(secret: str | bytes, timestamp_sec: int, body: bytes) -> str:
    """The ``X-FinMon-Signature`` value for ``body`` sent at ``timestamp_sec``."""
    message = f"{timestamp_sec}.".encode("ascii") + body
    digest = hmac.new(_key(secret), message, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_SCHEME}={digest}"


def signature_headers(
    secret: str | bytes | None, timestamp_sec: int, body: bytes
) -> dict[str, str]:
    """Timestamp header, plus the signature header when a secret is configured."""
    headers = {TIMESTAMP_HEADER: str(timestamp_sec)}
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, timestamp_sec, body)
    return headers


def verify(
    secret: str | bytes,
    *,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now_sec: float,
    tolerance_sec: float = DEFAULT_TOLERANCE_SEC,
) -> int:
    """Check one request; return its timestamp. Raises SignatureError with a short reason."""
    if not timestamp or not signature:
        raise SignatureError("missing timestamp or signature header")
    try:
        sent_sec = int(timestamp)
    except ValueError as exc:
        raise SignatureError("timestamp is not an integer") from exc
    if abs(now_sec - sent_sec) > tolerance_sec:
        raise SignatureError(f"timestamp outside the {tolerance_sec:g} s tolerance")
    expected = sign(secret, sent_sec, body)
    if not hmac.compare_digest(expected, signature.strip()):
        raise SignatureError("signature does not match")
    return sent_sec
