"""Every poison category through the real broker: the daemon stays up, every valid id is
scored, every invalid one is in news.dlq with its reason (issue 28, defect 1 and item 8)."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from monitor.broker import EmbeddedBroker
from monitor.classify.engine import TorchClassifier
from monitor.classify.entities import EntityQuery
from monitor.classify.isolate import ModelUnavailable
from monitor.contract import DLQ_ERROR_HEADER, DLQ_REASON_HEADER, Prediction
from monitor.ingest.classify_worker import ClassifyWorker
from monitor.metrics import Metrics
from tests.kafka_helpers import news, produce, unique_kafka_settings
from tests.reliability.harness import (
    POISON,
    Figures,
    TopicReader,
    rss_mib,
    start_daemon,
    stop,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.integration

VALID = 300


def _interleave(valid: list[bytes], poison: list[bytes]) -> list[bytes]:
    step = max(1, len(valid) // (len(poison) + 1))
    out: list[bytes] = []
    for i, value in enumerate(valid):
        out.append(value)
        if i % step == step - 1 and poison:
            out.append(poison.pop())
    return out + poison


@pytest.mark.slow
def test_every_poison_category_through_the_daemon(
    broker: EmbeddedBroker, tiny_model_dir: Path, tmp_path: Path
) -> None:
    kafka = unique_kafka_settings(broker.bootstrap_servers, max_poll_records=32)
    config = write_config(tmp_path, kafka, tiny_model_dir)
    log = tmp_path / "daemon.log"
    daemon = start_daemon(config, log)
    scored = TopicReader(broker.bootstrap_servers, kafka.scored_topic)
    dlq = TopicReader(broker.bootstrap_servers, kafka.dlq_topic)
    try:
        # The daemon has loaded its model once it scores a first item.
        produce(broker.bootstrap_servers, kafka.raw_topic, [news(-1)])
        assert wait_for(scored.poll, 120) is not None, log.read_text()[-3000:]
        rss_before = rss_mib(daemon.pid)
        valid = [news(i) for i in range(VALID)]
        poison = [payload for payload, _ in POISON.values()]
        sent = produce(broker.bootstrap_servers, kafka.raw_topic, _interleave(valid, poison))
        expected_ids = {f"n-{i}" for i in range(-1, VALID)} | {"p-sur"}
        expected_dlq = Counter(reason for _, reason in POISON.values() if reason)
        waited = wait_for(
            lambda: (
                set(scored.ids()) >= expected_ids and len(dlq.poll()) >= sum(expected_dlq.values())
            ),
            180,
        )
        assert daemon.poll() is None, log.read_text()[-3000:]  # still up
        rss_after = rss_mib(daemon.pid)
    finally:
        code = stop(daemon)
        scored.close()
        dlq.close()
    ids = [json.loads(r.value)["id"] for r in scored.records]
    assert waited is not None, log.read_text()[-3000:]
    assert set(ids) == expected_ids
    reasons = Counter(dict(r.headers)[DLQ_REASON_HEADER].decode() for r in dlq.records)
    assert reasons == expected_dlq
    surrogate = next(json.loads(r.value) for r in scored.records if b'"p-sur"' in r.value)
    assert surrogate["headline"] == "Shares \ufffd fall"
    assert code == 0, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text()
    Figures(
        "poison: every category once among 300 valid (`finmon run --role classify`)",
        sent=sent,
        scored=len(set(ids)) - 1,  # less the warm-up item
        dead_lettered=len(dlq.records),
        lost=len(expected_ids - set(ids)),
        duplicates=len(ids) - len(set(ids)),
        recover_sec=0.0,
        rss_before_mib=round(rss_before, 1),
        rss_after_mib=round(rss_after, 1),
        note="no restart; the daemon never stopped",
    ).report()


class Poisonous:
    """The real tiny model, except that chosen words crash the tokenizer or the model.

    Both run inside ``predict`` on the model thread: the Kafka thread never tokenizes.
    """

    def __init__(self, inner: TorchClassifier) -> None:
        self.inner = inner
        self.version = inner.version
        self.dead = False

    def predict(
        self, texts: Sequence[str], entities: Sequence[Sequence[EntityQuery]] | None = None
    ) -> list[Prediction]:
        if self.dead:
            raise RuntimeError("CUDA error: device-side assert triggered")
        if any("crash-tokenizer" in t for t in texts):
            raise TypeError("TextEncodeInput must be Union[TextInputSequence, ...]")
        if any("crash-model" in t for t in texts):
            raise IndexError("index out of range in self")
        return self.inner.predict(texts, entities)


def _run(worker: ClassifyWorker) -> tuple[threading.Thread, threading.Event, list[BaseException]]:
    stop_event = threading.Event()
    errors: list[BaseException] = []

    def body() -> None:
        try:
            worker.run(stop_event)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, stop_event, errors


def test_tokenizer_and_model_exceptions_are_dead_letters_and_the_rest_scored(
    broker: EmbeddedBroker, tiny_model_dir: Path, metrics: Metrics
) -> None:
    kafka = unique_kafka_settings(broker.bootstrap_servers)
    model = Poisonous(TorchClassifier.from_dir(tiny_model_dir, device="cpu"))
    thread, stop_event, errors = _run(ClassifyWorker(kafka, model, metrics))
    values = [news(i) for i in range(200)]
    values[50] = news(50, headline="crash-tokenizer here")
    values[120] = news(120, headline="crash-model here")
    scored = TopicReader(broker.bootstrap_servers, kafka.scored_topic)
    dlq = TopicReader(broker.bootstrap_servers, kafka.dlq_topic)
    try:
        produce(broker.bootstrap_servers, kafka.raw_topic, values)
        wanted = {f"n-{i}" for i in range(200)} - {"n-50", "n-120"}
        assert wait_for(lambda: set(scored.ids()) >= wanted and len(dlq.poll()) >= 2, 120)
        assert thread.is_alive() and not errors
    finally:
        stop_event.set()
        thread.join(30)
        scored.close()
        dlq.close()
    assert set(scored.ids()) == wanted
    errors_by_id = {
        json.loads(r.value)["id"]: (
            dict(r.headers)[DLQ_REASON_HEADER],
            dict(r.headers)[DLQ_ERROR_HEADER],
        )
        for r in dlq.records
    }
    assert errors_by_id == {
        "n-50": (b"processing_error", b"TypeError"),
        "n-120": (b"processing_error", b"IndexError"),
    }
    assert metrics.registry.get_sample_value("finmon_classify_model_errors_total") == 2


def test_a_dead_model_stops_the_role_with_a_clear_message_and_dead_letters_nothing(
    broker: EmbeddedBroker, tiny_model_dir: Path, metrics: Metrics
) -> None:
    kafka = unique_kafka_settings(broker.bootstrap_servers)
    model = Poisonous(TorchClassifier.from_dir(tiny_model_dir, device="cpu"))
    model.dead = True
    thread, _, errors = _run(ClassifyWorker(kafka, model, metrics))
    produce(broker.bootstrap_servers, kafka.raw_topic, [news(i) for i in range(20)])
    thread.join(120)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], ModelUnavailable), errors
    assert "not a bad message" in str(errors[0])
    dlq = TopicReader(broker.bootstrap_servers, kafka.dlq_topic)
    try:
        assert wait_for(dlq.poll, 3) is None  # the items wait for a working model
    finally:
        dlq.close()
