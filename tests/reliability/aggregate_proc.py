"""The aggregate role as a real process (``finmon run --role aggregate``) for the reliability
tests: start it from a config, scrape its /metrics, read its resident memory, kill it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from monitor.settings import KafkaSettings
from tests.alerts.webhook_helpers import free_port
from tests.headlines import own_story


def scored(
    item_id: str,
    published_ms: int,
    *,
    topic: str = "Earnings",
    negative: bool = False,
    **fields: Any,
) -> bytes:
    """One ``news.scored`` record as the classify role writes it."""
    at = datetime.fromtimestamp(published_ms / 1000, UTC).isoformat().replace("+00:00", "Z")
    prob = 0.9 if negative else 0.05
    body = {
        "id": item_id,
        "headline": own_story(f"{topic} headline", item_id),
        "topic": topic,
        "sentiment": "negative" if negative else "neutral",
        "sentiment_probs": {"negative": prob, "neutral": 1 - prob, "positive": 0.0},
        "sentiment_score": -prob if negative else 0.0,
        "published_at": at,
        "scored_at": at,
        "tickers": [],
        **fields,
    }
    return json.dumps(body).encode()


@dataclass
class AggregateProcess:
    """One ``finmon run --role aggregate`` process at a time, restartable, on one config."""

    config: Path
    log: Path
    metrics_port: int
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @classmethod
    def write(
        cls, tmp_path: Path, kafka: KafkaSettings, **sections: dict[str, Any]
    ) -> AggregateProcess:
        port = free_port()
        config = tmp_path / "finmon.yaml"
        body: dict[str, Any] = {
            "kafka": kafka.model_dump(),
            "metrics": {"enabled": True, "port": port},
            "state": {"dir": str(tmp_path / "state")},
            **sections,
        }
        config.write_text(yaml.safe_dump(body))
        return cls(config, tmp_path / "aggregate.log", port)

    def start(self) -> None:
        command = [sys.executable, "-m", "monitor", "run", "--config", str(self.config)]
        self.proc = subprocess.Popen(
            [*command, "--role", "aggregate"],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def wait_up(self, timeout_sec: float = 120.0) -> float:
        """Seconds until /metrics answers with ``finmon_up{role="aggregate"} 1``."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_sec:
            assert self.proc is not None and self.proc.poll() is None, self.tail()
            if self.sample("finmon_up", {"role": "aggregate"}) == 1:
                return time.monotonic() - started
            time.sleep(0.2)
        raise AssertionError(f"aggregate role not up after {timeout_sec} s: {self.tail()}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)
        return int(self.proc.returncode)

    def metrics_text(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return str(response.read().decode())
        except OSError:
            return ""

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float | None:
        """One sample's value; with ``labels=None`` the sum over the family's samples."""
        total, found = 0.0, False
        for line in self.metrics_text().splitlines():
            if line.startswith("#") or not line.startswith(name):
                continue
            series, _, value = line.rpartition(" ")
            base, _, rest = series.partition("{")
            if base != name:
                continue
            if labels is None or all(f'{k}="{v}"' in rest for k, v in labels.items()):
                total, found = total + float(value), True
                if labels is not None:
                    return total
        return total if found else None

    def rss_mb(self) -> float:
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        (line,) = [x for x in status.splitlines() if x.startswith("VmRSS:")]
        return int(line.split()[1]) / 1024

    def maps(self, library: str) -> list[str]:
        """The process's memory mappings of files whose path contains ``library`` (Linux)."""
        assert self.proc is not None
        lines = Path(f"/proc/{self.proc.pid}/maps").read_text().splitlines()
        return sorted({line.split()[-1] for line in lines if library in line.split()[-1]})

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
