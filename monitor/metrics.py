"""Every FinMon metric, defined in one place against an injected registry.

Naming: ``finmon_<subsystem>_<name>_<unit>``; counters end in ``_total``. Label values are bounded:
topic (the model's label set), sentiment (three values), reason (the DLQ reason codes), rule,
severity, key_kind, stage. Window and detector state is exported by a custom collector
(:meth:`Metrics.register_collector`), not by gauges set all over the code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.registry import Collector

LATENCY_BUCKETS_SEC = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
STAGE_BUCKETS_SEC = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
BATCH_TOKEN_BUCKETS = (64, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)


@dataclass(frozen=True)
class Metrics:
    """The instruments of one process. Build with :func:`build_metrics`; tests use a fresh one."""

    registry: CollectorRegistry
    # ingest / classify
    messages_consumed: Counter
    items_scored: Counter
    dlq_messages: Counter
    duplicates_skipped: Counter
    model_errors: Counter
    produce_errors: Counter
    backpressure_pauses: Counter
    batch_size: Histogram
    batch_tokens: Histogram
    stage_seconds: Histogram
    queue_depth: Gauge
    cache_hits: Counter
    consumer_lag: Gauge
    broker_up: Gauge
    text_repairs: Counter
    # aggregate
    items_aggregated: Counter
    late_items: Counter
    future_items: Counter
    windows_closed: Counter
    e2e_latency_seconds: Histogram
    last_item_timestamp_seconds: Gauge
    owned_partitions: Gauge
    stream_partitions: Gauge
    restore_seconds: Histogram
    restoring_partitions: Gauge
    changelog_records: Counter
    partial_bundles: Counter
    # alerts
    alerts_raised: Counter
    webhook_deliveries: Counter
    webhook_undelivered: Counter
    sink_errors: Counter
    webhook_outbox_depth: Gauge
    up: Gauge
    # sources (feeds, push, drop folder); per-source state is the collector of monitor.sources
    source_polls: Counter
    source_errors: Counter
    source_items: Counter
    source_poll_seconds: Histogram
    push_requests: Counter
    push_seconds: Histogram
    dropfolder_files: Counter
    # operations
    build_info: Info
    model_info: Info
    model_reloads: Counter
    drain_seconds: Gauge

    def register_collector(self, collector: Collector) -> None:
        """Expose derived state (windows, detectors) computed at scrape time."""
        self.registry.register(collector)


def build_metrics(registry: CollectorRegistry | None = None) -> Metrics:
    """Create every instrument on ``registry`` (a fresh one when omitted)."""
    reg = registry if registry is not None else CollectorRegistry()
    return Metrics(
        registry=reg,
        messages_consumed=Counter(
            "finmon_ingest_messages_consumed_total", "Messages read from news.raw.", registry=reg
        ),
        items_scored=Counter(
            "finmon_classify_items_total",
            "Items scored and acknowledged on news.scored, by predicted topic and sentiment.",
            ["topic", "sentiment"],
            registry=reg,
        ),
        dlq_messages=Counter(
            "finmon_ingest_dlq_messages_total",
            "Messages sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=reg,
        ),
        duplicates_skipped=Counter(
            "finmon_aggregate_duplicates_total",
            "Scored records already counted (at-least-once redelivery), skipped by id.",
            registry=reg,
        ),
        model_errors=Counter(
            "finmon_classify_model_errors_total", "Batches the model failed on.", registry=reg
        ),
        produce_errors=Counter(
            "finmon_ingest_produce_errors_total",
            "Produce attempts the broker did not acknowledge (the batch is retried).",
            registry=reg,
        ),
        backpressure_pauses=Counter(
            "finmon_ingest_backpressure_pauses_total",
            "Times the classify worker paused its partitions because the model queue was full.",
            registry=reg,
        ),
        batch_size=Histogram(
            "finmon_classify_batch_size_items",
            "Items per model batch.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=reg,
        ),
        batch_tokens=Histogram(
            "finmon_classify_batch_tokens",
            "Padded tokens per model batch.",
            buckets=BATCH_TOKEN_BUCKETS,
            registry=reg,
        ),
        stage_seconds=Histogram(
            "finmon_classify_stage_seconds",
            "Seconds per batch in each stage: decode, queue_wait (oldest item), tokenize, forward, "
            "postprocess, encode, produce (handing records to the producer), commit.",
            ["stage"],
            buckets=STAGE_BUCKETS_SEC,
            registry=reg,
        ),
        queue_depth=Gauge(
            "finmon_classify_queue_depth_items", "Items waiting for the model.", registry=reg
        ),
        cache_hits=Counter(
            "finmon_classify_cache_hits_total",
            "Texts answered from the recent-prediction cache (no forward pass).",
            registry=reg,
        ),
        consumer_lag=Gauge(
            "finmon_ingest_consumer_lag_messages",
            "Messages behind the end of the log, summed over assigned partitions.",
            ["group"],
            registry=reg,
        ),
        broker_up=Gauge(
            "finmon_broker_up",
            "1 while the role's Kafka calls succeed; 0 after kafka.broker_down_after_sec of "
            "failures (the daemon exits after kafka.broker_exit_after_sec).",
            ["role"],
            registry=reg,
        ),
        text_repairs=Counter(
            "finmon_ingest_text_repaired_chars_total",
            "Unencodable code points (lone surrogates) replaced by U+FFFD at decode.",
            registry=reg,
        ),
        items_aggregated=Counter(
            "finmon_aggregate_items_total",
            "Scored items counted into windows, by topic and sentiment.",
            ["topic", "sentiment"],
            registry=reg,
        ),
        late_items=Counter(
            "finmon_aggregate_late_items_total",
            "Items whose event time was behind the watermark (reported, not windowed).",
            ["topic"],
            registry=reg,
        ),
        future_items=Counter(
            "finmon_aggregate_future_items_total",
            "Items dated beyond aggregate.max_future_ms ahead of the clock (dead-lettered, not "
            "windowed).",
            ["topic"],
            registry=reg,
        ),
        windows_closed=Counter(
            "finmon_aggregate_windows_closed_total",
            "Windows closed, by key kind and what closed them (watermark or idle).",
            ["key_kind", "reason"],
            registry=reg,
        ),
        e2e_latency_seconds=Histogram(
            "finmon_aggregate_e2e_latency_seconds",
            "Seconds from arrival on news.raw to being counted by the aggregator.",
            buckets=LATENCY_BUCKETS_SEC,
            registry=reg,
        ),
        last_item_timestamp_seconds=Gauge(
            "finmon_aggregate_last_item_timestamp_seconds",
            "Unix time at which the aggregator last counted an item.",
            registry=reg,
        ),
        owned_partitions=Gauge(
            "finmon_aggregate_owned_partitions",
            "Partitions of news.scored this aggregator owns (fewer than the topic has: its ticker "
            "and overall windows miss the other partitions' items).",
            registry=reg,
        ),
        stream_partitions=Gauge(
            "finmon_aggregate_stream_partitions",
            "Partitions news.scored has, as the aggregator last saw at a rebalance.",
            registry=reg,
        ),
        restore_seconds=Histogram(
            "finmon_aggregate_restore_seconds",
            "Seconds from a partition's assignment until its state caught up with its changelog "
            "(aggregate.mode partitioned), by stage (first: news.scored, second: partials).",
            ["stage"],
            buckets=LATENCY_BUCKETS_SEC,
            registry=reg,
        ),
        restoring_partitions=Gauge(
            "finmon_aggregate_restoring_partitions",
            "Assigned partitions still restoring their state (paused; /readyz fails meanwhile).",
            registry=reg,
        ),
        changelog_records=Counter(
            "finmon_aggregate_changelog_records_total",
            "State records written to (write) or read back from (restore) the changelog topics.",
            ["stage", "direction"],
            registry=reg,
        ),
        partial_bundles=Counter(
            "finmon_aggregate_partial_bundles_total",
            "Partial-aggregate records produced to kafka.partials_topic (sent) or skipped as "
            "already applied (duplicate).",
            ["outcome"],
            registry=reg,
        ),
        alerts_raised=Counter(
            "finmon_alerts_events_total",
            "Alert transitions raised, by rule, key kind, severity and status.",
            ["rule", "key_kind", "severity", "status"],
            registry=reg,
        ),
        webhook_deliveries=Counter(
            "finmon_alerts_webhook_deliveries_total",
            "Webhook delivery attempts, by outcome (ok, retry, failed).",
            ["outcome"],
            registry=reg,
        ),
        webhook_undelivered=Counter(
            "finmon_alerts_webhook_undelivered_total",
            "Webhook notifications that will never be delivered, by reason (expired: older than "
            "alerts.max_age_sec; attempts: alerts.max_attempts; rejected: a 4xx/3xx answer; "
            "dropped: outbox full; firing_undelivered: a resolved whose firing failed).",
            ["reason"],
            registry=reg,
        ),
        sink_errors=Counter(
            "finmon_alerts_sink_errors_total",
            "Alert events an alert sink (the webhook outbox) failed to accept.",
            registry=reg,
        ),
        webhook_outbox_depth=Gauge(
            "finmon_alerts_webhook_outbox_depth",
            "Webhook notifications waiting in the durable outbox.",
            registry=reg,
        ),
        up=Gauge("finmon_up", "1 while the process runs its roles.", ["role"], registry=reg),
        **_source_metrics(reg),
        build_info=Info("finmon_build", "FinMon, Python and torch versions.", registry=reg),
        model_info=Info(
            "finmon_model", "The model serving now: version, device, precision.", registry=reg
        ),
        model_reloads=Counter(
            "finmon_model_reloads_total",
            "Model reload attempts, by outcome (swapped, rejected) and reason (ok, load, warmup, "
            "sanity, agreement).",
            ["outcome", "reason"],
            registry=reg,
        ),
        drain_seconds=Gauge(
            "finmon_shutdown_drain_seconds",
            "Seconds the last graceful drain of the classify role took (finish, produce, commit).",
            registry=reg,
        ),
    )


def _source_metrics(reg: CollectorRegistry) -> dict[str, Any]:
    """The source role's instruments. ``source`` is a configured feed name, ``push`` or the drop
    folder's name (bounded by the config); ``kind`` is one of monitor.sources.errors.ERROR_KINDS."""
    return {
        "source_polls": Counter(
            "finmon_source_polls_total",
            "Feed polls, by outcome (ok, not_modified for a 304, error).",
            ["source", "outcome"],
            registry=reg,
        ),
        "source_errors": Counter(
            "finmon_source_errors_total",
            "Failed polls, pushes or files, by source and error kind.",
            ["source", "kind"],
            registry=reg,
        ),
        "source_items": Counter(
            "finmon_source_items_total",
            "Items seen by a source, by outcome (new: produced and acknowledged; duplicate; "
            "stale: older than the dedup retention; invalid: rejected with a reason).",
            ["source", "outcome"],
            registry=reg,
        ),
        "source_poll_seconds": Histogram(
            "finmon_source_poll_seconds",
            "Seconds per feed poll: fetch, parse, produce and commit.",
            ["source"],
            buckets=LATENCY_BUCKETS_SEC,
            registry=reg,
        ),
        "push_requests": Counter(
            "finmon_source_push_requests_total",
            "POST /v1/news requests, by HTTP status code.",
            ["code"],
            registry=reg,
        ),
        "push_seconds": Histogram(
            "finmon_source_push_seconds",
            "Seconds per accepted push request, until the broker acknowledged its items.",
            buckets=STAGE_BUCKETS_SEC,
            registry=reg,
        ),
        "dropfolder_files": Counter(
            "finmon_source_dropfolder_files_total",
            "Dropped files handled, by outcome (done, failed).",
            ["outcome"],
            registry=reg,
        ),
    }
