"""Is the broker there? A pure, clock-injected judgement from the worker's own Kafka calls.

The worker reports every Kafka call that succeeded (:meth:`BrokerHealth.ok`: records polled, a
produce acknowledged, a commit or probe answered) or failed (:meth:`BrokerHealth.failed`). Failures
with no success in between for ``down_after_sec`` make the broker ``down`` (the worker sets
``finmon_broker_up 0`` and logs an ERROR); for ``exit_after_sec``, ``lost`` (the worker raises
:class:`BrokerLost` and the daemon exits non-zero, so its supervisor restarts it; nothing is
committed that was not produced, so nothing is lost).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from monitor.errors import FinMonError

BrokerState = Literal["up", "down", "lost"]


class BrokerLost(FinMonError):
    """The broker failed every call for ``kafka.broker_exit_after_sec``; the role stops.

    Check that the broker at ``kafka.bootstrap_servers`` runs and is reachable from this host;
    the supervisor restarts FinMon, which resumes from the last committed offsets.
    """

    def __init__(self, bootstrap_servers: str, failing_sec: float, last_error: str) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.failing_sec = failing_sec
        super().__init__(
            f"the Kafka broker at kafka.bootstrap_servers={bootstrap_servers!r} failed every "
            f"call for {failing_sec:.0f} s (last: {last_error}); exiting so a supervisor "
            "restarts FinMon (kafka.broker_exit_after_sec); check the broker and the network"
        )


@dataclass
class BrokerHealth:
    """Failure streak bookkeeping. Not thread-safe; ``reachable`` may be read from any thread."""

    down_after_sec: float
    exit_after_sec: float
    clock: Callable[[], float] = time.monotonic
    _failing_since: float | None = field(default=None, init=False)
    last_error: str = field(default="", init=False)

    def ok(self) -> None:
        self._failing_since = None

    def failed(self, error: object) -> None:
        self.last_error = repr(error)
        if self._failing_since is None:
            self._failing_since = self.clock()

    @property
    def failing_sec(self) -> float:
        """Seconds since the first failure with no success after it (0 while healthy)."""
        return 0.0 if self._failing_since is None else self.clock() - self._failing_since

    @property
    def state(self) -> BrokerState:
        failing = self.failing_sec
        if self._failing_since is None or failing < self.down_after_sec:
            return "up"
        return "lost" if failing >= self.exit_after_sec else "down"

    @property
    def reachable(self) -> bool:
        """False once the broker has been failing for ``down_after_sec`` (readiness reads it)."""
        return self.state == "up"
