"""``POST /v1/news``: one item or a JSON array of items, produced before the answer.

Answers (JSON bodies):

- 202 ``{"accepted": n}``: every item was acknowledged by the broker;
- 400 ``{"accepted": n, "rejected": [{"index", "reason", "detail"}]}``: the valid items were
  acknowledged all the same, the others are listed with a contract reason code;
- 401 without the bearer token, 404 elsewhere, 411 without Content-Length;
- 413 when the body is over ``max_body_bytes`` or the array over ``max_items``;
- 429 + Retry-After while ``max_in_flight_items`` are awaiting acknowledgement (backpressure);
- 503 + Retry-After when the broker did not acknowledge in time (retry the whole request:
  repeats are dropped by id downstream).

One thread per request; binds loopback unless told otherwise. The token is never logged.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from monitor.contract import DEFAULT_LIMITS, DecodeLimits, parse_time
from monitor.metrics import Metrics
from monitor.settings import PushSettings
from monitor.sources.errors import ProduceError
from monitor.sources.produce import AckProducer
from monitor.sources.status import SourceBoard
from monitor.sources.validate import split_valid
from monitor.tickers import EMPTY_DICTIONARY, TickerDictionary

logger = logging.getLogger(__name__)

PATH = "/v1/news"
SOURCE = "push"


class _Reply(Exception):
    """An early answer (auth, size, parse); raised inside a handler, sent by it."""

    def __init__(self, code: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        super().__init__(code)
        self.code, self.body, self.headers = code, body, headers or {}


class PushServer:
    """The push endpoint. ``start`` returns at once; ``port`` is the bound port."""

    def __init__(
        self,
        settings: PushSettings,
        producer: AckProducer,
        metrics: Metrics,
        board: SourceBoard,
        *,
        dictionary: TickerDictionary = EMPTY_DICTIONARY,
        limits: DecodeLimits = DEFAULT_LIMITS,
    ) -> None:
        if settings.token is None:
            raise ValueError("PushServer needs settings.token")
        self.settings = settings
        self.producer = producer
        self.metrics = metrics
        self.board = board
        self.dictionary = dictionary
        self.limits = limits
        board.register(SOURCE, "push")
        self._expected = f"Bearer {settings.token.get_secret_value()}".encode()
        self._server = ThreadingHTTPServer((settings.host, settings.port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.port}{PATH}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="finmon-push",
            daemon=True,
        )
        self._thread.start()
        logger.info("push endpoint on %s", self.url)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def authorised(self, header: str | None) -> bool:
        return hmac.compare_digest((header or "").encode(), self._expected)

    def handle(self, body: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Validate, produce and answer one request body (already authorised and size-checked)."""
        raws = _items(body, self.settings.max_items)
        now = datetime.now(UTC)
        valid, rejected = split_valid(
            raws, now=now, default_source=SOURCE, dictionary=self.dictionary, limits=self.limits
        )
        if valid and not self.producer.try_reserve(len(valid)):
            retry = {"Retry-After": str(self.settings.retry_after_sec)}
            raise _Reply(429, {"error": "backpressure", "detail": "producer is busy"}, retry)
        try:
            self.producer.produce(valid)
        except ProduceError as exc:
            self.metrics.source_errors.labels(SOURCE, "produce").inc()
            self.board.failure(SOURCE, "produce")
            retry = {"Retry-After": str(self.settings.retry_after_sec)}
            raise _Reply(503, {"error": "broker", "detail": exc.detail[:300]}, retry) from exc
        finally:
            if valid:
                self.producer.release(len(valid))
        self._count(valid, len(rejected))
        if rejected:
            return 400, {"accepted": len(valid), "rejected": [r.to_dict() for r in rejected]}, {}
        return 202, {"accepted": len(valid)}, {}

    def _count(self, valid: list[dict[str, Any]], rejected: int) -> None:
        if valid:
            self.metrics.source_items.labels(SOURCE, "new").inc(len(valid))
            newest = max(parse_time(m["published_at"]).timestamp() for m in valid)
            self.board.success(SOURCE, newest)
        if rejected:
            self.metrics.source_items.labels(SOURCE, "invalid").inc(rejected)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                started = time.perf_counter()
                self.body_read = False
                try:
                    code, body, headers = self._answer()
                except _Reply as early:
                    code, body, headers = early.code, early.body, early.headers
                except Exception:  # a bug answers 500; the endpoint keeps serving
                    logger.exception("push request failed")
                    code, body, headers = 500, {"error": "internal"}, {}
                if not self.body_read:  # an unread body would be taken for the next request
                    headers = {**headers, "Connection": "close"}  # tells the client not to reuse it
                server.metrics.push_requests.labels(str(code)).inc()
                if code in (202, 400) and "accepted" in body:
                    server.metrics.push_seconds.observe(time.perf_counter() - started)
                self._send(code, body, headers)

            def _answer(self) -> tuple[int, dict[str, Any], dict[str, str]]:
                if self.path.split("?")[0] != PATH:
                    raise _Reply(404, {"error": "not_found", "detail": f"POST {PATH}"})
                if not server.authorised(self.headers.get("Authorization")):
                    raise _Reply(401, {"error": "unauthorized"}, {"WWW-Authenticate": "Bearer"})
                length = self.headers.get("Content-Length", "")
                if not length.isdigit():
                    raise _Reply(411, {"error": "length_required"})
                if int(length) > server.settings.max_body_bytes:
                    limit = server.settings.max_body_bytes
                    raise _Reply(413, {"error": "too_large", "detail": f"at most {limit} bytes"})
                body = self.rfile.read(int(length))
                self.body_read = True
                return server.handle(body)

            def _send(self, code: int, body: dict[str, Any], headers: dict[str, str]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                logger.debug("push %s", format % args)  # the request line, never headers

        return Handler


def _items(body: bytes, max_items: int) -> list[object]:
    try:
        parsed = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise _Reply(400, {"error": "not_json", "detail": str(exc)[:300]}) from exc
    items = parsed if isinstance(parsed, list) else [parsed]
    if len(items) > max_items:
        raise _Reply(413, {"error": "too_many_items", "detail": f"at most {max_items} per request"})
    if not items:
        raise _Reply(400, {"error": "empty", "detail": "no items"})
    return items
