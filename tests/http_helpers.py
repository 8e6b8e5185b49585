"""A tiny HTTP client for the daemon's endpoints in tests (loopback only)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def call(port: int, path: str, method: str = "GET", token: str | None = None) -> tuple[int, str]:
    """``(status, body)`` of one request to ``127.0.0.1:port``; HTTP errors are answers too."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def call_json(port: int, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    status, body = call(port, path, **kwargs)
    return status, json.loads(body)
