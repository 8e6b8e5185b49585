"""The HTTP server on the metrics port: /metrics, /healthz, /readyz and POST /admin/reload.

``/healthz`` and ``/readyz`` answer 200 with ``{"status": "ok"}``, or 503 with the reason of each
failing part (see :mod:`monitor.health`). ``POST /admin/reload`` needs ``Authorization: Bearer
<reload.admin_token>``; it runs the reload (load, warm, canary, swap) and answers 200 when the new
model serves, 422 with the reason when it was rejected, 403 without a valid token (or when no token
is configured) and 404 on a process without a model.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from monitor.health import Health, Report

logger = logging.getLogger(__name__)

JSON = "application/json"


@dataclass(frozen=True)
class ReloadAnswer:
    """What POST /admin/reload tells the caller."""

    swapped: bool
    detail: dict[str, Any]


@dataclass(frozen=True)
class Routes:
    """What the server serves; ``reload`` is None on a process without a model."""

    registry: CollectorRegistry
    health: Health
    reload: Callable[[], ReloadAnswer] | None = None
    admin_token: str | None = None


class OpsServer:
    """A threaded HTTP server on ``host:port`` (0: a free port). ``start`` / ``stop``."""

    def __init__(self, routes: Routes, host: str, port: int) -> None:
        handler = type("Handler", (_Handler,), {"routes": routes})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="finmon-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Handler(BaseHTTPRequestHandler):
    routes: Routes

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(self.routes.registry), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            self._report(self.routes.health.liveness())
        elif path == "/readyz":
            self._report(self.routes.health.readiness())
        else:
            self._json(404, {"error": "not found", "paths": ["/metrics", "/healthz", "/readyz"]})

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != "/admin/reload":
            self._json(404, {"error": "not found"})
            return
        if not self._authorised():
            self._json(403, {"error": "a valid 'Authorization: Bearer <reload.admin_token>'"})
            return
        if self.routes.reload is None:
            self._json(404, {"error": "this process serves no model"})
            return
        answer = self.routes.reload()
        self._json(200 if answer.swapped else 422, answer.detail)

    def _authorised(self) -> bool:
        token = self.routes.admin_token
        given = self.headers.get("Authorization", "")
        expected = f"Bearer {token}"
        return bool(token) and hmac.compare_digest(given.encode(), expected.encode())

    def _report(self, report: Report) -> None:
        self._json(200 if report.ok else 503, report.to_json())

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self._send(status, (json.dumps(body, sort_keys=True) + "\n").encode(), JSON)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("http: %s", format % args)
