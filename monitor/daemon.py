"""The daemon: wires settings to the roles, serves /metrics, and runs until told to stop.

Each role runs in its own thread; the classify thread owns the model and its device. SIGINT and
SIGTERM stop the roles cleanly (current batch finished and committed). A role that dies stops the
whole process with a non-zero status, so a supervisor restarts it instead of leaving it half-alive.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import torch
from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client import start_http_server

from alerts.events import AlertEvent
from alerts.notify import WebhookNotifier
from monitor.aggregate.engine import Aggregator, from_settings
from monitor.aggregate.worker import AggregateWorker
from monitor.classify.batcher import BatchPolicy
from monitor.classify.engine import Classifier, TorchClassifier
from monitor.classify.longtext import LongTextPolicy
from monitor.contract import DecodeLimits
from monitor.errors import ConfigError, FinMonError
from monitor.ingest import kafka_io
from monitor.ingest.classify_worker import ClassifyWorker
from monitor.metrics import Metrics, build_metrics
from monitor.settings import Settings
from monitor.sources import SourceRole

logger = logging.getLogger(__name__)

STATUS_LOG_INTERVAL_SEC = 60
OUTBOX_FILE = "webhook-outbox.sqlite"


class RoleFailed(FinMonError):
    """A role thread ended with an exception; the daemon stops. See the log for the traceback."""


def load_classifier(settings: Settings, metrics: Metrics) -> Classifier:
    """The classifier from ``model.path``; a clear ConfigError when none is configured."""
    if not settings.model.path:
        raise ConfigError(
            "model.path",
            "is empty: the classify role needs a trained model",
            "set it to a directory written by `finmon train` (or run `finmon demo`)",
        )
    if not Path(settings.model.path).is_dir():
        raise ConfigError(
            "model.path",
            f"{settings.model.path!r} is not a directory",
            "point it at an exported FinMon model directory",
        )
    model = settings.model
    if model.torch_threads:
        torch.set_num_threads(model.torch_threads)
    return TorchClassifier.from_dir(
        model.path,
        device=model.device,
        max_batch_items=model.max_batch_items,
        max_batch_tokens=model.max_batch_tokens,
        max_length_tokens=model.max_length_tokens,
        cache_items=model.cache_items,
        quantize=model.quantize,
        long_text=LongTextPolicy(strategy=model.long_text, max_chunks=model.max_chunks),
        metrics=metrics,
    )


def decode_limits(settings: Settings) -> DecodeLimits:
    """What the classify role's decode accepts, from the ``ingest`` settings."""
    ingest = settings.ingest
    return DecodeLimits(
        max_message_bytes=ingest.max_message_bytes,
        max_json_depth=ingest.max_json_depth,
        max_integer_digits=ingest.max_integer_digits,
        min_published_at=ingest.min_published_at,
        max_future_ms=ingest.max_future_ms,
    )


@dataclass
class Daemon:
    """All roles of one process. Build with :meth:`from_settings`, then ``run`` or ``start``."""

    settings: Settings
    metrics: Metrics
    classifier: Classifier | None = None
    aggregator: Aggregator | None = None
    notifier: WebhookNotifier | None = None
    extra_sinks: Sequence[Callable[[AlertEvent], None]] = ()
    sources: SourceRole | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list, init=False)
    _errors: list[BaseException] = field(default_factory=list, init=False)
    metrics_port: int | None = field(default=None, init=False)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        classifier: Classifier | None = None,
        extra_sinks: Sequence[Callable[[AlertEvent], None]] = (),
    ) -> Daemon:
        metrics = metrics or build_metrics()
        role = settings.role
        if role in ("classify", "all") and classifier is None:
            classifier = load_classifier(settings, metrics)
        aggregator = notifier = None
        if role in ("aggregate", "all"):
            Path(settings.state.dir).mkdir(parents=True, exist_ok=True)
            aggregator = from_settings(settings, metrics)
            if settings.alerts.webhook_urls:
                notifier = WebhookNotifier(
                    settings.alerts, Path(settings.state.dir) / OUTBOX_FILE, metrics=metrics
                )
        sources = _source_role(settings, metrics)
        return cls(settings, metrics, classifier, aggregator, notifier, tuple(extra_sinks), sources)

    def _start_sources(self) -> None:
        if self.sources is not None:
            self.metrics.register_collector(self.sources.board.collector())
            self._spawn("source", self.sources.run)

    def _sinks(self) -> list[Callable[[AlertEvent], None]]:
        sinks: list[Callable[[AlertEvent], None]] = []
        if self.notifier is not None:
            sinks.append(self.notifier.submit)
        return [*sinks, *self.extra_sinks]

    def _spawn(self, name: str, target: Callable[[threading.Event], None]) -> None:
        def body() -> None:
            try:
                target(self.stop_event)
            except BaseException as exc:
                logger.exception("role %s failed; stopping", name)
                self._errors.append(exc)
                self.stop_event.set()

        thread = threading.Thread(target=body, name=f"finmon-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def start(self) -> None:
        """Start /metrics and the role threads; returns at once.

        Raises BrokerUnreachable (naming ``kafka.bootstrap_servers``) when no bootstrap server
        accepts a connection within ``kafka.connect_timeout_sec``.
        """
        cfg = self.settings
        kafka_io.require_broker(cfg.kafka)
        if cfg.metrics.enabled:
            server, _ = start_http_server(cfg.metrics.port, cfg.metrics.host, self.metrics.registry)
            self.metrics_port = int(server.server_port)
            logger.info("metrics on http://%s:%d/metrics", cfg.metrics.host, self.metrics_port)
        if self.notifier is not None:
            self.notifier.start()
        if self.classifier is not None:
            policy = BatchPolicy(
                max_batch_items=cfg.model.max_batch_items,
                max_batch_tokens=cfg.model.max_batch_tokens,
                max_wait_ms=cfg.model.max_wait_ms,
                max_queue_items=cfg.model.max_queue_items,
            )
            classify = ClassifyWorker(
                cfg.kafka, self.classifier, self.metrics, policy, decode_limits(cfg)
            )
            self._spawn("classify", classify.run)
        if self.aggregator is not None:
            self.metrics.register_collector(self.aggregator.collector())
            worker = AggregateWorker(cfg.kafka, self.aggregator, self.metrics, self._sinks())
            self._spawn("aggregate", worker.run)
        self._start_sources()

    def join(self, timeout_sec: float | None = None) -> None:
        """Wait for the roles to finish; raise RoleFailed if one of them crashed."""
        for thread in self._threads:
            thread.join(timeout_sec)
        if self.notifier is not None:
            self.notifier.stop()
        if self._errors:
            error = self._errors[0]
            detail = str(error) if isinstance(error, FinMonError) else repr(error)
            raise RoleFailed(f"role failed: {detail}") from error

    def stop(self, timeout_sec: float | None = 30.0) -> None:
        self.stop_event.set()
        self.join(timeout_sec)

    def run(self) -> None:
        """Run until SIGINT/SIGTERM (or a role failure). Blocking."""
        with _signals_stop(self.stop_event), _status_log(self.metrics):
            self.start()
            while not self.stop_event.wait(0.5):
                pass
            self.join(30.0)


def _source_role(settings: Settings, metrics: Metrics) -> SourceRole | None:
    """The source role when asked for (``source``, or ``all`` with sources configured)."""
    if settings.role not in ("source", "all"):
        return None
    if not settings.sources.configured:
        if settings.role == "source":
            raise ConfigError(
                "sources",
                "the source role has no feeds, push endpoint or drop folder",
                "add sources.feeds, sources.push or sources.drop_folder (see the example config)",
            )
        return None
    return SourceRole.from_settings(settings, metrics, decode_limits(settings))


@contextmanager
def _signals_stop(stop: threading.Event) -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        logger.info("signal %d: stopping", signum)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def _status_log(metrics: Metrics) -> Iterator[None]:
    """A periodic INFO line with the main counters (APScheduler job)."""
    scheduler = BackgroundScheduler(daemon=True)
    scheduler.add_job(
        _log_status,
        "interval",
        seconds=STATUS_LOG_INTERVAL_SEC,
        args=[metrics],
        id="status-log",
        max_instances=1,
        coalesce=True,
    )
    scheduler.start()
    try:
        yield
    finally:
        scheduler.shutdown(wait=False)


def _log_status(metrics: Metrics) -> None:
    registry = metrics.registry
    consumed = registry.get_sample_value("finmon_ingest_messages_consumed_total") or 0
    logger.info("status: consumed=%d", consumed)
