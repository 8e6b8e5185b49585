"""A small webhook receiver: verifies signatures, drops duplicates, records alerts.

Accepts FinMon's direct notifications (signed, with ``X-FinMon-Idempotency-Key``) and
Alertmanager's webhook posts (unsigned; authenticated by an optional bearer token). Duplicates are
dropped by (path, idempotency key, status); for Alertmanager alerts the key is the fingerprint plus
``startsAt``. Used by ``finmon webhook-receiver``, the demo and the tests. Serves on loopback by
default, one thread per request.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from alerts.signing import (
    DEFAULT_TOLERANCE_SEC,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    verify,
)

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 5_000_000


@dataclass(frozen=True, slots=True)
class ReceivedAlert:
    """One alert accepted for the first time (duplicates are counted, not recorded)."""

    idempotency_key: str
    status: str
    path: str
    labels: dict[str, str]
    annotations: dict[str, str]
    signed: bool
    received_at_sec: float
    headlines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "idempotency_key": self.idempotency_key,
            "status": self.status,
            "path": self.path,
            "labels": self.labels,
            "annotations": self.annotations,
            "signed": self.signed,
            "received_at_sec": self.received_at_sec,
            "headlines": self.headlines,
        }

    def line(self) -> str:
        """One human line: status, alert name, key, severity and summary."""
        key = self.labels.get("key") or self.labels.get("topic") or self.labels.get("role", "")
        return (
            f"{self.status.upper():8} {self.alertname} key={key} "
            f"severity={self.labels.get('severity', '')} {self.annotations.get('summary', '')}"
        )


@dataclass(frozen=True, slots=True)
class ReceiverConfig:
    """How a receiver authenticates and where it stores alerts."""

    secret: str | None = None
    bearer_token: str | None = None
    out_path: Path | None = None
    tolerance_sec: float = DEFAULT_TOLERANCE_SEC
    max_remembered_keys: int = 100_000


class _RejectedError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(reason)


class WebhookReceiver:
    """HTTP server on ``host:port`` (0 picks a free port). Use as a context manager."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        config: ReceiverConfig | None = None,
        on_alert: Callable[[ReceivedAlert], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config or ReceiverConfig()
        self._on_alert = on_alert
        self._clock = clock
        self._cond = threading.Condition()
        self._alerts: list[ReceivedAlert] = []
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._fail_next: list[int] = []
        self.duplicates = 0
        self.rejected = 0
        self.requests = 0
        self._host = host
        self._server = ThreadingHTTPServer((host, port), _handler_class(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, ending in ``/``; any path below it is accepted (per-team paths)."""
        return f"http://{self._host}:{self.port}/"

    def start(self) -> WebhookReceiver:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="finmon-receiver", daemon=True
        )
        self._thread.start()
        logger.info("webhook receiver listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and release the port (also when it was never started)."""
        if self._thread is not None:
            self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def alerts(self) -> list[ReceivedAlert]:
        with self._cond:
            return list(self._alerts)

    def fail_next(self, count: int, status_code: int = 503) -> None:
        """Answer the next ``count`` requests with ``status_code`` (outage drills, tests)."""
        with self._cond:
            self._fail_next.extend([status_code] * count)

    def wait_for(
        self, predicate: Callable[[list[ReceivedAlert]], bool], timeout_sec: float
    ) -> bool:
        """Block until ``predicate(alerts)`` holds or ``timeout_sec`` passes; return if it did."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self._alerts), timeout_sec)

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        """Process one POST; return (HTTP status, JSON answer). Thread-safe."""
        with self._cond:
            self.requests += 1
            if self._fail_next:
                return self._fail_next.pop(0), {"error": "induced failure"}
        try:
            signed = self._authenticate(headers, body)
            payload = _parse(body)
        except _RejectedError as exc:
            with self._cond:
                self.rejected += 1
            logger.warning("rejected webhook on %s: %s", path, exc.reason)
            return exc.code, {"error": exc.reason}
        new = self._record(path, headers.get(IDEMPOTENCY_HEADER.lower()), payload, signed)
        return 200, {"accepted": len(new), "duplicates": len(payload["alerts"]) - len(new)}

    def _authenticate(self, headers: dict[str, str], body: bytes) -> bool:
        """True when an HMAC signature verified; False when accepted without one."""
        signature = headers.get(SIGNATURE_HEADER.lower())
        secret, token = self.config.secret, self.config.bearer_token
        if signature and secret:
            try:
                verify(
                    secret,
                    timestamp=headers.get(TIMESTAMP_HEADER.lower()),
                    signature=signature,
                    body=body,
                    now_sec=self._clock(),
                    tolerance_sec=self.config.tolerance_sec,
                )
            except SignatureError as exc:
                raise _RejectedError(401, exc.reason) from exc
            return True
        expected = f"Bearer {token}"
        if token and hmac.compare_digest(headers.get("authorization", ""), expected):
            return False
        if secret or token:
            raise _RejectedError(401, "missing signature (or bearer token)")
        return False

    def _record(
        self, path: str, key: str | None, payload: dict[str, Any], signed: bool
    ) -> list[ReceivedAlert]:
        new: list[ReceivedAlert] = []
        for alert in payload["alerts"]:
            status = str(alert.get("status") or payload.get("status", ""))
            ident = key or f"{alert.get('fingerprint', '')}:{alert.get('startsAt', '')}"
            received = ReceivedAlert(
                idempotency_key=ident,
                status=status,
                path=path,
                labels={str(k): str(v) for k, v in (alert.get("labels") or {}).items()},
                annotations={str(k): str(v) for k, v in (alert.get("annotations") or {}).items()},
                signed=signed,
                received_at_sec=self._clock(),
                headlines=list(payload.get("headlines") or []),
            )
            # Per path: one receiver process may serve several teams' endpoints, and Alertmanager
            # sends the same alert (same fingerprint) to each route that matches.
            if self._remember(f"{path}|{ident}|{status}", received):
                new.append(received)
        for received in new:
            self._store(received)
        return new

    def _remember(self, dedup_key: str, received: ReceivedAlert) -> bool:
        with self._cond:
            if dedup_key in self._seen:
                self.duplicates += 1
                return False
            self._seen[dedup_key] = None
            if len(self._seen) > self.config.max_remembered_keys:
                self._seen.popitem(last=False)
            if len(self._alerts) >= self.config.max_remembered_keys:
                self._alerts.pop(0)
            self._alerts.append(received)
            self._cond.notify_all()
            return True

    def _store(self, received: ReceivedAlert) -> None:
        if self.config.out_path is not None:
            with self._cond, self.config.out_path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(received.to_dict(), sort_keys=True) + "\n")
        if self._on_alert is not None:
            self._on_alert(received)


def _parse(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _RejectedError(400, f"body is not JSON: {exc}") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("alerts"), list):
        raise _RejectedError(400, "expected an Alertmanager webhook object with an 'alerts' list")
    return payload


def _handler_class(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "finmon-receiver/1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._answer(413, {"error": "body too large"})
                return
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            code, answer = receiver.handle(self.path, headers, body)
            self._answer(code, answer)

        def do_GET(self) -> None:
            self._answer(200, {"alerts": [a.to_dict() for a in receiver.alerts()]})

        def _answer(self, code: int, answer: dict[str, Any]) -> None:
            data = json.dumps(answer).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("receiver %s: %s", self.address_string(), format % args)

    return Handler
