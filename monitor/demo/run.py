"""``finmon demo``: the whole system on one machine, with live progress in the terminal.

Embedded broker; a local RSS newswire of synthetic headlines and a push client (malformed items,
one negative burst) -> the source role (as deployed: feed poller, push endpoint) -> news.raw ->
classify -> aggregate -> signed webhook -> local receiver. Ends by itself after
``duration_sec`` (or on Ctrl-C) and prints the alerts the receiver got.
"""

from __future__ import annotations

import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from pydantic import SecretStr

from alerts.receiver import ReceivedAlert, ReceiverConfig, WebhookReceiver
from monitor.broker import EmbeddedBroker, free_port
from monitor.daemon import Daemon
from monitor.demo.replay import DemoFeed, ReplayPlan, ReplayProducer
from monitor.metrics import Metrics
from monitor.settings import FeedSettings, PushSettings, Settings, SourcesSettings

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
    feed_url: str,
    push_token: str,
) -> Settings:
    """The user's settings with the demo's broker, model, receiver, feed and short windows."""
    sources = SourcesSettings(
        feeds=(FeedSettings(name="demo-newswire", url=feed_url, interval_sec=1, jitter_sec=0.2),),
        push=PushSettings(enabled=True, port=free_port(), token=SecretStr(push_token)),
    )
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
            "sources": sources,
        }
    )


def _sample(metrics: Metrics, name: str, labels: dict[str, str] | None = None) -> float:
    return metrics.registry.get_sample_value(name, labels or {}) or 0.0


def _sum(metrics: Metrics, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(
        s.value
        for m in metrics.registry.collect()
        for s in m.samples
        if s.name == name and labels.items() <= s.labels.items()
    )


def _progress_line(
    elapsed_sec: float, replay: ReplayProducer, metrics: Metrics, alerts: list[ReceivedAlert]
) -> str:
    scored = _sum(metrics, "finmon_classify_items_total")
    negative = _sum(metrics, "finmon_classify_items_total", sentiment="negative")
    sourced = _sum(metrics, "finmon_source_items_total", outcome="new")
    return (
        f"[{elapsed_sec:5.0f}s] fed={replay.sent:5d} pushed={replay.pushed:3d} "
        f"rejected={replay.malformed:3d} sourced={sourced:5.0f} "
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
    secret, push_token = secrets.token_hex(16), secrets.token_hex(16)
    plan = ReplayPlan()
    received: list[ReceivedAlert] = []

    def on_alert(alert: ReceivedAlert) -> None:
        received.append(alert)
        echo(f"  >>> webhook: {alert.line()}")

    with (
        tempfile.TemporaryDirectory(prefix="finmon-demo-") as tmp,
        EmbeddedBroker(log_path=Path(tmp) / "broker.log") as broker,
        WebhookReceiver(config=ReceiverConfig(secret=secret), on_alert=on_alert) as receiver,
        _serving(DemoFeed(plan.feed_window_items)) as feed,
    ):
        cfg = demo_settings(
            settings,
            bootstrap=broker.bootstrap_servers,
            model_dir=model_dir,
            receiver_url=receiver.url,
            secret=secret,
            state_dir=Path(tmp) / "state",
            feed_url=feed.url,
            push_token=push_token,
        )
        echo(f"broker {broker.bootstrap_servers} | receiver {receiver.url} | model {model_dir}")
        echo(f"newswire feed {feed.url} | push http://127.0.0.1:{cfg.sources.push.port}/v1/news")
        daemon = Daemon.from_settings(cfg)
        daemon.start()
        echo(f"metrics http://127.0.0.1:{daemon.metrics_port}/metrics (Ctrl-C stops)")
        push_url = f"http://127.0.0.1:{cfg.sources.push.port}/v1/news"
        replay = ReplayProducer(feed, push_url, push_token, plan)
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


@contextmanager
def _serving(feed: DemoFeed) -> Iterator[DemoFeed]:
    feed.start()
    try:
        yield feed
    finally:
        feed.stop()


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
