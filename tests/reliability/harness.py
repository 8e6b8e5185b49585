"""What the classify-path reliability tests share: the daemon as a subprocess, its memory, the
poison catalogue, and the figures they report (docs/reliability.md).

Set ``RELIABILITY_FIGURES=FILE`` to have each scenario append one JSON line of figures
(sent, scored, dead-lettered, lost, duplicates, recovery time, RSS before and after); the tests
assert the bounds either way.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from monitor.settings import KafkaSettings
from tests.kafka_helpers import news

FIGURES_ENV = "RELIABILITY_FIGURES"  # not FINMON_*: the daemons would read it as a setting


def _deep(levels: int) -> bytes:
    return b'{"id": "deep", "headline": "x", "z": ' + b"[" * levels + b"]" * levels + b"}"


# name -> (payload, the DLQ reason it must get, or None: it must be scored). Each payload that
# crashed (or blinded) the daemon before issue 28, plus the classic contract breaches.
POISON: dict[str, tuple[bytes, str | None]] = {
    "lone_surrogate": (b'{"id": "p-sur", "headline": "Shares \\ud800 fall"}', None),
    "deep_nesting_10000": (_deep(10_000).replace(b'"deep"', b'"p-deep"'), "too_deep"),
    "published_at_overflow": (
        b'{"id": "p-ovf", "headline": "x", "published_at": "0001-01-01T00:00:00+14:00"}',
        "bad_published_at",
    ),
    "published_at_9999": (
        b'{"id": "p-9999", "headline": "x", "published_at": "9999-01-01T00:00:00Z"}',
        "bad_published_at",
    ),
    "integer_5000_digits": (
        b'{"id": "p-int", "headline": "x", "n": ' + b"9" * 5000 + b"}",
        "bad_number",
    ),
    "nan": (b'{"id": "p-nan", "headline": "x", "n": NaN}', "bad_number"),
    "infinity": (b'{"id": "p-inf", "headline": "x", "n": Infinity}', "bad_number"),
    "input_2_mb": (b'{"id": "p-big", "headline": "' + b"x" * 2_000_000 + b'"}', "too_large"),
    # JSON that grows by half when re-serialised ("1E2" is written back as 100.0): under
    # decode's limit as input, past the producer's limit as output.
    "output_too_large": (
        b'{"id": "p-grow", "headline": "x", "pad": [' + b"1E2," * 240_000 + b"1E2]}",
        "too_large_output",
    ),
    "not_json": (b"{oops", "not_json"),
    "not_utf8": (b"\xff\xfe", "not_utf8"),
    "empty": (b"", "empty"),
    "missing_id": (b'{"headline": "no id"}', "missing_id"),
    "id_257_chars": (b'{"id": "p-' + b"i" * 255 + b'", "headline": "x"}', "too_long_id"),
}


@dataclass
class Figures:
    """One scenario's row in docs/reliability.md."""

    scenario: str
    sent: int
    scored: int
    dead_lettered: int
    lost: int
    duplicates: int
    recover_sec: float | None = None
    rss_before_mib: float | None = None
    rss_after_mib: float | None = None
    note: str = ""

    def report(self) -> None:
        target = os.environ.get(FIGURES_ENV)
        if target:
            with open(target, "a", encoding="utf-8") as out:
                out.write(json.dumps(asdict(self)) + "\n")


def rss_mib(pid: int) -> float:
    """Resident memory of a process, MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def write_config(tmp_path: Path, kafka: KafkaSettings, model_dir: Path, **sections: Any) -> Path:
    config = tmp_path / "finmon.yaml"
    body: dict[str, Any] = {
        "kafka": kafka.model_dump(),
        "model": {"path": str(model_dir), "device": "cpu", "torch_threads": 1},
        "metrics": {"enabled": False},
        "state": {"dir": str(tmp_path / "state")},
    }
    for name, values in sections.items():
        body[name] = {**body.get(name, {}), **values}
    config.write_text(yaml.safe_dump(body))
    return config


def start_daemon(config: Path, log: Path, role: str = "classify") -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "monitor", "run", "--config", str(config), "--role", role],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def stop(proc: subprocess.Popen[bytes], timeout_sec: float = 30) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_sec)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return int(proc.returncode)


def valid_stream(start: int, count: int) -> Iterable[bytes]:
    return (news(i) for i in range(start, start + count))


def wait_for(condition: Any, timeout_sec: float, interval_sec: float = 0.2) -> float | None:
    """Seconds until ``condition()`` held, or None when ``timeout_sec`` passed first."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_sec:
        if condition():
            return time.monotonic() - started
        time.sleep(interval_sec)
    return None


class TopicReader:
    """Reads a topic from its start, without a group, keeping every record it has seen."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_bytes=8 * 1024 * 1024,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        deadline = time.monotonic() + 180  # the daemon creates its topics after its model loads
        while not self._consumer.partitions_for_topic(topic) and time.monotonic() < deadline:
            time.sleep(0.5)
        partitions = sorted(self._consumer.partitions_for_topic(topic) or [])
        assert partitions, f"topic {topic} did not appear"
        parts = [TopicPartition(topic, p) for p in partitions]
        self._consumer.assign(parts)
        self._consumer.seek_to_beginning(*parts)
        self.records: list[Any] = []
        self.closed = False

    def poll(self) -> list[Any]:
        """Every record so far (after one more fetch while open)."""
        if self.closed:
            return self.records
        for batch in self._consumer.poll(timeout_ms=200).values():
            self.records.extend(batch)
        return self.records

    def ids(self) -> list[str]:
        return [json.loads(r.value)["id"] for r in self.poll()]

    def close(self) -> None:
        self.closed = True
        self._consumer.close()


def committed_total(bootstrap: str, group: str, topic: str) -> int:
    """Input offsets the group has committed, summed over the topic's partitions."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        return sum(consumer.committed(TopicPartition(topic, p)) or 0 for p in parts)
    finally:
        consumer.close()


def scrape(port: int, name: str) -> float | None:
    """The first sample of metric ``name`` on a daemon's /metrics, or None when unreachable."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            return float(line.rsplit(" ", 1)[1])
    return None
