"""Waiting on a condition in tests: a deadline bounds the wait, nothing asserts on speed."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    condition: Callable[[], bool], timeout_sec: float = 10.0, interval_sec: float = 0.01
) -> bool:
    """Poll ``condition`` until it holds or ``timeout_sec`` has passed; its last answer."""
    deadline = time.monotonic() + timeout_sec
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval_sec)
    return condition()
