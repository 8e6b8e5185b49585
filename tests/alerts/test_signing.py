from __future__ import annotations

import pytest

from alerts.signing import SIGNATURE_HEADER, SignatureError, sign, signature_headers, verify

BODY = b'{"alerts":[]}'


def test_signature_round_trip() -> None:
    signature = sign("s3cret", 1_700_000_000, BODY)
    assert signature.startswith("sha256=") and len(signature) == 7 + 64
    sent = verify(
        "s3cret", timestamp="1700000000", signature=signature, body=BODY, now_sec=1_700_000_010
    )
    assert sent == 1_700_000_000


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "now_sec", "reason"),
    [
        ("other", "1700000000", BODY, 1_700_000_000, "does not match"),
        ("s3cret", "1700000000", BODY + b" ", 1_700_000_000, "does not match"),
        ("s3cret", "1700000001", BODY, 1_700_000_000, "does not match"),
        ("s3cret", "1700000000", BODY, 1_700_000_301, "tolerance"),
        ("s3cret", "soon", BODY, 1_700_000_000, "not an integer"),
    ],
)
def test_tampering_and_replay_are_rejected(
    secret: str, timestamp: str, body: bytes, now_sec: float, reason: str
) -> None:
    signature = sign("s3cret", 1_700_000_000, BODY)
    with pytest.raises(SignatureError, match=reason):
        verify(secret, timestamp=timestamp, signature=signature, body=body, now_sec=now_sec)


def test_missing_headers_are_rejected() -> None:
    with pytest.raises(SignatureError, match="missing"):
        verify("s3cret", timestamp=None, signature="sha256=00", body=BODY, now_sec=0)


def test_headers_without_secret_carry_no_signature() -> None:
    assert SIGNATURE_HEADER not in signature_headers(None, 1, BODY)
    assert signature_headers("k", 1, BODY)[SIGNATURE_HEADER] == sign("k", 1, BODY)


def test_error_message_never_contains_the_secret() -> None:
    with pytest.raises(SignatureError) as info:
        verify("hunter2", timestamp="1", signature="sha256=bad", body=BODY, now_sec=1)
    assert "hunter2" not in str(info.value)
