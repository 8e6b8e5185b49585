"""Soak the classify role: N minutes at half its measured maximum rate, RSS sampled.

    .venv/bin/python scripts/soak.py --model DIR [--minutes 30] [--out soak.json]

Starts the embedded broker and ``finmon run --role classify`` (a subprocess, model DIR on CPU),
measures the maximum rate on a 2,000-item backlog (``--backlog``), then streams items at half
that rate for ``--minutes``, 1% of them poison (five poison categories in turn). At the end
every valid id must be on news.scored and every poison item on news.dlq. Prints one JSON
object: rates, sent, scored, dead-lettered, lost, duplicates, RSS at start / end / peak (MiB) and
the growth, overall and after ``--warmup-minutes`` (the bounded prediction cache, queues and
client buffers fill first); exits 1 when anything is lost or RSS grew by more than
``--max-growth-mib`` after the warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from monitor.broker import EmbeddedBroker, free_port

POISON = (
    b"{oops",
    b'{"id": "p", "headline": "x", "n": NaN}',
    b'{"id": "p", "headline": "x", "z": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    b'{"id": "p", "headline": "x", "published_at": "0001-01-01T00:00:00+14:00"}',
    b'{"id": "p", "headline": "x", "n": ' + b"9" * 5000 + b"}",
)
HEADLINES = (
    "Oil prices slide as inventories build",
    "Bank shares rally after upbeat earnings",
    "Regulator opens probe into chipmaker",
    "Central bank holds rates, signals patience",
)


def item(i: int) -> bytes:
    return json.dumps(
        {
            "id": f"s-{i}",
            "headline": f"{HEADLINES[i % len(HEADLINES)]} ({i})",
            "source": "soak",
            "tickers": ["ACME"],
        }
    ).encode()


class Counter:
    """Reads news.scored and news.dlq from the start; ids and counts so far."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
        )
        deadline = time.monotonic() + 300
        parts: list[TopicPartition] = []
        while time.monotonic() < deadline:
            found = [self.consumer.partitions_for_topic(t) for t in topics]
            if all(found):
                parts = [
                    TopicPartition(t, p)
                    for t, ps in zip(topics, found, strict=True)
                    for p in ps or ()
                ]
                break
            time.sleep(0.5)
        self.consumer.assign(parts)
        self.consumer.seek_to_beginning(*parts)
        self.scored: list[str] = []
        self.dlq = 0
        self.scored_topic = topics[0]

    def poll(self) -> None:
        for tp, batch in self.consumer.poll(timeout_ms=200, max_records=5000).items():
            if tp.topic == self.scored_topic:
                self.scored.extend(json.loads(r.value)["id"] for r in batch)
            else:
                self.dlq += len(batch)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_summary(
    timeline: list[tuple[float, float]], rss_end: float, peak: float, warmup_minutes: float
) -> dict[str, Any]:
    """RSS figures (MiB) overall and after the warm-up; ``timeline``: (minute, RSS) pairs."""
    rss_start = timeline[0][1]
    after = [v for m, v in timeline if m >= warmup_minutes] or [rss_end]
    return {
        "rss_start_mib": round(rss_start, 1),
        "rss_end_mib": round(rss_end, 1),
        "rss_peak_mib": round(peak, 1),
        "rss_growth_mib": round(rss_end - rss_start, 1),
        "rss_after_warmup_mib": after[0],
        "rss_growth_after_warmup_mib": round(rss_end - after[0], 1),
        "rss_peak_after_warmup_mib": max([*after, rss_end]),
        "rss_by_minute_mib": timeline,
    }


def wait_scored(counter: Counter, wanted: int, timeout_sec: float) -> float:
    started = time.monotonic()
    while len(set(counter.scored)) < wanted and time.monotonic() - started < timeout_sec:
        counter.poll()
    return time.monotonic() - started


def stream(producer: KafkaProducer, topic: str, start: int, rate: float, seconds: float) -> int:
    """Valid items at ``rate`` per second (1% poison); the number of valid items sent."""
    sent = 0
    began = time.monotonic()
    while (elapsed := time.monotonic() - began) < seconds:
        due = int(elapsed * rate)
        while sent < due:
            producer.send(topic, value=item(start + sent))
            sent += 1
            if sent % 100 == 0:
                producer.send(topic, value=POISON[(sent // 100) % len(POISON)])
        time.sleep(0.05)
    producer.flush(60)
    return sent


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="finmon-soak-"))
    with EmbeddedBroker(log_path=work / "tansu.log") as broker:
        kafka = {"bootstrap_servers": broker.bootstrap_servers, "max_poll_records": 64}
        config = work / "finmon.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "kafka": kafka,
                    "model": {"path": str(args.model), "device": "cpu"},
                    "metrics": {"enabled": True, "port": free_port()},
                    "state": {"dir": str(work / "state")},
                }
            )
        )
        log = (work / "daemon.log").open("wb")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "--config", str(config), "--role", "classify"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("FINMON_")},
        )
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
        try:
            producer.send("news.raw", value=item(-1))
            producer.flush(60)
            counter = Counter(broker.bootstrap_servers, ["news.scored", "news.dlq"])
            wait_scored(counter, 1, 300)
            backlog = args.backlog
            for i in range(backlog):
                producer.send("news.raw", value=item(i))
            producer.flush(60)
            max_rate = backlog / wait_scored(counter, backlog + 1, 900)
            rate = max_rate / 2
            rss_start = rss_mib(daemon.pid)
            samples = [rss_start]
            began = time.monotonic()
            timeline: list[tuple[float, float]] = [(0.0, rss_start)]
            done = threading.Event()

            def sample() -> None:
                while not done.wait(10):
                    samples.append(rss_mib(daemon.pid))
                    minute = (time.monotonic() - began) / 60
                    if minute - timeline[-1][0] >= 1:
                        timeline.append((round(minute, 1), round(samples[-1], 1)))
                    counter.poll()  # the main thread does not poll while this runs

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            sent = stream(producer, "news.raw", backlog, rate, args.minutes * 60)
            done.set()
            sampler.join()
            total = backlog + 1 + sent
            wait_scored(counter, total, 600)
            tail_end = time.monotonic() + 5
            while time.monotonic() < tail_end:
                counter.poll()
            rss_end = rss_mib(daemon.pid)
            alive = daemon.poll() is None
        finally:
            daemon.terminate()
            daemon.wait(60)
            producer.close()
    ids = counter.scored
    wanted = {f"s-{i}" for i in range(-1, backlog + sent)}
    return {
        "model": str(args.model),
        "minutes": args.minutes,
        "max_rate_items_per_sec": round(max_rate, 1),
        "soak_rate_items_per_sec": round(rate, 1),
        "sent_valid": total,
        "sent_poison": sent // 100,
        "scored_unique": len(set(ids)),
        "dead_lettered": counter.dlq,
        "lost": len(wanted - set(ids)),
        "duplicates": len(ids) - len(set(ids)),
        "daemon_alive_at_end": alive,
        "exit_status": daemon.returncode,
        **rss_summary(timeline, rss_end, max(samples), args.warmup_minutes),
        "rss_samples": len(samples),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="exported FinMon model dir")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--backlog", type=int, default=2000, help="items of the max-rate burst")
    parser.add_argument("--max-growth-mib", type=float, default=100.0, help="after the warm-up")
    parser.add_argument("--warmup-minutes", type=float, default=5.0)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    failed = result["lost"] or result["dead_lettered"] < result["sent_poison"]
    if (
        failed
        or result["rss_growth_after_warmup_mib"] > args.max_growth_mib
        or not result["daemon_alive_at_end"]
    ):
        sys.exit(1)


if __name__ == "__main__":
    main()
