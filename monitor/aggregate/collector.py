"""Prometheus collector for window and detector state, computed at scrape time.

Series (``key`` values: every topic, tickers up to ``max_ticker_series``, ``all`` for overall):
``finmon_aggregate_negative_share``, ``finmon_aggregate_baseline_negative_share``,
``finmon_aggregate_spike_score`` and ``finmon_aggregate_window_items`` (last closed window), and
``finmon_alerts_active{rule,key_kind,key,severity}`` (1 while firing, 0 after it resolves).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from alerts.detectors import NEGATIVE_SHARE_SPIKE, NegativeShareSpike
from monitor.aggregate.track import KeyTrack
from monitor.aggregate.windows import KeyId

KEY_LABELS = ["key_kind", "key"]


class AggregateCollector:
    """Reads the aggregator's tracks on each scrape; call from the thread that owns them or
    accept a slightly torn view (each value is read atomically)."""

    def __init__(
        self,
        tracks: Mapping[KeyId, KeyTrack],
        active: Mapping[tuple[str, str, str, str], int],
    ) -> None:
        self._tracks = tracks
        self._active = active  # (rule, key_kind, key, severity) -> 1 firing, 0 resolved

    def collect(self) -> Iterator[Metric]:
        share = GaugeMetricFamily(
            "finmon_aggregate_negative_share",
            "Negative share of the last closed window.",
            labels=KEY_LABELS,
        )
        baseline = GaugeMetricFamily(
            "finmon_aggregate_baseline_negative_share",
            "Learned baseline negative share.",
            labels=KEY_LABELS,
        )
        score = GaugeMetricFamily(
            "finmon_aggregate_spike_score",
            "Negative-share spike score (standard deviations) of the last closed window.",
            labels=KEY_LABELS,
        )
        items = GaugeMetricFamily(
            "finmon_aggregate_window_items", "Items in the last closed window.", labels=KEY_LABELS
        )
        for (kind, key), track in list(self._tracks.items()):
            labels = [kind, key]
            watch = track.watches.get(NEGATIVE_SHARE_SPIKE)
            if watch is not None and isinstance(watch.detector, NegativeShareSpike):
                baseline.add_metric(labels, watch.detector.baseline)
                score.add_metric(labels, watch.last.score if watch.last else 0.0)
            last = track.last
            if last is not None:
                share.add_metric(labels, last.negative_share)
                items.add_metric(labels, last.volume)
        active = GaugeMetricFamily(
            "finmon_alerts_active",
            "1 while an alert is firing, 0 after it resolved.",
            labels=["rule", "key_kind", "key", "severity"],
        )
        for label, value in list(self._active.items()):
            active.add_metric(list(label), value)
        yield from (share, baseline, score, items, active)

    def describe(self) -> Iterator[Metric]:
        return iter(())
