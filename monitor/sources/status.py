"""What each source has done lately, for /metrics (a collector) and for health checks.

:class:`SourceBoard` is written by the pollers, the push endpoint and the drop folder, and read at
scrape time. Series (label ``source``): ``finmon_source_last_success_timestamp_seconds``,
``finmon_source_feed_lag_seconds`` (now minus the newest item's time),
``finmon_source_poll_interval_seconds`` and ``finmon_source_silent_after_seconds`` (feeds: the
FinMonFeedSilent alert fires when the last success is older than the latter),
``finmon_source_registered_timestamp_seconds`` (when the process started the source) and
``finmon_source_consecutive_failures``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Literal

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

SourceKind = Literal["feed", "push", "dropfolder"]


@dataclass(frozen=True, slots=True)
class SourceState:
    """One source at a moment. Times are Unix seconds (None: not yet)."""

    name: str
    kind: SourceKind
    registered_sec: float
    interval_sec: float | None = None
    silent_after_sec: float | None = None
    last_attempt_sec: float | None = None
    last_success_sec: float | None = None
    newest_item_sec: float | None = None
    consecutive_failures: int = 0
    last_error: str | None = None


class SourceBoard:
    """Thread-safe map of source name -> :class:`SourceState`; ``alive`` while the role runs."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.alive = False
        self._states: dict[str, SourceState] = {}
        self._lock = threading.Lock()

    def register(
        self,
        name: str,
        kind: SourceKind,
        interval_sec: float | None = None,
        silent_after_sec: float | None = None,
    ) -> None:
        state = SourceState(name, kind, self.clock(), interval_sec, silent_after_sec)
        with self._lock:
            self._states.setdefault(name, state)

    def success(self, name: str, newest_item_sec: float | None = None) -> None:
        now = self.clock()
        with self._lock:
            old = self._states[name]
            newest = max(filter(None, (old.newest_item_sec, newest_item_sec)), default=None)
            self._states[name] = replace(
                old,
                last_attempt_sec=now,
                last_success_sec=now,
                newest_item_sec=newest,
                consecutive_failures=0,
                last_error=None,
            )

    def failure(self, name: str, error: str) -> None:
        now = self.clock()
        with self._lock:
            old = self._states[name]
            self._states[name] = replace(
                old,
                last_attempt_sec=now,
                consecutive_failures=old.consecutive_failures + 1,
                last_error=error,
            )

    def snapshot(self) -> dict[str, SourceState]:
        """A copy of every source's state (for health and readiness checks)."""
        with self._lock:
            return dict(self._states)

    def collector(self) -> SourceCollector:
        return SourceCollector(self)


class SourceCollector:
    """Exports the board at scrape time."""

    def __init__(self, board: SourceBoard) -> None:
        self._board = board

    def collect(self) -> Iterator[Metric]:
        labels = ["source", "kind"]
        success = GaugeMetricFamily(
            "finmon_source_last_success_timestamp_seconds",
            "Unix time of the source's last successful poll, push or file.",
            labels=labels,
        )
        lag = GaugeMetricFamily(
            "finmon_source_feed_lag_seconds",
            "Seconds between now and the newest item time the source has delivered.",
            labels=labels,
        )
        interval = GaugeMetricFamily(
            "finmon_source_poll_interval_seconds",
            "Configured poll interval of a feed.",
            labels=labels,
        )
        silent = GaugeMetricFamily(
            "finmon_source_silent_after_seconds",
            "A feed without a successful poll for this long is silent (alert FinMonFeedSilent).",
            labels=labels,
        )
        registered = GaugeMetricFamily(
            "finmon_source_registered_timestamp_seconds",
            "Unix time at which this process started the source.",
            labels=labels,
        )
        failures = GaugeMetricFamily(
            "finmon_source_consecutive_failures",
            "Failed polls (or files) since the source last succeeded.",
            labels=labels,
        )
        now = self._board.clock()
        for state in self._board.snapshot().values():
            key = [state.name, state.kind]
            failures.add_metric(key, state.consecutive_failures)
            registered.add_metric(key, state.registered_sec)
            if state.silent_after_sec is not None:
                silent.add_metric(key, state.silent_after_sec)
            if state.last_success_sec is not None:
                success.add_metric(key, state.last_success_sec)
            if state.newest_item_sec is not None:
                lag.add_metric(key, max(0.0, now - state.newest_item_sec))
            if state.interval_sec is not None:
                interval.add_metric(key, state.interval_sec)
        yield from (success, lag, interval, silent, registered, failures)

    def describe(self) -> Iterator[Metric]:
        return iter(())
