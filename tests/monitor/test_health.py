"""Liveness and readiness state: heartbeats, stalls, dead threads, conditions, the broker check."""

from __future__ import annotations

import socket
import threading

from monitor.health import BrokerCheck, Health, RoleHealth


class FakeClock:
    def __init__(self) -> None:
        self.now_ms = 1_000

    def __call__(self) -> int:
        return self.now_ms


def test_an_idle_loop_that_keeps_beating_is_live_and_a_stuck_one_is_not() -> None:
    clock = FakeClock()
    health = Health(stall_after_ms=5_000, clock_ms=clock)
    idle, stuck = health.probe("aggregate"), health.probe("classify")
    for _ in range(10):  # ten idle passes, 1 s apart: empty input is still progress
        clock.now_ms += 1_000
        idle.beat()
    assert health.liveness().reasons.keys() == {"classify"}
    assert "no progress for 10000 ms" in health.liveness().reasons["classify"]
    stuck.beat()
    assert health.liveness().ok


def test_a_probe_whose_thread_ended_is_dead_even_if_it_beat_just_now() -> None:
    health = Health(stall_after_ms=60_000)
    probe = health.probe("classify.model")
    thread = threading.Thread(target=probe.beat, name="finmon-model")
    thread.start()
    thread.join()
    report = health.liveness()
    assert not report.ok
    assert report.reasons == {"classify.model": "thread finmon-model has ended"}
    assert report.to_json()["status"] == "fail"


def test_readiness_needs_every_condition() -> None:
    health = Health()
    role = RoleHealth.register(health, "classify", with_model=True)
    model = health.condition("model", "the model is not warmed yet")
    health.check("broker", lambda: None)
    assert set(health.readiness().reasons) == {"classify.partitions", "model"}
    model.set(True)
    role.note_assignment(["news.raw-0"])
    assert health.readiness().ok
    role.note_assignment([])  # a rebalance left this member without partitions
    assert "assigned no partition" in health.readiness().reasons["classify.partitions"]


def test_readiness_is_false_before_any_role_registers() -> None:
    assert Health().readiness().reasons == {"roles": "no role has started"}


def test_broker_check_sees_a_listener_and_caches_its_answer() -> None:
    clock = FakeClock()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    check = BrokerCheck([f"127.0.0.1:{port}"], interval_ms=5_000, clock_ms=clock)
    assert check() is None
    listener.close()
    assert check() is None  # cached until the interval passes
    clock.now_ms += 5_000
    problem = check()
    assert problem is not None and f"127.0.0.1:{port}" in problem
