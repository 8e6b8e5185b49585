"""The daemon: wires settings to the roles, serves /metrics, and runs until told to stop.

Each role runs in its own thread; the classify thread owns the model and its device. SIGINT and
SIGTERM stop the roles cleanly within ``shutdown.grace_period_ms`` (current batches finished,
produced and committed, the consumer group left). SIGHUP reloads the model (:mod:`monitor.reload`).
A role that dies stops the whole process with a non-zero status, so a supervisor restarts it
instead of leaving it half-alive. The metrics port also serves /healthz, /readyz and
POST /admin/reload (:mod:`monitor.endpoints`).
"""

from __future__ import annotations

import logging
import platform
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler

from alerts.events import AlertEvent
from alerts.notify import WebhookNotifier
from monitor.aggregate.changelog import StateCache
from monitor.aggregate.engine import Aggregator, from_settings
from monitor.aggregate.labels import known_topics
from monitor.aggregate.partitioned import PartitionedWorker
from monitor.aggregate.worker import AggregateWorker
from monitor.classify.batcher import BatchPolicy
from monitor.classify.longtext import LongTextPolicy
from monitor.classify.protocol import Classifier
from monitor.contract import DecodeLimits
from monitor.endpoints import OpsServer, Routes
from monitor.errors import ConfigError, FinMonError
from monitor.health import BrokerCheck, Health, RoleHealth
from monitor.ingest import kafka_io
from monitor.ingest.classify_worker import ClassifyWorker
from monitor.metrics import Metrics, build_metrics
from monitor.reload import ModelReloader, canary_texts
from monitor.settings import Settings
from monitor.sources import SourceRole
from monitor.tickers import EMPTY_DICTIONARY, TickerDictionary, TickerDictionaryError

logger = logging.getLogger(__name__)

# Forward batches of model.max_batch_tokens per model call (the owner's call budget).
CALL_BATCHES = 2

STATUS_LOG_INTERVAL_SEC = 60
OUTBOX_FILE = "webhook-outbox.sqlite"
# Of the shutdown grace period, what is kept for closing clients after the drain.
CLOSE_RESERVE_SEC = 2.0


class RoleFailed(FinMonError):
    """A role thread ended with an exception; the daemon stops. See the log for the traceback."""


def load_classifier(settings: Settings, metrics: Metrics, path: str | None = None) -> Classifier:
    """The classifier from ``path`` (default ``model.path``); a clear ConfigError when none is
    configured. Raises ModelLoadError on a broken export."""
    if path is None and not settings.model.path:
        raise ConfigError(
            "model.path",
            "is empty: the classify role needs a trained model",
            "set it to a directory written by `finmon train` (or run `finmon demo`)",
        )
    where = path or settings.model.path
    if not Path(where).is_dir():
        raise ConfigError(
            "model.path",
            f"{where!r} is not a directory",
            "point it at an exported FinMon model directory",
        )
    # torch and transformers load here, on the classify path only: the aggregate and source
    # roles never import them, so they restart in about a second instead of 25 to 60.
    import torch

    from monitor.classify.engine import TorchClassifier

    model = settings.model
    if model.torch_threads:
        torch.set_num_threads(model.torch_threads)
    return TorchClassifier.from_dir(
        where,
        device=model.device,
        max_batch_items=model.max_batch_items,
        max_batch_tokens=model.max_batch_tokens,
        max_length_tokens=model.max_length_tokens,
        cache_items=model.cache_items,
        quantize=model.quantize,
        long_text=LongTextPolicy(strategy=model.long_text, max_chunks=model.max_chunks),
        metrics=metrics,
        threads=model.torch_threads or None,
    )


def decode_limits(settings: Settings) -> DecodeLimits:
    """What the classify role's decode accepts, from the ``ingest`` settings."""
    ingest = settings.ingest
    return DecodeLimits(
        max_message_bytes=ingest.max_message_bytes,
        max_json_depth=ingest.max_json_depth,
        max_integer_digits=ingest.max_integer_digits,
        max_id_chars=ingest.max_id_chars,
        min_published_at=ingest.min_published_at,
        max_future_ms=ingest.max_future_ms,
    )


def load_ticker_names(settings: Settings) -> TickerDictionary:
    """The ``model.ticker_names`` dictionary (empty when unset). Raises ConfigError."""
    path = settings.model.ticker_names
    if not path:
        return EMPTY_DICTIONARY
    try:
        return TickerDictionary.load(path)
    except TickerDictionaryError as exc:
        raise ConfigError(
            "model.ticker_names", exc.problem, "point it at a YAML file {TICKER: [name, alias]}"
        ) from exc


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
    health: Health = field(default_factory=Health, init=False)
    reloader: ModelReloader | None = field(default=None, init=False)
    _server: OpsServer | None = field(default=None, init=False)

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
            if settings.aggregate.mode == "single":
                aggregator = from_settings(settings, metrics)
            if settings.alerts.webhook_urls:
                notifier = WebhookNotifier(
                    settings.alerts, Path(settings.state.dir) / OUTBOX_FILE, metrics=metrics
                )
        sources = _source_role(settings, metrics)
        return cls(settings, metrics, classifier, aggregator, notifier, tuple(extra_sinks), sources)

    def _start_sources(self) -> None:
        if self.sources is not None:
            board = self.sources.board
            self.metrics.register_collector(board.collector())
            thread = self._spawn("source", self.sources.run)
            self.health.live_check("source", lambda: _thread_problem(thread))
            self.health.check("source.started", lambda: None if board.alive else "not started")
            watch = self.sources.broker
            self.health.check("broker.source", _broker_ready("source", lambda: watch.reachable))

    def _sinks(self) -> list[Callable[[AlertEvent], None]]:
        sinks: list[Callable[[AlertEvent], None]] = []
        if self.notifier is not None:
            sinks.append(self.notifier.submit)
        return [*sinks, *self.extra_sinks]

    def _spawn(self, name: str, target: Callable[[threading.Event], None]) -> threading.Thread:
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
        return thread

    def start(self) -> None:
        """Start the HTTP endpoints and the role threads; returns at once.

        Raises BrokerUnreachable (naming ``kafka.bootstrap_servers``) when no bootstrap server
        accepts a connection within ``kafka.connect_timeout_sec``.
        """
        cfg = self.settings
        kafka_io.require_broker(cfg.kafka)
        self.health = Health(stall_after_ms=cfg.health.stall_after_ms)
        broker = BrokerCheck(
            cfg.kafka.bootstrap_servers.split(","), cfg.health.broker_check_interval_ms
        )
        self.health.check("broker", broker)
        self.metrics.build_info.info(_build_info())
        if self.classifier is not None:
            self._start_classify(self.classifier)
        if self.aggregator is not None:
            self._start_aggregate(self.aggregator)
        elif cfg.role in ("aggregate", "all") and cfg.aggregate.mode == "partitioned":
            self._start_partitioned()
        self._start_sources()
        if cfg.metrics.enabled:
            self._start_server()
        if self.notifier is not None:
            self.notifier.start()

    def _start_server(self) -> None:
        cfg = self.settings
        token = cfg.reload.admin_token
        routes = Routes(
            self.metrics.registry,
            self.health,
            reload=self.reloader.reload if self.reloader is not None else None,
            admin_token=token.get_secret_value() if token is not None else None,
        )
        self._server = OpsServer(routes, cfg.metrics.host, cfg.metrics.port)
        self._server.start()
        self.metrics_port = self._server.port
        logger.info(
            "metrics, /healthz, /readyz on http://%s:%d", cfg.metrics.host, self.metrics_port
        )

    def _start_classify(self, classifier: Classifier) -> None:
        cfg = self.settings
        policy = BatchPolicy(
            max_batch_items=cfg.model.max_batch_items,
            # A call: up to two forward batches' worth of tokens (summed), so the engine sorts a
            # pool of about max_batch_items texts before it packs them (docs/bench-e2e.md).
            max_batch_tokens=CALL_BATCHES * cfg.model.max_batch_tokens,
            max_wait_ms=cfg.model.max_wait_ms,
            max_queue_items=cfg.model.max_queue_items,
        )
        drain_sec = max(1.0, cfg.shutdown.grace_period_ms / 1000 - CLOSE_RESERVE_SEC)
        role = RoleHealth.register(self.health, "classify", with_model=True)
        classify = ClassifyWorker(
            cfg.kafka,
            classifier,
            self.metrics,
            policy,
            decode_limits(cfg),
            role_health=role,
            drain_timeout_sec=drain_sec,
            names=load_ticker_names(cfg),
        )
        self.health.check(
            "broker.classify", _broker_ready("classify", lambda: classify.broker_reachable)
        )
        model_ready = self.health.condition("model", "the model is not warmed yet")
        reloader = ModelReloader(
            cfg.reload,
            cfg.model.path,
            load=lambda path: load_classifier(cfg, self.metrics, path),
            swap=lambda new, done: self._swap(classify, new, done),
            metrics=self.metrics,
            canary=canary_texts(cfg.reload),
            describe=_describe,
        )
        self.reloader = reloader

        def run(stop: threading.Event) -> None:
            reloader.warm(classifier)  # on this thread, before the model thread exists
            model_ready.set(True)
            reloader.start()
            try:
                classify.run(stop)
            finally:
                reloader.stop()

        self._spawn("classify", run)

    def _start_aggregate(self, aggregator: Aggregator) -> None:
        cfg = self.settings
        self.metrics.register_collector(aggregator.collector())
        # The aggregator restored its SQLite snapshot when it was built (Daemon.from_settings).
        self.health.condition("aggregate.state", "state not restored").set(True)
        role = RoleHealth.register(self.health, "aggregate")
        worker = AggregateWorker(cfg.kafka, aggregator, self.metrics, self._sinks(), health=role)
        self.health.check(
            "broker.aggregate", _broker_ready("aggregate", lambda: worker.broker_reachable)
        )
        self._spawn("aggregate", worker.run)

    def _start_partitioned(self) -> None:
        cfg = self.settings
        outbox = self.notifier.outbox if self.notifier is not None else None
        worker = PartitionedWorker(
            cfg.kafka,
            cfg.aggregate,
            self.metrics,
            StateCache(Path(cfg.state.dir) / cfg.aggregate.changelog_cache_file),
            self._sinks(),
            settled=(lambda e: outbox.finished(e.idempotency_key, e.status)) if outbox else None,
            topics=known_topics(cfg),
            top_headlines=cfg.alerts.top_headlines,
            health=RoleHealth.register(self.health, "aggregate"),
            restored=self.health.condition("aggregate.restore", "partitions not restored yet"),
        )
        self.health.check(
            "broker.aggregate", _broker_ready("aggregate", lambda: worker.broker_reachable)
        )
        self.metrics.register_collector(worker.collector())
        self._spawn("aggregate", worker.run)

    def join(self, timeout_sec: float | None = None) -> None:
        """Wait for the roles to finish; raise RoleFailed if one of them crashed."""
        deadline = None if timeout_sec is None else time.monotonic() + timeout_sec
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                logger.error("role thread %s still running after the grace period", thread.name)
        if self.notifier is not None:
            self.notifier.stop()
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._errors:
            error = self._errors[0]
            detail = str(error) if isinstance(error, FinMonError) else repr(error)
            raise RoleFailed(f"role failed: {detail}") from error

    def stop(self, timeout_sec: float | None = 30.0) -> None:
        self.stop_event.set()
        self.join(timeout_sec)

    def run(self) -> None:
        """Run until SIGINT/SIGTERM (or a role failure); SIGHUP reloads the model. Blocking."""
        with _signals(self.stop_event, self._reload_requested), _status_log(self.metrics):
            self.start()
            while not self.stop_event.wait(0.5):
                pass
            started = time.monotonic()
            self.join(self.settings.shutdown.grace_period_ms / 1000)
            logger.info("stopped in %.0f ms", (time.monotonic() - started) * 1000)

    def _swap(
        self, worker: ClassifyWorker, classifier: Classifier, done: Callable[[], None]
    ) -> bool:
        """Hand a checked model to the running owner; the old one is released after the switch."""
        owner = worker.owner
        if owner is None or not owner.alive:
            return False

        def swapped() -> None:
            worker.classifier = self.classifier = classifier
            done()

        owner.swap(classifier, swapped)
        return True

    def _reload_requested(self) -> None:
        if self.reloader is None:
            logger.info("SIGHUP: this process serves no model; nothing to reload")
        else:
            self.reloader.request()


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
    return SourceRole.from_settings(
        settings, metrics, decode_limits(settings), load_ticker_names(settings)
    )


def _broker_ready(role: str, reachable: Callable[[], bool]) -> Callable[[], str | None]:
    """A readiness check: false while the role's broker calls are failing."""

    def check() -> str | None:
        if reachable():
            return None
        return f"the {role} role's broker calls are failing (finmon_broker_up 0)"

    return check


def _thread_problem(thread: threading.Thread) -> str | None:
    return None if thread.is_alive() else f"thread {thread.name} has ended"


def _describe(classifier: Classifier) -> dict[str, str]:
    device = getattr(classifier, "device", "unknown")
    precision = getattr(classifier, "precision", "unknown")
    return {"version": classifier.version, "device": str(device), "precision": str(precision)}


def _build_info() -> dict[str, str]:
    """Versions from the package metadata, so that a role without a model imports no torch."""
    return {
        "version": _version("finmon"),
        "python": platform.python_version(),
        "torch": _version("torch"),
    }


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


@contextmanager
def _signals(stop: threading.Event, reload: Callable[[], None]) -> Iterator[None]:
    def on_stop(signum: int, frame: FrameType | None) -> None:
        logger.info("signal %d: draining and stopping", signum)
        stop.set()

    def on_hup(signum: int, frame: FrameType | None) -> None:
        logger.info("SIGHUP: model reload requested")
        reload()

    handlers = {signal.SIGINT: on_stop, signal.SIGTERM: on_stop, signal.SIGHUP: on_hup}
    previous = {s: signal.signal(s, h) for s, h in handlers.items()}
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
