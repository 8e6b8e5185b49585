"""Broker loss is loud (issue 28, defect 5): start-up without a broker, a broker stalled by
SIGSTOP (finmon_broker_up 0, then 1, nothing lost) and a broker killed (the daemon exits non-zero
with a message naming kafka.bootstrap_servers)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from monitor.broker import EmbeddedBroker, free_port
from monitor.settings import KafkaSettings
from tests.kafka_helpers import news, produce, unique_kafka_settings
from tests.reliability.harness import (
    Figures,
    TopicReader,
    rss_mib,
    scrape,
    start_daemon,
    stop,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.integration

BROKER_UP = "finmon_broker_up"


def test_unreachable_broker_at_start_up_names_the_key_and_the_fix(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    kafka = unique_kafka_settings(f"127.0.0.1:{free_port()}", connect_timeout_sec=1)
    config = write_config(tmp_path, kafka, tiny_model_dir)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "run", "--config", str(config), "--role", "classify"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr[-2000:]
    assert "kafka.bootstrap_servers" in result.stderr and "fix:" in result.stderr
    assert "FINMON_KAFKA__BOOTSTRAP_SERVERS" in result.stderr
    assert "Traceback" not in result.stderr
    Figures(
        "start-up with no broker at kafka.bootstrap_servers",
        sent=0, scored=0, dead_lettered=0, lost=0, duplicates=0,
        recover_sec=round(elapsed, 1),
        note="exit 1 naming the key and the fix; time = whole command, connect_timeout_sec 1",
    ).report()  # fmt: skip


def _daemon_with_own_broker(
    tmp_path: Path, model_dir: Path, broker: EmbeddedBroker, **kafka_extra: float
) -> tuple[subprocess.Popen[bytes], int, Path, KafkaSettings]:
    kafka = unique_kafka_settings(broker.bootstrap_servers, **kafka_extra)
    port = free_port()
    config = write_config(tmp_path, kafka, model_dir, metrics={"enabled": True, "port": port})
    log = tmp_path / "daemon.log"
    return start_daemon(config, log), port, log, kafka


@pytest.mark.slow
def test_broker_sigstop_then_sigcont_flags_down_then_up_and_loses_nothing(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    with EmbeddedBroker(log_path=tmp_path / "tansu.log") as broker:
        daemon, port, log, kafka = _daemon_with_own_broker(
            tmp_path, tiny_model_dir, broker, broker_down_after_sec=3, broker_exit_after_sec=90
        )
        scored = TopicReader(broker.bootstrap_servers, kafka.scored_topic)
        raw = kafka.raw_topic
        try:
            produce(broker.bootstrap_servers, raw, [news(i) for i in range(300)])
            assert wait_for(lambda: len(scored.poll()) >= 300, 180), log.read_text()[-3000:]
            rss_before = rss_mib(daemon.pid)
            assert scrape(port, BROKER_UP) == 1
            assert broker.pid is not None
            os.kill(broker.pid, signal.SIGSTOP)
            stopped = time.monotonic()
            try:
                flagged = wait_for(lambda: scrape(port, BROKER_UP) == 0, 60)
                assert flagged is not None, log.read_text()[-3000:]
                time.sleep(5)
            finally:
                os.kill(broker.pid, signal.SIGCONT)
            resumed = time.monotonic()
            back = wait_for(lambda: scrape(port, BROKER_UP) == 1, 60)
            assert back is not None, log.read_text()[-3000:]
            produce(broker.bootstrap_servers, raw, [news(i) for i in range(300, 600)])
            wanted = {f"n-{i}" for i in range(600)}
            recovered = wait_for(lambda: set(scored.ids()) >= wanted, 180)
            assert recovered is not None, log.read_text()[-3000:]
            assert daemon.poll() is None
            rss_after = rss_mib(daemon.pid)
        finally:
            code = stop(daemon)
            scored.close()
    text = log.read_text()
    assert "ERROR" in text and "unreachable" in text and "reachable again" in text
    assert code == 0, text[-3000:]
    ids = scored.ids()
    Figures(
        f"broker SIGSTOP for {resumed - stopped:.0f} s, then SIGCONT",
        sent=600,
        scored=len(set(ids)),
        dead_lettered=0,
        lost=len(wanted - set(ids)),
        duplicates=len(ids) - len(set(ids)),
        recover_sec=round(back, 1),
        rss_before_mib=round(rss_before, 1),
        rss_after_mib=round(rss_after, 1),
        note=f"finmon_broker_up 0 after {flagged:.1f} s (broker_down_after_sec 3); recovery = "
        "SIGCONT to finmon_broker_up 1",
    ).report()


@pytest.mark.slow
def test_broker_kill_flags_down_then_the_daemon_exits_non_zero(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log").start()
    try:
        daemon, port, log, kafka = _daemon_with_own_broker(
            tmp_path, tiny_model_dir, broker, broker_down_after_sec=3, broker_exit_after_sec=15
        )
        raw = kafka.raw_topic
        scored = TopicReader(broker.bootstrap_servers, kafka.scored_topic)
        produce(broker.bootstrap_servers, raw, [news(i) for i in range(100)])
        assert wait_for(lambda: len(scored.poll()) >= 100, 180), log.read_text()[-3000:]
        scored.close()
        assert broker.pid is not None
        os.kill(broker.pid, signal.SIGKILL)
        killed = time.monotonic()
        flagged = wait_for(lambda: scrape(port, BROKER_UP) == 0, 60)
        assert flagged is not None, log.read_text()[-3000:]
        code = daemon.wait(120)
        exited = time.monotonic() - killed
    finally:
        broker.stop()
        stop(daemon)
    text = log.read_text()
    assert code == 1, text[-3000:]
    assert "failed every call" in text and "kafka.bootstrap_servers" in text
    Figures(
        "broker kill -9 (kafka.broker_down_after_sec 3, broker_exit_after_sec 15)",
        sent=100, scored=100, dead_lettered=0, lost=0, duplicates=0,
        recover_sec=None,
        note=f"finmon_broker_up 0 after {flagged:.1f} s; exit status 1 after {exited:.1f} s "
        "(a supervisor restarts it)",
    ).report()  # fmt: skip


def _readiness(port: int) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["aggregate", "source", "aggregate-partitioned"])
def test_broker_kill_flags_the_role_down_then_it_exits_non_zero(
    variant: str, tmp_path: Path
) -> None:
    """The roles without a model watch the broker as the classify role does (issue 28), the
    aggregate role in both modes (issue 27)."""
    role, _, mode = variant.partition("-")
    broker = EmbeddedBroker(log_path=tmp_path / "tansu.log").start()
    drop = tmp_path / "drop"
    drop.mkdir()
    kafka = unique_kafka_settings(
        broker.bootstrap_servers, broker_down_after_sec=3, broker_exit_after_sec=15
    )
    port = free_port()
    config = tmp_path / "finmon.yaml"
    body = {
        "kafka": kafka.model_dump(),
        "metrics": {"enabled": True, "port": port},
        "state": {"dir": str(tmp_path / "state")},
        "sources": {"drop_folder": {"dir": str(drop)}},
        **({"aggregate": {"mode": mode}} if mode else {}),
    }
    config.write_text(yaml.safe_dump(body))
    log = tmp_path / "daemon.log"
    daemon = start_daemon(config, log, role=role)
    try:
        started = wait_for(lambda: scrape(port, BROKER_UP) == 1 and _readiness(port)[0] == 200, 120)
        assert started is not None, log.read_text()[-3000:]
        assert broker.pid is not None
        os.kill(broker.pid, signal.SIGKILL)
        killed = time.monotonic()
        flagged = wait_for(lambda: scrape(port, BROKER_UP) == 0, 60)
        assert flagged is not None, log.read_text()[-3000:]
        status, reasons = _readiness(port)
        code = daemon.wait(120)
        exited = time.monotonic() - killed
    finally:
        broker.stop()
        stop(daemon)
    text = log.read_text()
    assert status == 503 and f"the {role} role's broker calls are failing" in reasons, reasons
    assert code == 1, text[-3000:]
    assert f"ERROR monitor.ingest.health: {role} role: broker at kafka.bootstrap_servers" in text
    assert "failed every call" in text, text[-3000:]
    Figures(
        f"broker kill -9 under `finmon run --role {role}` {mode} (broker_down_after_sec 3, "
        "broker_exit_after_sec 15)",
        sent=0, scored=0, dead_lettered=0, lost=0, duplicates=0,
        recover_sec=None,
        note=f"finmon_broker_up{{role={role!r}}} 0 and /readyz 503 after {flagged:.1f} s; exit "
        f"status 1 after {exited:.1f} s (start-up {started:.1f} s)",
    ).report()  # fmt: skip
