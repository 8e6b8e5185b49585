"""Liveness and readiness of one process, as pure state with an injected clock.

Liveness (``/healthz``): every registered loop is alive and making progress. Each loop (a role's
poll loop, the model thread) calls :meth:`Probe.beat` on every pass, idle passes included, so an
idle daemon with empty input is live; a loop that has not passed for ``stall_after_ms`` is stuck,
and a loop whose thread has ended is dead.

Readiness (``/readyz``): every registered :class:`Condition` holds: the model is loaded and warmed,
partitions are assigned, the aggregator's state is restored, the broker is reachable.

Both answer a :class:`Report`: ``ok`` and, when not, one short reason per failing part. Thread-safe:
loops write, the HTTP thread reads.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


@dataclass(frozen=True)
class Report:
    """The answer of a health check: ``ok``, and the reason of each failing part."""

    ok: bool
    reasons: dict[str, str]

    def to_json(self) -> dict[str, object]:
        return {"status": "ok" if self.ok else "fail", "reasons": self.reasons}


@dataclass
class Probe:
    """The heartbeat of one loop. The loop calls :meth:`beat`; the check reads :meth:`problem`."""

    name: str
    stall_after_ms: int
    clock_ms: Callable[[], int] = monotonic_ms
    _last_ms: int = field(init=False)
    _thread: threading.Thread | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        # Start-up counts as progress until the first beat is overdue.
        self._last_ms = self.clock_ms()

    def beat(self) -> None:
        """One pass of the loop (idle or busy). Remembers the calling thread. Never blocks."""
        self._thread = threading.current_thread()
        self._last_ms = self.clock_ms()

    def problem(self) -> str | None:
        """None while live; else why not (thread ended, or no pass for too long)."""
        thread = self._thread
        if thread is not None and not thread.is_alive():
            return f"thread {thread.name} has ended"
        quiet_ms = self.clock_ms() - self._last_ms
        if quiet_ms > self.stall_after_ms:
            return f"no progress for {quiet_ms} ms (limit {self.stall_after_ms} ms)"
        return None


@dataclass
class Condition:
    """One readiness condition; false with a reason until its owner sets it."""

    name: str
    reason: str
    _ok: bool = field(init=False, default=False)

    def set(self, ok: bool, reason: str | None = None) -> None:
        self._ok = ok
        if reason is not None:
            self.reason = reason

    def problem(self) -> str | None:
        return None if self._ok else self.reason


@dataclass
class Health:
    """The probes and conditions of one process."""

    stall_after_ms: int = 60_000
    clock_ms: Callable[[], int] = monotonic_ms
    _probes: dict[str, Probe | Callable[[], str | None]] = field(init=False, default_factory=dict)
    _conditions: dict[str, Condition | Callable[[], str | None]] = field(
        init=False, default_factory=dict
    )

    def probe(self, name: str) -> Probe:
        """The probe called ``name``, registered on first use."""
        probe = self._probes.get(name)
        if not isinstance(probe, Probe):
            probe = self._probes[name] = Probe(name, self.stall_after_ms, self.clock_ms)
        return probe

    def live_check(self, name: str, problem: Callable[[], str | None]) -> None:
        """A liveness part computed at each check (None: live), for roles without a loop."""
        self._probes[name] = problem

    def condition(self, name: str, reason: str) -> Condition:
        """A readiness condition, false with ``reason`` until set."""
        cond = Condition(name, reason)
        self._conditions[name] = cond
        return cond

    def check(self, name: str, problem: Callable[[], str | None]) -> None:
        """A readiness condition computed at each check (None: holds)."""
        self._conditions[name] = problem

    def liveness(self) -> Report:
        return _report(
            {
                name: p.problem() if isinstance(p, Probe) else p()
                for name, p in list(self._probes.items())
            }
        )

    def readiness(self) -> Report:
        problems = {
            name: cond.problem() if isinstance(cond, Condition) else cond()
            for name, cond in list(self._conditions.items())
        }
        if not self._probes:
            problems["roles"] = "no role has started"
        return _report(problems)


def _report(problems: dict[str, str | None]) -> Report:
    reasons = {name: why for name, why in problems.items() if why is not None}
    return Report(not reasons, reasons)


@dataclass
class BrokerCheck:
    """Whether any bootstrap server accepts a TCP connection, re-checked at most every interval.

    Called from the HTTP thread; a check blocks for at most ``timeout_sec`` per server.
    """

    servers: Sequence[str]
    interval_ms: int = 5_000
    timeout_sec: float = 1.0
    clock_ms: Callable[[], int] = monotonic_ms
    _checked_ms: int | None = field(init=False, default=None)
    _problem: str | None = field(init=False, default=None)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __call__(self) -> str | None:
        with self._lock:
            now = self.clock_ms()
            if self._checked_ms is None or now - self._checked_ms >= self.interval_ms:
                self._problem = self._connect()
                self._checked_ms = now
            return self._problem

    def _connect(self) -> str | None:
        for server in self.servers:
            host, _, port = server.strip().rpartition(":")
            try:
                with socket.create_connection((host.strip("[]"), int(port)), self.timeout_sec):
                    return None
            except (OSError, ValueError):
                continue
        return f"no bootstrap server reachable ({','.join(self.servers)})"


@dataclass(frozen=True)
class RoleHealth:
    """What one role reports: its loop's heartbeat, whether it has partitions, and (for the
    classify role) the model thread's heartbeat."""

    loop: Probe
    assigned: Condition
    model: Probe | None = None

    @classmethod
    def register(cls, health: Health, role: str, *, with_model: bool = False) -> RoleHealth:
        return cls(
            loop=health.probe(role),
            assigned=health.condition(f"{role}.partitions", "no partitions assigned yet"),
            model=health.probe(f"{role}.model") if with_model else None,
        )

    def note_assignment(self, partitions: Sequence[object]) -> None:
        """Ready while the group gave this member at least one partition."""
        self.assigned.set(
            bool(partitions),
            None
            if partitions
            else "the group assigned no partition (more members than partitions?)",
        )
