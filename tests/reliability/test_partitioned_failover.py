"""``kill -9`` one of two partitioned aggregators mid-stream: the survivor takes its partitions
over with their state (windows, baselines, rule states) restored from the changelog, and every
alert transition one uninterrupted aggregator raises reaches the receiver; the only duplicates
are redeliveries of the same idempotency key."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from alerts.receiver import ReceiverConfig, WebhookReceiver
from monitor.broker import EmbeddedBroker
from tests.alerts.webhook_helpers import SECRET
from tests.kafka_helpers import unique_kafka_settings
from tests.polling import wait_until
from tests.reliability.aggregate_proc import AggregateProcess
from tests.reliability.scored_stream import AGGREGATE, expected, feed, stream

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RESTORED = "finmon_aggregate_changelog_records_total"
# Waits on a loaded 2-core machine: each is an upper bound on an event, never a sleep.
UP_SEC, CHECKPOINT_SEC, ALERTS_SEC = 180.0, 180.0, 300.0


def test_kill_9_of_one_of_two_aggregators_loses_no_alert(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    records = stream()
    want = expected(records)
    kafka = unique_kafka_settings(broker.bootstrap_servers, topic_partitions=3)
    aggregate = {**AGGREGATE, "mode": "partitioned", "commit_interval_ms": 500}
    with WebhookReceiver(config=ReceiverConfig(secret=SECRET)) as receiver:
        alerts = {"webhook_urls": [receiver.url + "risk"], "webhook_secret": SECRET}
        procs = []
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            procs.append(
                AggregateProcess.write(tmp_path / name, kafka, aggregate=aggregate, alerts=alerts)
            )
        victim, survivor = procs
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.wait_up(UP_SEC)
        done = threading.Event()
        producer = threading.Thread(
            target=feed, args=(broker.bootstrap_servers, kafka.scored_topic, records, done)
        )
        producer.start()
        try:
            # Kill once both hold state in the changelog (so the victim's partitions have some to
            # restore) and at least 3 s into the stream.
            kill_after = time.monotonic() + 3

            def both_checkpointed() -> bool:
                return (
                    all(
                        (p.sample(RESTORED, {"direction": "write"}) or 0) > 0
                        and p.sample("finmon_aggregate_restoring_partitions") == 0
                        for p in procs
                    )
                    and time.monotonic() >= kill_after
                )

            assert wait_until(both_checkpointed, CHECKPOINT_SEC, 0.5), victim.tail()
            restored_before = survivor.sample(RESTORED, {"direction": "restore"}) or 0.0
            victim.kill()
            producer.join(ALERTS_SEC)
            assert done.is_set()

            def arrived() -> bool:
                return {(a.idempotency_key, a.status) for a in receiver.alerts()} >= want

            assert wait_until(arrived, ALERTS_SEC, 0.5), survivor.tail()
            restored_after = survivor.sample(RESTORED, {"direction": "restore"}) or 0.0
            restoring = survivor.sample("finmon_aggregate_restoring_partitions")
        finally:
            code = survivor.stop()
        got = [(a.idempotency_key, a.status) for a in receiver.alerts()]
    assert set(got) == want  # none lost, none that should not be
    assert code == 0, survivor.tail()
    # The survivor restored the victim's partitions from their changelog, not from nothing.
    assert restored_after > restored_before, survivor.tail()
    assert restoring == 0
    print(
        f"\nFIGURES partitioned_failover: sent={len(records)} alerts_expected={len(want)} "
        f"received={len(got)} duplicates={len(got) - len(set(got))} (same key) "
        f"restored_records={restored_after - restored_before:.0f}"
    )
