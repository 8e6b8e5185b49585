"""``finmon demo``: the whole system on one machine, with live progress in the terminal.

Embedded broker -> replay producer (synthetic headlines, malformed messages, one negative burst)
-> classify -> aggregate -> signed webhook -> local receiver. Ends by itself after
``duration_sec`` (or on Ctrl-C) and prints the alerts the receiver got.
"""

from __future__ import annotations

import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import typer
from pydantic import SecretStr

from alerts.receiver import ReceivedAlert, ReceiverConfig, WebhookReceiver
from monitor.broker import EmbeddedBroker, free_port
from monitor.daemon import Daemon
from monitor.demo.replay import ReplayPlan, ReplayProducer
from monitor.ingest.kafka_io import make_producer
from monitor.metrics import Metrics
from monitor.settings import Settings

PROGRESS_INTERVAL_SEC = 3.0

# The demo compresses time: 5-second windows instead of minutes.
DEMO_AGGREGATE = {"window_ms": 5_000, "allowed_lateness_ms": 2_000, "idle_close_ms": 10_000}


def demo_settings(
    settings: Settings,
    *,
    bootstrap: str,
    model_dir: Path,
    receiver_url: str,
    secret: str,
    state_dir: Path,
) -> Settings:
    """The user's settings with the demo's broker, model, receiver and short windows."""
    return settings.model_copy(
        update={
            "role": "all",
            "kafka": settings.kafka.model_copy(
                update={
                    "bootstrap_servers": bootstrap,
                    "max_poll_interval_ms": 6_000,
                    "session_timeout_ms": 6_000,
                    "heartbeat_interval_ms": 1_000,
                }
            ),
            "model": settings.model.model_copy(update={"path": str(model_dir)}),
            "aggregate": settings.aggregate.model_copy(update=DEMO_AGGREGATE),
            "alerts": settings.alerts.model_copy(
                update={
                    "webhook_urls": (receiver_url + "risk-team",),
                    "webhook_secret": SecretStr(secret),
                    "backoff_initial_sec": 0.2,
                }
            ),
            "metrics": settings.metrics.model_copy(update={"port": free_port()}),
            "state": settings.state.model_copy(update={"dir": str(state_dir)}),
        }
    )


def _sample(metrics: Metrics, name: str, labels: dict[str, str] | None = None) -> float:
    return metrics.registry.get_sample_value(name, labels or {}) or 0.0


def _sum(metrics: Metrics, name: str) -> float:
    return sum(s.value for m in metrics.registry.collect() for s in m.samples if s.name == name)


def _progress_line(
    elapsed_sec: float, replay: ReplayProducer, metrics: Metrics, alerts: list[ReceivedAlert]
) -> str:
    scored = _sum(metrics, "finmon_classify_items_total")
    negative = sum(
        s.value
        for m in metrics.registry.collect()
        for s in m.samples
        if s.name == "finmon_classify_items_total" and s.labels.get("sentiment") == "negative"
    )
    return (
        f"[{elapsed_sec:5.0f}s] produced={replay.sent:5d} malformed={replay.malformed:3d} "
        f"scored={scored:5.0f} negative={negative:4.0f} "
        f"dlq={_sum(metrics, 'finmon_ingest_dlq_messages_total'):3.0f} "
        f"windows={_sum(metrics, 'finmon_aggregate_windows_closed_total'):4.0f} "
        f"alerts={len(alerts)}{'  (burst sent)' if replay.burst_sent else ''}"
    )


def run_demo(
    settings: Settings,
    *,
    model_dir: Path,
    duration_sec: float | None,
    echo: Callable[[str], None] = typer.echo,
) -> list[ReceivedAlert]:
    """Run the demo with the model exported at ``model_dir``; return the alerts that reached
    the receiver."""
    secret = secrets.token_hex(16)
    received: list[ReceivedAlert] = []

    def on_alert(alert: ReceivedAlert) -> None:
        received.append(alert)
        echo(f"  >>> webhook: {alert.line()}")

    with (
        tempfile.TemporaryDirectory(prefix="finmon-demo-") as tmp,
        EmbeddedBroker(log_path=Path(tmp) / "broker.log") as broker,
        WebhookReceiver(config=ReceiverConfig(secret=secret), on_alert=on_alert) as receiver,
    ):
        cfg = demo_settings(
            settings,
            bootstrap=broker.bootstrap_servers,
            model_dir=model_dir,
            receiver_url=receiver.url,
            secret=secret,
            state_dir=Path(tmp) / "state",
        )
        echo(f"broker {broker.bootstrap_servers} | receiver {receiver.url} | model {model_dir}")
        daemon = Daemon.from_settings(cfg)
        daemon.start()
        echo(f"metrics http://127.0.0.1:{daemon.metrics_port}/metrics (Ctrl-C stops)")
        replay = ReplayProducer(make_producer(cfg.kafka), cfg.kafka.raw_topic, ReplayPlan())
        stop = threading.Event()
        feeder = threading.Thread(
            target=replay.run, args=(stop,), name="finmon-replay", daemon=True
        )
        feeder.start()
        _watch(daemon, replay, received, duration_sec, echo)
        stop.set()
        feeder.join(15)
        daemon.stop()
    _summary(received, echo)
    return received


def _watch(
    daemon: Daemon,
    replay: ReplayProducer,
    received: list[ReceivedAlert],
    duration_sec: float | None,
    echo: Callable[[str], None],
) -> None:
    started = time.monotonic()
    try:
        while duration_sec is None or time.monotonic() - started < duration_sec:
            if daemon.stop_event.wait(PROGRESS_INTERVAL_SEC):
                break
            echo(_progress_line(time.monotonic() - started, replay, daemon.metrics, received))
    except KeyboardInterrupt:
        echo("stopping...")


def _summary(received: list[ReceivedAlert], echo: Callable[[str], None]) -> None:
    echo(f"\n{len(received)} alert notification(s) reached the webhook receiver:")
    for alert in received:
        echo(f"  {alert.line()}")
        for headline in alert.headlines[:3]:
            echo(f"      - {headline.get('headline', '')}")
