"""``kill -9`` the source role 10 times while files flow into its drop folder: every id reaches
news.raw (0 missing); the duplicates are the rows of files produced again after a kill before
their move to done/ (same ids, dropped downstream). The source role imports no torch, so a
restart takes seconds."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest
import yaml

from monitor.broker import EmbeddedBroker, free_port
from tests.kafka_helpers import unique_kafka_settings
from tests.reliability.harness import (
    Figures,
    TopicReader,
    rss_mib,
    scrape,
    start_daemon,
    stop,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KILLS = int(os.environ.get("RELIABILITY_KILLS", "10"))
FILES = 60
ROWS = 50


def _drop_files(folder: Path, done: threading.Event) -> None:
    """FILES files of ROWS items, one every 0.3 s, each written aside and renamed in place."""
    for f in range(FILES):
        rows = [
            {"id": f"d-{f}-{r}", "headline": f"Shares of company {f} move on report {r}"}
            for r in range(ROWS)
        ]
        aside = folder / f".batch-{f}.tmp"
        aside.write_text("".join(json.dumps(row) + "\n" for row in rows))
        aside.rename(folder / f"batch-{f}.jsonl")
        time.sleep(0.3)
    done.set()


def test_kill_9_of_the_source_role_loses_no_dropped_item(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    kafka = unique_kafka_settings(broker.bootstrap_servers)
    port = free_port()
    config = tmp_path / "finmon.yaml"
    folder = {"dir": str(drop), "scan_interval_sec": 0.2, "settle_sec": 0}
    body = {
        "kafka": kafka.model_dump(),
        "metrics": {"enabled": True, "port": port},
        "state": {"dir": str(tmp_path / "state")},
        "sources": {"drop_folder": folder},
    }
    config.write_text(yaml.safe_dump(body))
    log = tmp_path / "source.log"
    rng = random.Random(28)

    def up() -> bool:
        return scrape(port, "finmon_up") == 1

    daemon = start_daemon(config, log, role="source")
    startups = [wait_for(up, 120)]
    assert startups[0] is not None, log.read_text()[-3000:]
    raw = TopicReader(broker.bootstrap_servers, kafka.raw_topic)
    written = threading.Event()
    writer = threading.Thread(target=_drop_files, args=(drop, written))
    writer.start()
    try:
        rss_before = rss_mib(daemon.pid)
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.5, 2.0))
            daemon.send_signal(signal.SIGKILL)
            daemon.wait(10)
            daemon = start_daemon(config, log, role="source")
            startups.append(wait_for(up, 120))
            assert startups[-1] is not None, log.read_text()[-3000:]
        writer.join(120)
        assert written.is_set()
        wanted = {f"d-{f}-{r}" for f in range(FILES) for r in range(ROWS)}
        assert wait_for(lambda: set(raw.ids()) >= wanted, 120), log.read_text()[-3000:]
        assert wait_for(lambda: len(list((drop / "done").glob("*.jsonl"))) == FILES, 60)
        rss_after = rss_mib(daemon.pid)
    finally:
        code = stop(daemon)
        raw.close()
    ids = raw.ids()
    assert code == 0, log.read_text()[-3000:]
    failed = drop / "failed"
    assert not failed.exists() or not any(failed.iterdir())
    times = [t for t in startups if t is not None]
    Figures(
        f"kill -9 of the source role {KILLS} times while {FILES} files of {ROWS} items drop in",
        sent=len(wanted),
        scored=len(set(ids)),
        dead_lettered=0,
        lost=len(wanted - set(ids)),
        duplicates=len(ids) - len(set(ids)),
        recover_sec=round(max(times), 1),
        rss_before_mib=round(rss_before, 1),
        rss_after_mib=round(rss_after, 1),
        note=f"restart to finmon_up 1: {sum(times) / len(times):.1f} s mean, "
        f"{max(times):.1f} s max; duplicates are files produced again after a kill",
    ).report()
