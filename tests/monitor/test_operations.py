"""Operations on the real broker: readiness, liveness, model hot reload, drain on SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from monitor.broker import EmbeddedBroker
from monitor.classify.entities import EntityQuery
from monitor.classify.model import CARD_FILE, HEADS_FILE
from monitor.contract import Prediction
from monitor.daemon import Daemon, RoleFailed
from monitor.settings import KafkaSettings, Settings
from tests.http_helpers import call_json
from tests.kafka_helpers import (
    drain,
    news,
    produce,
    start_worker,
    unique_kafka_settings,
    worker_config,
)
from tests.keyword_classifier import KeywordClassifier
from tests.polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOKEN = "ops-test-token"


def _settings(kafka: KafkaSettings, tmp_path: Path, **extra: Any) -> Settings:
    fields: dict[str, Any] = {
        "kafka": kafka,
        "metrics": {"port": 0},
        "state": {"dir": str(tmp_path / "state")},
        "reload": {"admin_token": TOKEN, "watch": False, "canary_items": 16},
        "health": {"broker_check_interval_ms": 200},
    }
    return Settings(**{**fields, **extra})


def _reasons(daemon: Daemon, path: str) -> dict[str, str]:
    status, body = call_json(daemon.metrics_port or 0, path)
    assert (status == 200) == (body["status"] == "ok")
    return dict(body["reasons"])


def _scored(bootstrap: str, topic: str, ids: Sequence[str], timeout_sec: float) -> list[Any]:
    wanted = set(ids)
    records = drain(
        bootstrap, topic, lambda rs: {json.loads(r.value)["id"] for r in rs} >= wanted, timeout_sec
    )
    return [json.loads(r.value) for r in records]


class GatedKeyword(KeywordClassifier):
    """Its first call (the warm-up) waits for the gate; ``crash`` in a text kills its thread."""

    def __init__(self) -> None:
        self.gate = threading.Event()

    def predict(
        self, texts: Sequence[str], entities: Sequence[Sequence[EntityQuery]] | None = None
    ) -> list[Prediction]:
        self.gate.wait(30)
        if any("crash" in t for t in texts):
            raise ModelThreadCrash("simulated fault outside the per-item retry")
        return super().predict(texts)


class ModelThreadCrash(BaseException):
    """Not an Exception: escapes the owner's per-item isolation and ends the model thread."""


def test_ready_only_after_warm_up_and_assignment(broker: EmbeddedBroker, tmp_path: Path) -> None:
    kafka = unique_kafka_settings(broker.bootstrap_servers, topic_partitions=1)
    first_model = GatedKeyword()
    first = Daemon.from_settings(_settings(kafka, tmp_path / "a"), classifier=first_model)
    first.start()
    second = Daemon.from_settings(
        _settings(kafka, tmp_path / "b", role="classify"), classifier=KeywordClassifier()
    )
    try:
        # Warm-up blocked: the consumer does not exist yet, so nothing is assigned either.
        assert {"model", "classify.partitions"} <= set(_reasons(first, "/readyz"))
        first_model.gate.set()
        assert wait_until(lambda: _reasons(first, "/readyz") == {}, 60)
        assert _reasons(first, "/healthz") == {}
        # Two members, one partition: one of them (the group decides which) gets nothing and is
        # live but not ready; when the other leaves, it takes the partition over and is ready.
        second.start()
        members = (first, second)

        def split() -> tuple[Daemon, Daemon] | None:
            reasons = [_reasons(d, "/readyz").get("classify.partitions", "") for d in members]
            if sorted(reasons) == [
                "",
                "the group assigned no partition (more members than partitions?)",
            ]:
                return members[reasons.index("")], members[1 - reasons.index("")]
            return None

        assert wait_until(lambda: split() is not None, 90)
        owner, idle = split() or members
        assert _reasons(idle, "/healthz") == {}
        owner.stop()  # leaves the group: the partition moves to the idle member
        assert wait_until(lambda: _reasons(idle, "/readyz") == {}, 60)
    finally:
        first.stop()
        second.stop()


def test_liveness_fails_when_the_model_thread_dies(broker: EmbeddedBroker, tmp_path: Path) -> None:
    kafka = unique_kafka_settings(broker.bootstrap_servers)
    model = GatedKeyword()
    model.gate.set()
    settings = _settings(kafka, tmp_path, role="classify", health={"stall_after_ms": 1_000})
    daemon = Daemon.from_settings(settings, classifier=model)
    daemon.start()
    try:
        assert wait_until(lambda: _reasons(daemon, "/readyz") == {}, 60)
        time.sleep(2.5)  # idle for longer than stall_after_ms: idle passes still count
        assert _reasons(daemon, "/healthz") == {}
        produce(broker.bootstrap_servers, kafka.raw_topic, [news(1, headline="crash now")])
        assert wait_until(lambda: "classify.model" in _reasons(daemon, "/healthz"), 30)
        status, body = call_json(daemon.metrics_port or 0, "/healthz")
        assert status == 503 and body["status"] == "fail"
        assert body["reasons"]["classify.model"] == "thread finmon-model has ended"
    finally:
        with pytest.raises(RoleFailed):
            daemon.stop()


def _export(source: Path, out: Path, version: str) -> Path:
    shutil.copytree(source, out)
    (out / CARD_FILE).write_text(json.dumps({"version": version}))
    return out


def _point(link: Path, target: Path) -> None:
    tmp = link.with_name(link.name + ".new")
    os.symlink(target, tmp)
    os.replace(tmp, link)


class Feed:
    """Produces ``news`` items in small steps on a thread until stopped; remembers the ids."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.ids: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            produce(self.bootstrap, self.topic, [news(j) for j in range(i, i + 10)])
            self.ids += [f"n-{j}" for j in range(i, i + 10)]
            i += 10
            time.sleep(0.05)

    def __enter__(self) -> Feed:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def _reload(daemon: Daemon) -> tuple[int, dict[str, Any]]:
    return call_json(daemon.metrics_port or 0, "/admin/reload", method="POST", token=TOKEN)


def test_reload_under_a_stream_switches_once_and_a_corrupt_export_is_rejected(
    broker: EmbeddedBroker, tiny_model_dir: Path, tmp_path: Path
) -> None:
    bs = broker.bootstrap_servers
    v1 = _export(tiny_model_dir, tmp_path / "v1", "tiny-v1")
    v2 = _export(tiny_model_dir, tmp_path / "v2", "tiny-v2")
    corrupt = _export(tiny_model_dir, tmp_path / "corrupt", "tiny-corrupt")
    (corrupt / HEADS_FILE).write_bytes(b"\x00 not safetensors")
    current = tmp_path / "current"
    _point(current, v1)
    kafka = unique_kafka_settings(bs, topic_partitions=1)
    model = {"path": str(current), "device": "cpu", "max_wait_ms": 5}
    daemon = Daemon.from_settings(_settings(kafka, tmp_path, role="classify", model=model))
    daemon.start()
    try:
        assert wait_until(lambda: _reasons(daemon, "/readyz") == {}, 60)
        with Feed(bs, kafka.raw_topic) as feed:
            assert wait_until(lambda: len(feed.ids) >= 100, 60)
            _point(current, v2)
            status, answer = _reload(daemon)
            assert (status, answer["version"]) == (200, "tiny-v2"), answer
            before = len(feed.ids)
            assert wait_until(lambda: len(feed.ids) >= before + 100, 60)
            _point(current, corrupt)
            status, answer = _reload(daemon)
            assert (status, answer["reason"], answer["version"]) == (422, "load", "tiny-v2")
            before = len(feed.ids)
            assert wait_until(lambda: len(feed.ids) >= before + 50, 60)
        scored = _scored(bs, kafka.scored_topic, feed.ids, 120)
        metrics = daemon.metrics.registry
    finally:
        daemon.stop()
    order = {item_id: i for i, item_id in enumerate(feed.ids)}
    versions = [r["model_version"] for r in sorted(scored, key=lambda r: order[r["id"]])]
    assert sorted(order[r["id"]] for r in scored) == list(range(len(feed.ids)))  # each id once
    switch = versions.index("tiny-v2")
    assert switch > 0 and set(versions[:switch]) == {"tiny-v1"}
    assert set(versions[switch:]) == {"tiny-v2"}, "the corrupt export must never serve"
    rejected = {"outcome": "rejected", "reason": "load"}
    assert metrics.get_sample_value("finmon_model_reloads_total", rejected) == 1
    (info,) = [m for m in metrics.collect() if m.name == "finmon_model"]
    assert [x.labels["version"] for x in info.samples] == ["tiny-v2"]
    assert info.samples[0].labels["device"] == "cpu"


def _drained_ms(log: str) -> float:
    line = next(x for x in log.splitlines() if "classify drained in" in x)
    return float(line.split("classify drained in ")[1].split(" ms")[0])


def test_sighup_reloads_and_sigterm_drains_in_the_grace_period_losing_nothing(
    broker: EmbeddedBroker, tiny_model_dir: Path, tmp_path: Path
) -> None:
    bs = broker.bootstrap_servers
    grace_ms = 10_000
    kafka = unique_kafka_settings(bs, max_poll_records=32)
    shutdown = {"grace_period_ms": grace_ms}
    config = worker_config(tmp_path, kafka, tiny_model_dir, shutdown=shutdown)
    log = tmp_path / "worker.log"
    worker = start_worker(config, log)
    with Feed(bs, kafka.raw_topic) as feed:
        assert wait_until(lambda: _count(bs, kafka.scored_topic) >= 100, 120), log.read_text()
        worker.send_signal(signal.SIGHUP)  # a reload of the same export, mid-stream
        assert wait_until(lambda: "swapped in" in log.read_text(), 60), log.read_text()[-2000:]
        worker.send_signal(signal.SIGTERM)  # the feed goes on: SIGTERM lands mid-stream
        rc = worker.wait(grace_ms / 1000 + 10)
    text = log.read_text()
    assert rc == 0, text[-2000:]
    assert _drained_ms(text) <= grace_ms
    # consumer.close() (which sends LeaveGroup) returned before this line is logged
    assert "classify worker stopped" in text
    second = Daemon.from_settings(
        _settings(kafka, tmp_path, role="classify"), classifier=KeywordClassifier()
    )
    second.start()
    try:
        scored = _scored(bs, kafka.scored_topic, feed.ids, 120)
    finally:
        second.stop()
    assert {r["id"] for r in scored} == set(feed.ids), text[-2000:]


def _count(bootstrap: str, topic: str) -> int:
    try:
        return len(drain(bootstrap, topic, lambda rs: False, 0.5))
    except ValueError:  # the worker has not created the topic yet
        return 0
