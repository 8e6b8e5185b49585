"""Is the broker there? A pure, clock-injected judgement from the worker's own Kafka calls.

The worker reports every Kafka call that succeeded (:meth:`BrokerHealth.ok`: records polled, a
produce acknowledged, a commit or probe answered) or failed (:meth:`BrokerHealth.failed`). Failures
with no success in between for ``down_after_sec`` make the broker ``down`` (the worker sets
``finmon_broker_up 0`` and logs an ERROR); for ``exit_after_sec``, ``lost`` (the worker raises
:class:`BrokerLost` and the daemon exits non-zero, so its supervisor restarts it; nothing is
committed that was not produced, so nothing is lost).

:class:`BrokerWatch` is what every role (classify, aggregate, source) runs: the judgement, a
log-end probe every ``PROBE_INTERVAL_SEC`` (so an idle role notices a dead broker too), and what a
change of state does: the ``finmon_broker_up{role}`` gauge, the ERROR log and BrokerLost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from prometheus_client import Gauge

from monitor.errors import FinMonError
from monitor.ingest import kafka_io
from monitor.settings import KafkaSettings

logger = logging.getLogger(__name__)

BrokerState = Literal["up", "down", "lost"]
PROBE_INTERVAL_SEC = 2.0
PROBE_TIMEOUT_MS = 1_500


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


@dataclass
class BrokerWatch:
    """One role's broker state, judged from its own calls and a periodic probe.

    ``ok`` and ``failed`` may be called from any thread (the source role produces from several);
    ``probe`` and ``judge`` belong to the role's loop. ``judge`` raises BrokerLost once every call
    has failed for ``kafka.broker_exit_after_sec``.
    """

    role: str
    kafka: KafkaSettings
    gauge: Gauge  # Metrics.broker_up, labelled by role
    clock: Callable[[], float] = time.monotonic
    health: BrokerHealth = field(init=False)
    _state: BrokerState = field(default="up", init=False)
    _next_probe: float = field(default=0.0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self.health = BrokerHealth(
            self.kafka.broker_down_after_sec, self.kafka.broker_exit_after_sec, self.clock
        )

    def started(self) -> None:
        """The role's clients are up: ``finmon_broker_up{role} 1``."""
        self.gauge.labels(self.role).set(1)

    def ok(self) -> None:
        with self._lock:
            self.health.ok()

    def failed(self, error: object) -> None:
        with self._lock:
            self.health.failed(error)

    @property
    def reachable(self) -> bool:
        """False once the role's broker calls have failed for ``kafka.broker_down_after_sec``."""
        return self.health.reachable

    def probe(self, consumer: KafkaConsumer, topic: str) -> dict[TopicPartition, int] | None:
        """At most every PROBE_INTERVAL_SEC, ask the log-end offsets of ``topic`` (a broker round
        trip); the offsets when it answered, None when not due, unknown or failed."""
        now = self.clock()
        if now < self._next_probe:
            return None
        self._next_probe = now + PROBE_INTERVAL_SEC
        try:
            ends = kafka_io.end_offsets(consumer, topic, PROBE_TIMEOUT_MS)
        except KafkaError as exc:
            self.failed(exc)
            return None
        if ends is not None:
            self.ok()
        return ends

    def commit(
        self, consumer: KafkaConsumer, offsets: Mapping[TopicPartition, int], timeout_ms: int
    ) -> bool:
        """Commit ``offsets``; True when the broker took them. A refusal is logged (its records
        will be replayed), and only a retriable one (a timeout) counts against the broker: a
        rebalance is no broker loss."""
        try:
            kafka_io.commit(consumer, offsets, timeout_ms=timeout_ms)
        except Exception as exc:
            if getattr(exc, "retriable", False):
                self.failed(exc)
            logger.warning("commit rejected (%r); records will be replayed", exc)
            return False
        if offsets:
            self.ok()
        return True

    def judge(self) -> None:
        """Gauge and ERROR log follow a change of state; raises BrokerLost when ``lost``."""
        state = self.health.state
        if state == self._state:
            return
        servers = self.kafka.bootstrap_servers
        if state == "lost":
            raise BrokerLost(servers, self.health.failing_sec, self.health.last_error)
        if state == "down":
            logger.error(
                "%s role: broker at kafka.bootstrap_servers=%r unreachable for %.0f s (last: %s); "
                "exiting after kafka.broker_exit_after_sec=%.0f s unless it comes back",
                self.role,
                servers,
                self.health.failing_sec,
                self.health.last_error,
                self.kafka.broker_exit_after_sec,
            )
        else:
            logger.info("%s role: broker at %r reachable again", self.role, servers)
        self.gauge.labels(self.role).set(1 if state == "up" else 0)
        self._state = state
