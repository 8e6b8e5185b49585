"""Rate-limited logging: one line per key and interval, with a count of the lines held back.

A broker outage or a stream of oversized records repeats the same warning for every record;
:class:`Throttle` keeps the log readable (and small) while saying how many were suppressed.
:class:`ThrottleFilter` does the same for third-party loggers (kafka-python's connection lines).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

MAX_KEYS = 1024


@dataclass
class Throttle:
    """``allow(key)`` is the number of calls held back since the last allowed one, or None."""

    interval_sec: float = 10.0
    clock: Callable[[], float] = time.monotonic
    _last: dict[Hashable, float] = field(default_factory=dict, init=False)
    _held: dict[Hashable, int] = field(default_factory=dict, init=False)

    def allow(self, key: Hashable) -> int | None:
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval_sec:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        if len(self._last) >= MAX_KEYS and key not in self._last:
            self._last.clear()
            self._held.clear()
        self._last[key] = now
        return self._held.pop(key, 0)


class ThrottleFilter(logging.Filter):
    """Passes each (logger, message template) of loggers under ``prefix`` once per interval."""

    def __init__(self, prefix: str = "kafka", interval_sec: float = 30.0) -> None:
        super().__init__()
        self.prefix = prefix
        self.throttle = Throttle(interval_sec)

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefix):
            return True
        held = self.throttle.allow((record.name, str(record.msg)))
        if held is None:
            return False
        if held:
            record.msg = f"{record.msg} ({held} similar lines suppressed)"
        return True
